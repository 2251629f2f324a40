"""What one request may ask of a shared server, checked before anything is built: training
examples (GRADVIZ_MAX_EXAMPLES) and memory (GRADVIZ_MAX_MEMORY_MB, from the cost model), with the
message a refusal shows and the closest config that fits.

The rules: a training may use at most `max_examples()` examples (epochs x images) and its
estimated peak memory may not pass `max_memory_mb()`; the same memory cap holds for an init-time
probe. Over a limit the caller gets a message with the numbers and the closest config that fits: fewer
epochs or images for the examples; for memory the single change that keeps the most of the
network (of the largest batch size, image count, width and depth that fit, the one cut by the
smallest factor; ties in that order), or if no single change fits, the field that saves the most
stepped down until one does.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

from gradviz.config import RULES, ConfigError, RunConfig
from gradviz.serving import cost
from gradviz.serving.settings import MAX_MEMORY_ENV, max_memory_mb

LOG = logging.getLogger("gradviz")

SHRINKABLE = ("batch_size", "train_size", "width", "depth")  # ties between equal cuts go in this order
OUT_OF_MEMORY = ("MemoryError", "ResourceExhaustedError")  # Python's, and TensorFlow's (by name: no import)


# --- training examples -------------------------------------------------------------------------


def examples(config: RunConfig) -> int:
    """What a run costs in the examples cap's unit: epochs x training images asked for."""
    return config.epochs * config.train_size


def over_budget(config: RunConfig, limit: int) -> str | None:
    """A message for the page if `config` asks for more than `limit` examples, else None."""
    if examples(config) <= limit:
        return None
    return (f"This run asks for {examples(config):,} training examples ({config.epochs} epochs × "
            f"{config.train_size:,} images); this server trains at most {limit:,} per run. "
            f"Lower the epochs or the training images.")


def within_budget(config: RunConfig, limit: int) -> RunConfig:
    """The nearest config under the examples cap: fewer epochs first (the curve's shape over steps
    is what the explorer shows), then fewer images, never below one epoch or one batch."""
    if examples(config) <= limit:
        return config
    epochs = max(1, min(config.epochs, limit // config.train_size))
    train_size = max(config.batch_size, 100, min(config.train_size, limit // epochs))
    return config.replace(epochs=epochs, train_size=train_size)


# --- memory --------------------------------------------------------------------------------------


def estimate_memory(config: RunConfig, what: str = "training", images: int | None = None) -> cost.Estimate:
    """The peak memory of training or probing `config`, estimated before anything is built.

    Args:
        config: any config.
        what: "training" or "probe" (the init-time measurement).
        images: training images the data holds, if fewer than config.train_size.
    Returns:
        An Estimate: `mb`, and its `parts` named (weights, activations, images, ...).
    """
    return cost.training(config, images) if what == "training" else cost.probe(config)



class MemoryLimit(Exception):
    """A config whose estimated peak memory is over the cap; `closest` fits (None: nothing does)."""

    def __init__(self, config: RunConfig, what: str, found: cost.Estimate, cap_mb: int, closest: RunConfig | None,
                 images: int | None = None):
        self.config, self.what, self.estimate, self.cap_mb, self.closest = config, what, found, cap_mb, closest
        self.images = images  # what the estimates were made for (training images the data holds)
        super().__init__(memory_message(self))

    def __reduce__(self):  # pickled whole (a Dask worker's refusal reaches the server as itself)
        return MemoryLimit, (self.config, self.what, self.estimate, self.cap_mb, self.closest, self.images)

    def closest_estimate(self) -> cost.Estimate | None:
        """The closest config's own estimate, on the same images (None if nothing fits)."""
        return None if self.closest is None else estimate_memory(self.closest, self.what, self.images)


def memory_message(limit: MemoryLimit, markdown: bool = False, closest: bool = True) -> str:
    """One line: the estimate (and its largest parts), the cap, and (unless `closest` is False) the
    closest config that fits."""
    verb = "training this network" if limit.what == "training" else "measuring this network at initialization"
    bold = "**" if markdown else ""
    line = (f"{verb.capitalize()} needs about {bold}{limit.estimate.mb:,.0f} MB{bold} ({limit.estimate.describe()}); "
            f"the cap here is {limit.cap_mb:,} MB per training or probe ({MAX_MEMORY_ENV}).")
    if closest and limit.closest is not None:
        line += f" The closest config that fits: {describe_change(limit.config, limit.closest)}."
    return line


def describe_change(config: RunConfig, other: RunConfig) -> str:
    """'width=512, batch_size=64': the fields `other` changes, as a link or --set writes them."""
    mine, theirs = config.to_strings(), other.to_strings()
    return ", ".join(f"{f}={theirs[f]}" for f in theirs if mine[f] != theirs[f]) or "the same settings"


def check_memory(config: RunConfig, what: str = "training", images: int | None = None,
                 cap_mb: int | None = None) -> cost.Estimate:
    """The estimate if it fits under the cap; raises MemoryLimit (with the closest config) if not."""
    cap = max_memory_mb() if cap_mb is None else cap_mb
    found = estimate_memory(config, what, images)
    if found.mb <= cap:
        return found
    closest = closest_fitting(config, lambda c: estimate_memory(c, what, images).mb, cap)
    raise MemoryLimit(config, what, found, cap, closest, images)


def _smaller_values(config: RunConfig, field: str) -> list:
    """Values of `field` below the config's, largest first: halvings for sizes, every depth."""
    now, rule = getattr(config, field), RULES[field]
    if field == "depth":
        return list(range(now - 1, int(rule.low) - 1, -1))
    values, value = [], now
    while value // 2 >= rule.low:
        value //= 2
        values.append(value)
    return values + ([int(rule.low)] if now > rule.low and (not values or values[-1] > rule.low) else [])


def _with(config: RunConfig, field: str, value) -> RunConfig | None:
    changes = {field: value}
    if field == "train_size" and config.batch_size > value:  # a batch never outgrows the images
        changes["batch_size"] = max(int(RULES["batch_size"].low), 2 ** int(math.log2(value)))
    try:
        return config.replace(**changes)
    except ConfigError:
        return None


def closest_fitting(config: RunConfig, size: Callable[[RunConfig], float], cap: float) -> RunConfig | None:
    """The config closest to `config` whose size(config) is at most `cap` (see the module's rule), or None."""
    def ok(candidate: RunConfig) -> bool:
        return size(candidate) <= cap

    if ok(config):
        return config
    current = config
    for _ in range(64):
        single = []
        for order, field in enumerate(SHRINKABLE):
            if field in current.unused_fields():
                continue
            for value in _smaller_values(current, field):
                candidate = _with(current, field, value)
                if candidate is not None and ok(candidate):
                    single.append((math.log(getattr(current, field) / value), order, candidate))
                    break
        if single:
            return min(single, key=lambda t: t[:2])[2]
        steps = [c for c in (_with(current, f, (_smaller_values(current, f) or [None])[0])
                             for f in SHRINKABLE if f not in current.unused_fields() and _smaller_values(current, f))
                 if c is not None]
        if not steps:
            return None
        current = min(steps, key=size)
    return None
