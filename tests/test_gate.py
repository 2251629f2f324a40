"""Who trains when: the one-training-at-a-time gate with its queue, and the memory gate that keeps
the work running at once under the server's cap."""

import threading
import time

import pytest

from gradviz.config import RunConfig
from gradviz.serving.gate import RECLAIM_SECONDS, MemoryGate, QueueFull, TrainingGate
from gradviz.serving.results import nearest
from gradviz.serving.settings import DEFAULT_MAX_QUEUE, MAX_QUEUE_ENV, max_queue
from support.gate import Holder, wait_until, waiter


def test_gate_runs_one_at_a_time_in_arrival_order():
    gate = TrainingGate(poll_seconds=0.01)
    inside, order, peak, seen_ahead = [], [], [0], []
    lock = threading.Lock()

    def session(name, delay):
        time.sleep(delay)
        with gate.turn(on_wait=lambda ahead: seen_ahead.append((name, ahead))):
            with lock:
                inside.append(name)
                peak[0] = max(peak[0], len(inside))
            time.sleep(0.05)
            with lock:
                inside.remove(name)
                order.append(name)

    threads = [threading.Thread(target=session, args=(n, i * 0.01)) for i, n in enumerate("abc")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and order == ["a", "b", "c"]
    assert ("c", 2) in seen_ahead and ("b", 1) in seen_ahead  # they were told their place
    assert gate.waiting == 0


def test_a_waiter_that_gives_up_leaves_the_queue():
    """Streamlit interrupts a rerun by raising inside on_wait; the queue must not keep its ticket."""
    gate = TrainingGate(poll_seconds=0.01)
    holder_in, release = threading.Event(), threading.Event()

    def holder():
        with gate.turn():
            holder_in.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    holder_in.wait(5)

    def interrupted(ahead):
        raise KeyboardInterrupt("rerun")

    with pytest.raises(KeyboardInterrupt):
        with gate.turn(on_wait=interrupted):
            pass
    assert gate.waiting == 0
    release.set()
    thread.join()
    with gate.turn():  # and the next caller gets in at once
        pass


def test_an_error_inside_a_turn_releases_it():
    gate = TrainingGate()
    with pytest.raises(ValueError):
        with gate.turn():
            raise ValueError("training failed")
    with gate.turn():
        assert gate.waiting == 0


def test_a_session_asking_again_while_it_waits_replaces_its_own_request():
    gate = TrainingGate(poll_seconds=0.01)
    holder, order, outcome = Holder(gate), [], []
    first = waiter(gate, "s1", order, outcome)
    wait_until(lambda: gate.waiting == 1)
    other = waiter(gate, "s2", order, outcome)
    wait_until(lambda: gate.waiting == 2)
    again = waiter(gate, "s1", order, outcome)  # the same session asks again while it waits
    first.join(5)
    assert outcome == ["Superseded"] and gate.waiting == 2  # replaced, not added
    holder.done()
    for thread in (other, again):
        thread.join(5)
    assert order == ["s1", "s2"]  # the new request kept the session's place


def order_after_a_rerun(gate, clock, back_after: float) -> list[str]:
    """s1 waits and reruns (leaving its place), s2 queues, and s1 asks again `back_after` seconds
    later: the order in which the two then train."""
    holder, order = Holder(gate), []

    def rerun(ahead):  # what Streamlit does to a waiting script when its session reruns
        raise KeyboardInterrupt("rerun")

    with pytest.raises(KeyboardInterrupt):
        with gate.turn(on_wait=rerun, owner="s1"):
            pass
    other = waiter(gate, "s2", order)
    wait_until(lambda: gate.waiting == 1)
    clock[0] += back_after
    back = waiter(gate, "s1", order)
    wait_until(lambda: gate.waiting == 2)
    holder.done()
    for thread in (other, back):
        thread.join(5)
    return order


def test_a_session_that_reruns_while_queued_gets_its_place_back_for_a_moment():
    clock = [0.0]
    gate = TrainingGate(poll_seconds=0.01, clock=lambda: clock[0])
    assert order_after_a_rerun(gate, clock, RECLAIM_SECONDS / 2) == ["s1", "s2"]
    # Too late: the place has gone, and the session queues behind whoever came meanwhile.
    assert order_after_a_rerun(gate, clock, 2 * RECLAIM_SECONDS) == ["s2", "s1"]


def test_the_queue_turns_newcomers_away_at_its_cap(monkeypatch):
    monkeypatch.setenv(MAX_QUEUE_ENV, "2")
    gate = TrainingGate(poll_seconds=0.01)
    holder, order, outcome = Holder(gate), [], []
    threads = [waiter(gate, owner, order, outcome) for owner in ("s1", "s2")]
    wait_until(lambda: gate.waiting == 2)
    with pytest.raises(QueueFull) as full:
        with gate.turn(owner="s3"):
            pass
    assert (full.value.waiting, full.value.cap) == (2, 2)
    threads.append(waiter(gate, "s2", order, outcome))  # a session already queued may still ask again
    wait_until(lambda: outcome == ["Superseded"])
    holder.done()
    for thread in threads:
        thread.join(5)
    assert sorted(order) == ["s1", "s2"] and gate.waiting == 0
    with gate.turn(owner="s3"):  # with the queue drained, newcomers get in again
        pass


def test_queue_cap_from_the_environment(monkeypatch):
    monkeypatch.delenv(MAX_QUEUE_ENV, raising=False)
    assert max_queue() == DEFAULT_MAX_QUEUE
    monkeypatch.setenv(MAX_QUEUE_ENV, "0")
    assert max_queue() == 0
    monkeypatch.setenv(MAX_QUEUE_ENV, "lots")
    assert max_queue() == DEFAULT_MAX_QUEUE


def test_the_nearest_run_differs_in_the_fewest_fields_that_matter():
    asked = RunConfig(depth=10, activation="sigmoid", learning_rate=0.01)
    candidates = [RunConfig(), RunConfig(depth=10, activation="sigmoid", init_std=3.0),  # init_std unused here
                  RunConfig(depth=10, activation="tanh")]
    assert nearest(asked, candidates) == candidates[1]
    assert nearest(asked, []) is None


def test_memory_gate_holds_work_past_its_capacity_until_room_is_made():
    gate = MemoryGate(capacity_mb=lambda: 100, poll_seconds=0.01)
    order, waited = [], []
    with gate.reserve(70):
        thread = threading.Thread(target=lambda: _ordered(gate, 40, "large", order, waited.append))
        thread.start()
        wait_until(lambda: waited)  # 70 + 40 > 100: it waits, and is told how much is held
        assert waited[0] == 70 and order == []
    thread.join(5)
    assert order == ["large"] and gate.reserved == 0


def test_memory_gate_serves_reservations_in_arrival_order():
    memory = MemoryGate(capacity_mb=lambda: 100, poll_seconds=0.01)
    order = []
    holder = threading.Event()

    def hold():
        with memory.reserve(50):
            holder.wait(5)

    first = threading.Thread(target=hold)
    first.start()
    wait_until(lambda: memory.reserved == 50)
    big = threading.Thread(target=lambda: _ordered(memory, 60, "big", order, hold_for=0.2))
    big.start()
    wait_until(lambda: len(memory._waiting) == 1)
    small = threading.Thread(target=lambda: _ordered(memory, 45, "small", order))  # fits now: 50 + 45 <= 100
    small.start()
    wait_until(lambda: len(memory._waiting) == 2)
    threading.Event().wait(0.1)
    assert order == []  # the small one waits behind the big one that came first
    holder.set()
    for thread in (first, big, small):
        thread.join(5)
    assert order == ["big", "small"] and memory.reserved == 0


def _ordered(memory, mb, name, order, on_wait=None, hold_for=0.0):
    with memory.reserve(mb, on_wait=on_wait):
        order.append(name)
        threading.Event().wait(hold_for)


def test_memory_gate_lets_a_waiter_that_gives_up_leave_the_line():
    gate = MemoryGate(capacity_mb=lambda: 10, poll_seconds=0.01)

    def rerun(held):
        raise KeyboardInterrupt("rerun")

    with gate.reserve(10):
        with pytest.raises(KeyboardInterrupt):
            with gate.reserve(5, on_wait=rerun):
                pass
        assert gate._waiting == []
    with gate.reserve(10):  # nothing was left held
        assert gate.reserved == 10


def test_memory_gate_runs_an_oversized_reservation_alone_once_nothing_else_is_held():
    memory = MemoryGate(capacity_mb=lambda: 10, poll_seconds=0.01)
    release, order = threading.Event(), []

    def small():
        with memory.reserve(0.1 + 0.2):  # float sums that do not come back to exactly 0 must not matter
            order.append("small")
            release.wait(5)

    holder = threading.Thread(target=small)
    holder.start()
    wait_until(lambda: order == ["small"])
    big = threading.Thread(target=lambda: _ordered(memory, 50, "oversized", order))
    big.start()
    wait_until(lambda: len(memory._waiting) == 1)
    assert order == ["small"]  # it waits while anything is held
    release.set()
    for thread in (holder, big):
        thread.join(5)
    assert order == ["small", "oversized"] and memory.holders == 0

