"""Who trains when in one server process: one training at a time, first come first served, one
place per browser session, a cap on the queue (TrainingGate); and at most 1.25 x
GRADVIZ_MAX_MEMORY_MB of estimated work (trainings and init-time probes) at once (MemoryGate)."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from gradviz.serving.settings import max_memory_mb, max_queue

LOG = logging.getLogger("gradviz")

RECLAIM_SECONDS = 2.0  # a session that reruns while queued gets its place back within this time


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


WORK_HEADROOM = 1.25  # trainings and probes at once: up to 1.25 x the per-work cap (see MemoryGate)


def work_capacity_mb() -> float:
    """The memory for work running at once: one training at the cap leaves room for the init view's
    small probes beside it, but two large pieces of work never run together."""
    return WORK_HEADROOM * max_memory_mb()


class MemoryGate:
    """At most `capacity_mb()` of estimated peak memory reserved at once; reservations are served
    first come first served, so a large one is never starved by a stream of small ones. A
    reservation larger than the whole capacity (checked against the cap before it gets here)
    waits until nothing else is reserved, then runs alone."""

    def __init__(self, capacity_mb: Callable[[], float] = work_capacity_mb, poll_seconds: float = 0.5):
        self._capacity = capacity_mb
        self._cond = threading.Condition()
        self._waiting: list[object] = []
        self.reserved = 0.0
        self.holders = 0  # counted, not read off `reserved`: float sums need not come back to exactly 0
        self.poll_seconds = poll_seconds

    @contextmanager
    def reserve(self, mb: float, on_wait: Callable[[float], None] | None = None) -> Iterator[None]:
        """Hold `mb` for the duration of the block. on_wait(reserved_mb) is called while waiting;
        if it raises (a Streamlit rerun does), the caller leaves the line and holds nothing."""
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
        try:
            while True:
                with self._cond:
                    if self._waiting[0] is ticket and (self.holders == 0 or self.reserved + mb <= self._capacity()):
                        self._waiting.pop(0)
                        self.reserved += mb
                        self.holders += 1
                        self._cond.notify_all()
                        break
                    held = self.reserved
                if on_wait is not None:
                    on_wait(held)
                with self._cond:
                    self._cond.wait(self.poll_seconds)
        except BaseException:
            with self._cond:
                self._waiting.remove(ticket)
                self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self.holders -= 1
                self.reserved = max(0.0, self.reserved - mb) if self.holders else 0.0
                self._cond.notify_all()
