"""Sweeps: a grid of configs (an x field, optionally a series field and a y field, over a base
config) measured at initialization or trained, point by point. No Streamlit, no TensorFlow at
import: the init-time probe and the trainer are imported when a sweep runs.

A SPEC is `v1,v2,...`, `start:stop:count` (linear) or `start:stop:count:log`; whole-number fields
round to whole numbers (duplicates dropped). Every value is checked by RunConfig's rules, and a
sweep that is too large, over the server's training budget, or sweeps a field its configs do not
read is refused with a message naming the field and the limit (ConfigError), before anything runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from gradviz.config import RULES, ConfigError, RunConfig, format_value, parse_value
from gradviz.result import finite_or_none
from gradviz.serving import limits
from gradviz.serving.settings import max_memory_mb
from gradviz.signal.step_bound import stable_lr

X_FIELDS = ("depth", "init_std", "init_gain", "learning_rate", "width", "step_pixels")
SERIES_FIELDS = ("activation", "initializer", "optimizer", "batch_norm", "residual")
MAX_INIT_POINTS = 400  # at initialization a point is a probe: milliseconds each on the shared path
MAX_TRAINED_POINTS = 40  # trained, a point is a training run
TRAINED_BUDGET = {"train_size": 2000, "epochs": 1}  # a trained sweep's default budget per point


@dataclass(frozen=True)
class Axis:
    field: str
    values: tuple

    def to_json(self) -> dict:
        return {"field": self.field, "values": list(self.values)}


def parse_axis(text: str, allowed: tuple[str, ...], role: str) -> Axis:
    """'depth=2:50:10' -> Axis('depth', (2, 7, ...)). ConfigError names the field and the rule."""
    name, sep, spec = str(text).partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not spec:
        raise ConfigError(role, text,
                          f"FIELD=SPEC, e.g. {allowed[0]}=2:20:10 (SPEC: v1,v2,... or start:stop:count[:log])")
    if name not in allowed:
        raise ConfigError(role, name, "one of " + ", ".join(allowed))
    return Axis(name, _values(name, spec))


def _values(name: str, spec: str) -> tuple:
    if ":" not in spec:
        raw = [part.strip() for part in spec.split(",") if part.strip()]
    else:
        parts = spec.split(":")
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3].strip().lower() != "log"):
            raise ConfigError(name, spec, "start:stop:count or start:stop:count:log")
        try:
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(name, spec, "start and stop are numbers, count a whole number") from None
        if not 2 <= count <= MAX_INIT_POINTS:
            raise ConfigError(name, spec, f"a count from 2 to {MAX_INIT_POINTS}")
        if len(parts) == 4 and (start <= 0 or stop <= 0):
            raise ConfigError(name, spec, "a log range needs start and stop > 0")
        grid = np.geomspace(start, stop, count) if len(parts) == 4 else np.linspace(start, stop, count)
        raw = [repr(float(v)) for v in grid]
    if RULES[name].kind == "int":
        raw = [str(round(float(v))) if _is_number(v) else v for v in raw]
    values = [parse_value(name, v) for v in raw]  # ConfigError names the field and the value
    return tuple(dict.fromkeys(values))


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: the base config, x (and a series, and a y for a phase diagram), the mode."""

    base: RunConfig
    x: Axis
    series: Axis | None = None
    y: Axis | None = None
    train: bool = False

    def points(self) -> list[tuple]:
        """[(x value, series value or None, y value or None, config)], checked (see check)."""
        found = []
        for s in (self.series.values if self.series else (None,)):
            for yv in (self.y.values if self.y else (None,)):
                for xv in self.x.values:
                    changes = {self.x.field: xv}
                    if self.series:
                        changes[self.series.field] = s
                    if self.y:
                        changes[self.y.field] = yv
                    found.append((xv, s, yv, self.base.replace(**changes)))
        return found

    def check(self, max_examples: int | None = None) -> list[tuple]:
        """The points, or ConfigError: too many, a swept field its configs do not read, or (trained)
        over `max_examples` training examples in all."""
        if self.y and self.y.field in (self.x.field, self.series.field if self.series else None):
            raise ConfigError("y", self.y.field, "a field other than x's and the series'")
        count = (len(self.x.values) * (len(self.series.values) if self.series else 1)
                 * (len(self.y.values) if self.y else 1))
        limit = MAX_TRAINED_POINTS if self.train else MAX_INIT_POINTS
        if count > limit:
            raise ConfigError("points", count,
                              f"at most {limit} points {'trained' if self.train else 'at initialization'}")
        points = self.points()
        for axis in (a for a in (self.x, self.series, self.y) if a):
            idle = next((c for *_, c in points if axis.field in c.unused_fields()), None)
            if idle is not None:
                raise ConfigError(axis.field, getattr(idle, axis.field), _unused_reason(axis.field, idle))
        if self.train and max_examples is not None:
            total = sum(c.epochs * c.train_size for *_, c in points)
            if total > max_examples:
                raise ConfigError("budget", f"{total:,} training examples",
                                  f"this server trains at most {max_examples:,} per request ({len(points)} points x "
                                  f"{points[0][3].epochs} epoch(s) x {points[0][3].train_size:,} images)")
        return points

    def check_memory(self, cap_mb: int | None = None) -> None:
        """MemoryLimit naming the point with the largest estimate (its training, or at
        initialization its probe) if it is over the cap; every point runs on its own, so the
        largest is what the sweep needs at once."""
        what = "training" if self.train else "probe"
        worst = max((c for *_, c in self.points()), key=lambda c: limits.estimate_memory(c, what).mb)
        limits.check_memory(worst, what, cap_mb=cap_mb)

    def within_memory(self, cap_mb: int | None = None) -> "SweepSpec | None":
        """The same sweep without the axis values whose points are over the memory cap (None if
        no point fits): what a page offers in one click."""
        what = "training" if self.train else "probe"
        cap = max_memory_mb() if cap_mb is None else cap_mb
        over = [p for p in self.points() if limits.estimate_memory(p[3], what).mb > cap]
        axes = [a for a in (self.x, self.series, self.y) if a is not None]
        keep = {a.field: [v for v in a.values if not any(getattr(p[3], a.field) == v for p in over)] for a in axes}
        best = max(axes, key=lambda a: len(keep[a.field]) / len(a.values))  # cut the one axis that loses least
        values = tuple(keep[best.field])
        if not values:
            return None
        cut = {"x": self.x, "series": self.series, "y": self.y}
        for role, axis in cut.items():
            if axis is best:
                cut[role] = Axis(axis.field, values)
        fitted = SweepSpec(self.base, cut["x"], cut["series"], cut["y"], self.train)
        return fitted if all(limits.estimate_memory(c, what).mb <= cap for *_, c in fitted.points()) else None

    def within_budget(self, max_examples: int) -> "SweepSpec":
        """The largest sweep over the same points that fits: fewer images (then epochs) per point."""
        per_point = max(max_examples // len(self.points()), RULES["train_size"].low)
        fitted = limits.within_budget(self.base, per_point)
        return SweepSpec(fitted, self.x, self.series, self.y, self.train)

    def to_strings(self) -> dict[str, str]:
        """The sweep's own URL / CLI keys (the base config's fields go beside them)."""
        out = {"x": _axis_text(self.x), "mode": "trained" if self.train else "init"}
        if self.series:
            out["series"] = _axis_text(self.series)
        if self.y:
            out["y"] = _axis_text(self.y)
        return out


def _axis_text(axis: Axis) -> str:
    return f"{axis.field}=" + ",".join(format_value(v) for v in axis.values)


def _unused_reason(name: str, config: RunConfig) -> str:
    if name == "init_std":
        return f"only random_normal and random_uniform read it, and initializer={config.initializer} (set " \
               f"initializer=random_normal to sweep it)"
    if name == "init_gain":
        return f"only orthogonal reads it (initializer={config.initializer})"
    if name == "step_pixels":
        return f"only rnn, lstm and gru read it (architecture={config.architecture})"
    return f"architecture={config.architecture} does not use it"


@dataclass
class SweepResult:
    spec: SweepSpec
    points: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        """The `python -m gradviz sweep --json` object (the contract: docs/cli.md)."""
        return {"config": self.spec.base.to_dict(), "x": self.spec.x.to_json(),
                "series": self.spec.series.to_json() if self.spec.series else None,
                "y": self.spec.y.to_json() if self.spec.y else None,
                "mode": "trained" if self.spec.train else "init", "points": self.points,
                "seconds": round(self.seconds, 3)}



def probe_point(xv, s, yv, probe) -> dict:
    """A point measured at initialization, with the theory's prediction where it applies."""
    depth = probe.config.depth
    prediction = probe.prediction
    # the last hidden layer
    forward_last = probe.forward_rms[-2] if len(probe.forward_rms) > 1 else probe.forward_rms[-1]
    return {"x": xv, "series": s, "y": yv, "ratio_first_last": finite_or_none(probe.ratio_first_last),
            "delta_ratio_first_last": finite_or_none(probe.delta_ratio_first_last),
            "forward_rms_last": finite_or_none(forward_last),
            "predicted_ratio": finite_or_none(prediction.ratio_first_last) if prediction else None,
            "predicted_delta_ratio": finite_or_none(prediction.delta_ratio_first_last) if prediction else None,
            "predicted_forward_rms_last": finite_or_none(math.sqrt(prediction.act_second_moment[depth - 1]))
            if prediction else None}


def run_init(spec: SweepSpec, x: np.ndarray, y: np.ndarray, data: dict | None = None,
             on_point: Callable[[dict], None] | None = None) -> SweepResult:
    """Every point measured at initialization. Plain MLPs that differ only in depth (and
    random_normal std) are measured together (gradviz.signal.family); the rest one by one."""
    from gradviz.signal.family import measure_family
    from gradviz.signal.probe import PROBES, fast_path, measure

    started, result = time.perf_counter(), SweepResult(spec)
    points = spec.check()
    families: dict[str, list] = {}
    for point in points:
        config = point[3]
        key = config.replace(depth=1, init_std=0.05 if config.initializer == "random_normal" else config.init_std)
        families.setdefault(key.cache_key() if fast_path(config) else config.cache_key(), []).append(point)
    measured = {}
    for group in families.values():
        configs = [p[3] for p in group]
        if fast_path(configs[0]) and len(group) > 1:
            stds = sorted({c.init_std for c in configs}) if configs[0].initializer == "random_normal" else None
            family = measure_family(configs[0], x, y, [c.depth for c in configs], stds, data)
            for c in configs:
                measured[c] = family[(c.depth, c.init_std if stds else configs[0].init_std)]
        else:
            for c in configs:
                measured[c] = PROBES.get_for(c) or measure(c, x, y, data)
    for xv, s, yv, config in points:
        probe = measured[config]
        PROBES.keep(probe)
        result.points.append(probe_point(xv, s, yv, probe))
        if on_point is not None:
            on_point(result.points[-1])
    result.seconds = time.perf_counter() - started
    return result


def trained_point(xv, s, yv, run) -> dict:
    final = run.final()
    return {"x": xv, "series": s, "y": yv, "ratio_first_last": finite_or_none(run.grad_norm_ratio_first_last()),
            "forward_rms_last": finite_or_none(float(np.sqrt(np.sum(run.act_stats[0, -1, :2] ** 2))))
            if run.act_stats.shape[1] else None,
            "predicted_ratio": None, "val_accuracy": final["val_accuracy"], "diverged_at_step": run.diverged_at_step,
            "loss_fell": bool(run.train_loss[-1] < 0.9 * run.train_loss[0]) and not run.diverged,
            "lambda_max_init": finite_or_none(run.sharpness_at_init()),
            "stable_lr": finite_or_none(stable_lr(run.sharpness_at_init(), run.config.optimizer))}


def run_trained(spec: SweepSpec, obtain: Callable[[RunConfig], object], max_examples: int | None = None,
                on_point: Callable[[dict], None] | None = None) -> SweepResult:
    """Every point trained (or found) by `obtain(config) -> RunResult or None`; a None stops the
    sweep there (a session that left, a failed run): what has finished is returned."""
    started, result = time.perf_counter(), SweepResult(spec)
    for xv, s, yv, config in spec.check(max_examples):
        run = obtain(config)
        if run is None:
            break
        result.points.append(trained_point(xv, s, yv, run))
        if on_point is not None:
            on_point(result.points[-1])
    result.seconds = time.perf_counter() - started
    return result
