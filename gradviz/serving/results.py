"""What every session in one server process shares: finished runs (a bounded cache of numbers,
counted against the process's cache budget), the training gate and the memory gate."""

from __future__ import annotations

from gradviz.config import RunConfig
from gradviz.result import RunResult
from gradviz.serving.gate import MemoryGate, TrainingGate
from gradviz.serving.lru import BoundedLRU

ENTRY_OVERHEAD = 64 * 1024  # a result's Python objects around its arrays (config, metadata, dicts)


class ResultCache(BoundedLRU[RunResult]):
    """RunResults keyed by RunConfig.cache_key(). Numbers only: a RunResult holds no Keras
    objects, so nothing big outlives a run."""

    def __init__(self, **budget):
        super().__init__("results", lambda result: result.nbytes() + ENTRY_OVERHEAD, **budget)

    def configs(self) -> list[RunConfig]:
        """The configs held, most recently used first."""
        return [result.config for result in self.values_by_recency()]


def nearest(config: RunConfig, candidates: list[RunConfig]) -> RunConfig | None:
    """The candidate that differs from `config` in the fewest fields that decide a run (ties: the
    earliest in the list), or None if there are none."""
    def distance(other: RunConfig) -> int:
        used = set(config.to_strings()) - (config.unused_fields() & other.unused_fields())
        mine, theirs = config.to_strings(), other.to_strings()
        return sum(mine[f] != theirs[f] for f in used)

    return min(candidates, key=distance, default=None)


class RunCoordinator:
    """What every session in one server process shares."""

    def __init__(self):
        self.cache = ResultCache()
        self.gate = TrainingGate()
        self.memory = MemoryGate()
        self.trainings_started = 0  # counted for tests and the server log


COORDINATOR = RunCoordinator()
