"""Bounded LRU caches that share a memory budget: every cache in the process (results, traced
graphs, initial draws, probes, sweep traces) counts its entries' bytes against GRADVIZ_CACHE_MB,
and past it the entry used least recently, in whichever cache, is dropped. (The sharpness graphs
count against a budget of their own: gradviz.training.sharpness_graph.)

The rule: an entry's size is given by its cache's `sizeof` when it is put; an entry larger than
the whole budget is not kept (it is returned to the caller, never stored); a get or a put makes
the entry the most recently used. Thread-safe: one lock for the budget and every cache in it.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Callable, Generic, Hashable, Iterator, TypeVar

from gradviz.serving.settings import cache_budget_mb

V = TypeVar("V")


_BUDGETS: "weakref.WeakSet[CacheBudget]" = weakref.WeakSet()  # every budget alive, for cache_sizes


class CacheBudget:
    """The bytes every registered cache holds, and their entries in least-recently-used order."""

    def __init__(self, budget_bytes: int | None = None, share: float = 1.0, label: str = "shared"):
        """`budget_bytes` fixed, or else `share` of GRADVIZ_CACHE_MB; `label` names it in the server log."""
        _BUDGETS.add(self)
        self._fixed, self.share, self.label = budget_bytes, share, label
        self.lock = threading.RLock()
        self._order: OrderedDict[tuple[int, Hashable], int] = OrderedDict()  # (cache id, key) -> bytes
        self._caches: dict[int, "BoundedLRU"] = {}
        self.used = 0

    @property
    def budget_bytes(self) -> int:
        """Read from the environment each time, so a host (or a test) can change it without a restart."""
        return self._fixed if self._fixed is not None else int(cache_budget_mb() * 2**20 * self.share)

    def register(self, cache: "BoundedLRU") -> None:
        with self.lock:
            self._caches[id(cache)] = cache

    def touch(self, cache: "BoundedLRU", key: Hashable) -> None:
        self._order.move_to_end((id(cache), key))

    def add(self, cache: "BoundedLRU", key: Hashable, size: int) -> None:
        self.remove(cache, key)
        self._order[(id(cache), key)] = size
        self.used += size
        self.shrink_to(self.budget_bytes)

    def remove(self, cache: "BoundedLRU", key: Hashable) -> None:
        size = self._order.pop((id(cache), key), None)
        if size is not None:
            self.used -= size

    def shrink_to(self, limit: int) -> None:
        """Drop least recently used entries, from any cache, until at most `limit` bytes are held."""
        with self.lock:
            while self.used > limit and self._order:
                (owner, key), size = self._order.popitem(last=False)
                self.used -= size
                self._caches[owner]._forget(key)

    def sizes(self) -> dict[str, int]:
        """Bytes held per cache name (for the server log, the docs and tests)."""
        with self.lock:
            out: dict[str, int] = {}
            for (owner, _), size in self._order.items():
                name = self._caches[owner].name
                out[name] = out.get(name, 0) + size
            return out


BUDGET = CacheBudget()


def cache_sizes() -> dict[str, int]:
    """Bytes held per cache name, across every budget (the shared one, and the sharpness graphs')."""
    out: dict[str, int] = {}
    for budget in list(_BUDGETS):
        for name, size in budget.sizes().items():
            out[name] = out.get(name, 0) + size
    return out


def cache_budgets() -> dict[str, int]:
    """Each live budget's bytes by its label (the server log)."""
    return {budget.label: budget.budget_bytes for budget in list(_BUDGETS)}


class BoundedLRU(Generic[V]):
    """A dict-like cache whose entries count against a CacheBudget (the process's by default)."""

    def __init__(self, name: str, sizeof: Callable[[V], int], budget: CacheBudget = BUDGET):
        self.name, self.sizeof, self.budget = name, sizeof, budget
        self._items: dict[Hashable, V] = {}
        self.hits = self.misses = 0
        budget.register(self)

    def get(self, key: Hashable) -> V | None:
        with self.budget.lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self.budget.touch(self, key)
            self.hits += 1
            return found

    def put(self, key: Hashable, value: V) -> V:
        """Keep `value` under `key` (unless it alone is larger than the budget); returns it."""
        size = max(1, int(self.sizeof(value)))
        with self.budget.lock:
            if size > self.budget.budget_bytes:
                self.pop(key)
                return value
            self._items[key] = value
            self.budget.add(self, key, size)
        return value

    def pop(self, key: Hashable) -> V | None:
        with self.budget.lock:
            self.budget.remove(self, key)
            return self._items.pop(key, None)

    def _forget(self, key: Hashable) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        with self.budget.lock:
            for key in list(self._items):
                self.pop(key)
            self.hits = self.misses = 0

    def values_by_recency(self) -> list[V]:
        """The values held, most recently used first."""
        with self.budget.lock:
            mine = [key for owner, key in reversed(self.budget._order) if owner == id(self)]
            return [self._items[key] for key in mine if key in self._items]

    @property
    def nbytes(self) -> int:
        with self.budget.lock:
            return sum(size for (owner, _), size in self.budget._order.items() if owner == id(self))

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._items))
