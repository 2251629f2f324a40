"""Process-wide run bookkeeping for the app: a bounded result cache, a one-at-a-time gate, and
the per-request training budget."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator

from gradviz.config import RunConfig
from gradviz.result import RunResult

LOG = logging.getLogger("gradviz")

# Per-request cap on epochs x training images, so that one visitor cannot hold a shared server's
# single training slot for minutes. 300k is 60k images x 5 epochs (~15 s for a 10x256 MLP on 2
# cores, a few minutes for the CNN); a course host sets GRADVIZ_MAX_EXAMPLES lower (see README).
MAX_EXAMPLES_ENV = "GRADVIZ_MAX_EXAMPLES"
DEFAULT_MAX_EXAMPLES = 300_000


def max_examples() -> int:
    """The cap in force: GRADVIZ_MAX_EXAMPLES if it is a positive whole number, else the default."""
    raw = os.environ.get(MAX_EXAMPLES_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_EXAMPLES
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    LOG.warning("ignoring %s=%r (not a positive whole number); using %d", MAX_EXAMPLES_ENV, raw, DEFAULT_MAX_EXAMPLES)
    return DEFAULT_MAX_EXAMPLES


M_ARENA_MAX = -8  # glibc's mallopt() parameter behind the MALLOC_ARENA_MAX variable
SERVER_MALLOC_ARENAS = 2
# Streamlit runs each session's script on its own thread, and glibc gives threads their own heaps
# (up to 8 per core): memory that one session's training freed sat in a heap where the next
# session's training did not reuse it, and freed pages stayed resident. Measured with the load
# test's 20 simultaneous sessions (tests/loadtest.py): peak RSS 1153 MB as it was, 1051 MB with the
# arenas capped at 2, 941 MB capped and trimmed after each training; queue times unchanged.


def _libc():
    """This process's C library through ctypes, or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = SERVER_MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX would, unless the host set that variable.
    True if the cap was set (False off glibc, which has no mallopt)."""
    libc = _libc()
    if os.environ.get("MALLOC_ARENA_MAX") or libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def release_free_memory() -> None:
    """Give the pages a finished training freed back to the OS (glibc's malloc_trim; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def examples(config: RunConfig) -> int:
    """What a run costs in the cap's unit: epochs x training images asked for."""
    return config.epochs * config.train_size


def over_budget(config: RunConfig, limit: int) -> str | None:
    """A message for the page if `config` asks for more than `limit`, else None."""
    if examples(config) <= limit:
        return None
    return (f"This run asks for {examples(config):,} training examples ({config.epochs} epochs × "
            f"{config.train_size:,} images); this server trains at most {limit:,} per run. "
            f"Lower the epochs or the training images.")


def within_budget(config: RunConfig, limit: int) -> RunConfig:
    """The nearest config under the cap: fewer epochs first (the curve's shape over steps is
    what the explorer shows), then fewer images, never below one epoch or one batch."""
    if examples(config) <= limit:
        return config
    epochs = max(1, min(config.epochs, limit // config.train_size))
    train_size = max(config.batch_size, 100, min(config.train_size, limit // epochs))
    return config.replace(epochs=epochs, train_size=train_size)


def nearest(config: RunConfig, candidates: list[RunConfig]) -> RunConfig | None:
    """The candidate that differs from `config` in the fewest fields that decide a run (ties: the
    earliest in the list), or None if there are none."""
    def distance(other: RunConfig) -> int:
        used = set(config.to_strings()) - (config.unused_fields() & other.unused_fields())
        mine, theirs = config.to_strings(), other.to_strings()
        return sum(mine[f] != theirs[f] for f in used)

    return min(candidates, key=distance, default=None)


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

    def configs(self) -> list[RunConfig]:
        """The configs held, most recently used first."""
        with self._lock:
            return [r.config for r in reversed(self._items.values())]

    def __len__(self) -> int:
        return len(self._items)


MAX_QUEUE_ENV = "GRADVIZ_MAX_QUEUE"
DEFAULT_MAX_QUEUE = 40  # trainings waiting behind the running one: ~40 s of queue for small runs on 2 cores
RECLAIM_SECONDS = 2.0  # a session that reruns while queued gets its place back within this time


def max_queue() -> int:
    """The queue's cap in force: GRADVIZ_MAX_QUEUE if it is a whole number >= 0, else the default."""
    raw = os.environ.get(MAX_QUEUE_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_QUEUE
    if raw.isdigit():
        return int(raw)
    LOG.warning("ignoring %s=%r (not a whole number >= 0); using %d", MAX_QUEUE_ENV, raw, DEFAULT_MAX_QUEUE)
    return DEFAULT_MAX_QUEUE


class QueueFull(RuntimeError):
    """The server's queue is at its cap: a newcomer is turned away instead of waiting."""

    def __init__(self, waiting: int, cap: int):
        self.waiting, self.cap = waiting, cap
        super().__init__(f"{waiting} trainings are waiting (this server queues at most {cap})")


class Superseded(RuntimeError):
    """The same session asked again while this request waited; the newer request took its place."""


class _Ticket:
    def __init__(self, owner: object | None):
        self.owner = owner
        self.running = False
        self.superseded = False
        self.reclaim_until: float | None = None  # set when its waiter left: a place held for the owner


class TrainingGate:
    """One training at a time per process (2 cores do not train two models faster than one);
    others wait first-come first-served and are told how many are ahead of them.

    Rules: a caller with an `owner` (a browser session) holds at most one place in the queue:
    asking again while it waits takes over its own place instead of adding another (and a
    request that left its place, as a Streamlit rerun does, gets it back if the same owner asks
    again within RECLAIM_SECONDS). Beyond `max_queue()` waiting requests a newcomer gets QueueFull.
    """

    def __init__(self, poll_seconds: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self._cond = threading.Condition()
        self._queue: list[_Ticket] = []
        self.poll_seconds = poll_seconds
        self._clock = clock

    @contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None, owner: object | None = None) -> Iterator[None]:
        """Block until it is this caller's turn. on_wait(ahead) is called while waiting; if it
        raises (a Streamlit rerun does), the caller leaves the queue and nothing is left held.
        Raises QueueFull at once if the queue is at its cap, Superseded if the same owner asked
        again while this call waited."""
        ticket = self._enter(owner)
        try:
            while True:
                with self._cond:
                    if ticket.superseded:
                        raise Superseded()
                    ahead = self._ahead(ticket)
                    if ahead == 0:
                        ticket.running = True
                        break
                if on_wait is not None:
                    on_wait(ahead)
                with self._cond:
                    self._cond.wait(self.poll_seconds)
            yield
        finally:
            self._leave(ticket)

    def _enter(self, owner: object | None) -> _Ticket:
        ticket = _Ticket(owner)
        with self._cond:
            self._forget_expired()
            mine = next((t for t in self._queue if owner is not None and t.owner == owner and not t.running), None)
            if mine is not None:  # this session's earlier request: the new one takes its place
                mine.superseded = True
                self._queue[self._queue.index(mine)] = ticket
            else:
                waiting, cap = self.waiting, max_queue()
                if self._queue and waiting >= cap:
                    raise QueueFull(waiting, cap)
                self._queue.append(ticket)
            self._cond.notify_all()
        return ticket

    def _leave(self, ticket: _Ticket) -> None:
        with self._cond:
            if ticket in self._queue:
                if ticket.running or ticket.owner is None:
                    self._queue.remove(ticket)
                else:  # left while waiting (a rerun, a stop): hold the place briefly for the same owner
                    ticket.reclaim_until = self._clock() + RECLAIM_SECONDS
            self._cond.notify_all()

    def _forget_expired(self) -> None:
        now = self._clock()
        self._queue = [t for t in self._queue if t.reclaim_until is None or t.reclaim_until > now]

    def _ahead(self, ticket: _Ticket) -> int:
        """Requests that go before this one: the running one, wherever it sits (a reclaimed place
        may be ahead of it), and the live requests queued earlier."""
        self._forget_expired()
        index = self._queue.index(ticket)
        running = sum(1 for t in self._queue if t.running)
        return running + sum(1 for t in self._queue[:index] if not t.running and t.reclaim_until is None)

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn (the running one and held places not counted)."""
        with self._cond:
            return sum(1 for t in self._queue if not t.running and t.reclaim_until is None)


class RunCoordinator:
    """What every session in one server process shares."""

    def __init__(self):
        self.cache = ResultCache()
        self.gate = TrainingGate()
        self.trainings_started = 0  # counted for tests and the server log


COORDINATOR = RunCoordinator()
