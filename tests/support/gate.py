"""Threads that hold or wait for a TrainingGate's turn, as trainings and sessions do."""

import threading
import time


class Holder:
    """Holds the gate's turn on a thread until released, like a running training."""

    def __init__(self, gate):
        self.inside, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(gate,))
        self.thread.start()
        assert self.inside.wait(5)

    def _hold(self, gate):
        with gate.turn():
            self.inside.set()
            self.release.wait(10)

    def done(self):
        self.release.set()
        self.thread.join(10)


def waiter(gate, owner, order, outcome=None, on_wait=None):
    """A thread asking for a turn as `owner`; appends the owner to `order` once in, or the
    exception it got to `outcome`."""
    def ask():
        try:
            with gate.turn(on_wait=on_wait, owner=owner):
                order.append(owner)
        except Exception as error:  # noqa: BLE001 - recorded for the test to check
            (outcome if outcome is not None else []).append(type(error).__name__)

    thread = threading.Thread(target=ask)
    thread.start()
    return thread


def wait_until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)
