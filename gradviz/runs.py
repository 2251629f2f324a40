"""Process-wide run bookkeeping for the app: a bounded result cache and a one-at-a-time gate."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from contextlib import contextmanager
from typing import Callable, Iterator

from gradviz.result import RunResult


class ResultCache:
    """LRU of RunResults keyed by RunConfig.cache_key(), bounded in entries and in bytes.
    It holds numbers only: a RunResult has no Keras objects, so nothing big outlives a run."""

    def __init__(self, max_entries: int = 32, max_bytes: int = 256 * 2**20):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[str, RunResult] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str) -> RunResult | None:
        with self._lock:
            result = self._items.get(key)
            if result is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return result

    def put(self, key: str, result: RunResult) -> None:
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries or (len(self._items) > 1 and self.nbytes > self.max_bytes):
                self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes() for r in self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class TrainingGate:
    """One training at a time per process (2 cores do not train two models faster than one);
    others wait first-come first-served and are told how many are ahead of them."""

    def __init__(self, poll_seconds: float = 0.5):
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self.poll_seconds = poll_seconds

    @contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
        """Block until it is this caller's turn. on_wait(ahead) is called while waiting; if it
        raises (a Streamlit rerun does), the caller leaves the queue and nothing is left held."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
        try:
            while True:
                with self._cond:
                    ahead = self._queue.index(ticket)
                    if ahead == 0:
                        break
                if on_wait is not None:
                    on_wait(ahead)
                with self._cond:
                    self._cond.wait(self.poll_seconds)
            yield
        finally:
            with self._cond:
                self._queue.remove(ticket)
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return max(0, len(self._queue) - 1)


class RunCoordinator:
    """What every session in one server process shares."""

    def __init__(self):
        self.cache = ResultCache()
        self.gate = TrainingGate()
        self.trainings_started = 0  # counted for tests and the status line


COORDINATOR = RunCoordinator()
