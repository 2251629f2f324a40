"""A host's settings, read from the environment each time they are asked for (so a host, or a test,
can change one without a restart): the caps per request, the cache budget and the queue. A value
that is not a whole number in range is ignored, said once in the server log, and the default used."""

from __future__ import annotations

import logging
import os

LOG = logging.getLogger("gradviz")

MAX_EXAMPLES_ENV, DEFAULT_MAX_EXAMPLES = "GRADVIZ_MAX_EXAMPLES", 300_000  # epochs x images per training
MAX_MEMORY_ENV, DEFAULT_MAX_MEMORY_MB = "GRADVIZ_MAX_MEMORY_MB", 800  # estimated peak per training or probe
CACHE_MB_ENV, DEFAULT_CACHE_MB = "GRADVIZ_CACHE_MB", 320  # the caches together (sharpness graphs: half again)
MAX_QUEUE_ENV, DEFAULT_MAX_QUEUE = "GRADVIZ_MAX_QUEUE", 40  # trainings waiting behind the running one
_warned: set[tuple[str, str]] = set()


def whole_number(name: str, default: int, minimum: int = 0) -> int:
    """The environment variable `name` as a whole number >= `minimum` ("_" allowed: 50_000), else `default`."""
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    if raw.isdigit() and int(raw) >= minimum:
        return int(raw)
    if (name, raw) not in _warned:
        _warned.add((name, raw))
        LOG.warning("ignoring %s=%r (not a whole number >= %d); using %d", name, raw, minimum, default)
    return default


def max_examples() -> int:
    """GRADVIZ_MAX_EXAMPLES: training examples (epochs x images) one run may ask for."""
    return whole_number(MAX_EXAMPLES_ENV, DEFAULT_MAX_EXAMPLES, minimum=1)


def max_memory_mb() -> int:
    """GRADVIZ_MAX_MEMORY_MB: the estimated peak memory of one training or probe."""
    return whole_number(MAX_MEMORY_ENV, DEFAULT_MAX_MEMORY_MB, minimum=1)


def cache_budget_mb() -> int:
    """GRADVIZ_CACHE_MB: what the process's caches may hold together (0 turns them off); the
    sharpness graphs have half as much again, on their own (gradviz.training.sharpness_graph)."""
    return whole_number(CACHE_MB_ENV, DEFAULT_CACHE_MB)


def max_queue() -> int:
    """GRADVIZ_MAX_QUEUE: trainings that may wait behind the running one (0: nobody waits)."""
    return whole_number(MAX_QUEUE_ENV, DEFAULT_MAX_QUEUE)
