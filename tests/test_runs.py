"""The app's shared bookkeeping: the bounded result cache, the one-training-at-a-time gate and the
per-request training budget."""

import os
import platform
import threading
import time

import pytest

from gradviz import runs
from gradviz.config import RunConfig
from gradviz.runs import ResultCache, TrainingGate
from support.gate import Holder, wait_until, waiter
from support.results import fake_result


def test_cache_is_lru_and_bounded_in_entries():
    cache = ResultCache(max_entries=2)
    a, b, c = fake_result(), fake_result(), fake_result()
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # a is now the most recent
    cache.put("c", c)
    assert cache.get("b") is None and cache.get("a") is a and cache.get("c") is c
    assert len(cache) == 2 and cache.hits == 3 and cache.misses == 1


def test_cache_is_bounded_in_bytes():
    one = fake_result(steps=1000)
    cache = ResultCache(max_entries=100, max_bytes=int(one.nbytes() * 2.5))
    for key in "abcde":
        cache.put(key, fake_result(steps=1000))
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    assert cache.get("e") is not None and cache.get("a") is None


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
    assert order_after_a_rerun(gate, clock, runs.RECLAIM_SECONDS / 2) == ["s1", "s2"]
    # Too late: the place has gone, and the session queues behind whoever came meanwhile.
    assert order_after_a_rerun(gate, clock, 2 * runs.RECLAIM_SECONDS) == ["s2", "s1"]


def test_the_queue_turns_newcomers_away_at_its_cap(monkeypatch):
    monkeypatch.setenv(runs.MAX_QUEUE_ENV, "2")
    gate = TrainingGate(poll_seconds=0.01)
    holder, order, outcome = Holder(gate), [], []
    threads = [waiter(gate, owner, order, outcome) for owner in ("s1", "s2")]
    wait_until(lambda: gate.waiting == 2)
    with pytest.raises(runs.QueueFull) as full:
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
    monkeypatch.delenv(runs.MAX_QUEUE_ENV, raising=False)
    assert runs.max_queue() == runs.DEFAULT_MAX_QUEUE
    monkeypatch.setenv(runs.MAX_QUEUE_ENV, "0")
    assert runs.max_queue() == 0
    monkeypatch.setenv(runs.MAX_QUEUE_ENV, "lots")
    assert runs.max_queue() == runs.DEFAULT_MAX_QUEUE


def test_the_nearest_run_differs_in_the_fewest_fields_that_matter():
    asked = RunConfig(depth=10, activation="sigmoid", learning_rate=0.01)
    candidates = [RunConfig(), RunConfig(depth=10, activation="sigmoid", init_std=3.0),  # init_std unused here
                  RunConfig(depth=10, activation="tanh")]
    assert runs.nearest(asked, candidates) == candidates[1]
    assert runs.nearest(asked, []) is None


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.delenv(runs.MAX_EXAMPLES_ENV, raising=False)
    assert runs.max_examples() == runs.DEFAULT_MAX_EXAMPLES
    monkeypatch.setenv(runs.MAX_EXAMPLES_ENV, "50_000")
    assert runs.max_examples() == 50_000
    for junk in ("-5", "0", "lots", "1e9"):  # a host's typo falls back to the default, it does not crash
        monkeypatch.setenv(runs.MAX_EXAMPLES_ENV, junk)
        assert runs.max_examples() == runs.DEFAULT_MAX_EXAMPLES


def test_over_budget_names_the_numbers_and_within_budget_fits():
    config = RunConfig(epochs=10, train_size=8000)
    assert runs.over_budget(config, 80_000) is None  # exactly at the cap is allowed
    message = runs.over_budget(config, 50_000)
    assert "80,000" in message and "10 epochs" in message and "8,000 images" in message and "50,000" in message
    fitted = runs.within_budget(config, 50_000)
    assert (fitted.epochs, fitted.train_size) == (6, 8000)  # fewer epochs first, images kept
    fitted = runs.within_budget(config, 5_000)
    assert (fitted.epochs, fitted.train_size) == (1, 5000)  # then fewer images
    assert runs.within_budget(config, 80_000) is config
    for limit in (100, 999, 12_345, 300_000):
        fitted = runs.within_budget(RunConfig(epochs=100, train_size=60000, batch_size=64), limit)
        assert runs.examples(fitted) <= max(limit, 100) and fitted.epochs >= 1


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_arenas_are_capped_unless_the_host_chose(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert runs.limit_malloc_arenas() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert runs.limit_malloc_arenas() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_releasing_free_memory_returns_freed_pages_to_the_os():
    def rss_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    blocks = [bytes(2000) for _ in range(100_000)]  # ~200 MB from malloc's heap, not mmap
    kept = blocks[::50]  # these stay alive between the freed ones: the heap cannot just shrink from the top
    del blocks
    before = rss_mb()
    runs.release_free_memory()
    assert rss_mb() < before - 50
    assert len(kept) == 2000
