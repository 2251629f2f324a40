"""Named sweeps from the literature, each with its claim and a verdict computed from the measured
points (the slope of a log quantity over depth, or how often measurement and theory agree)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from gradviz.config import ConfigError, RunConfig
from gradviz.sweeps.grid import (
    SERIES_FIELDS,
    X_FIELDS,
    SweepResult,
    SweepSpec,
    parse_axis,
)

WIDE = RunConfig(width=256, train_size=2000, epochs=1)
LEARNS = 0.3  # validation accuracy: three times chance
CATAPULT_RANGE = 20  # "a few times 2/λ": where learning stops, as a multiple of the bound, at most this


@dataclass(frozen=True)
class SweepPreset:
    name: str
    summary: str
    spec: SweepSpec
    claim: str
    judge: Callable[[SweepResult], tuple[str, str]]  # -> (reproduced | partly | not reproduced, why)


def slopes(result: SweepResult, key: str) -> dict:
    """Per series: the least-squares slope of log10(point[key]) over x (per unit of x)."""
    found = {}
    for series in dict.fromkeys(p["series"] for p in result.points):
        rows = [(p["x"], p[key]) for p in result.points if p["series"] == series and p[key] and p[key] > 0]
        if len(rows) >= 2:
            xs, ys = np.array([r[0] for r in rows], float), np.log10([r[1] for r in rows])
            found[series] = float(np.polyfit(xs, ys, 1)[0])
    return found


def _per_layer(slope: float) -> str:
    return f"×{10 ** slope:.2g} per layer"


def judge_glorot_bengio(result: SweepResult) -> tuple[str, str]:
    found = slopes(result, "delta_ratio_first_last")
    if len(found) < 3:
        return "not reproduced", "Too few measured points to fit a slope."
    shrink = all(v < 0 for v in found.values())
    fastest = min(found, key=found.get)
    text = "; ".join(f"{s}: {_per_layer(v)}" for s, v in found.items())
    why = f"The gradient reaching the first layer, per layer of depth: {text}."
    if shrink and fastest == "sigmoid":
        return "reproduced", why
    return ("partly" if shrink or fastest == "sigmoid" else "not reproduced"), why


def judge_he(result: SweepResult) -> tuple[str, str]:
    found = slopes(result, "forward_rms_last")
    glorot, he = found.get("glorot_uniform"), found.get("he_normal")
    if glorot is None or he is None:
        return "not reproduced", "Too few measured points to fit a slope."
    why = (f"The last layer's activation RMS, per layer of depth: Glorot {_per_layer(glorot)}, He {_per_layer(he)} "
           f"(ReLU halving the variance would be ×{math.sqrt(0.5):.2g}).")
    fades, keeps = glorot < math.log10(0.8), abs(he) < math.log10(1.05)
    return ("reproduced" if fades and keeps else "partly" if fades or keeps else "not reproduced"), why


def judge_order_to_chaos(result: SweepResult) -> tuple[str, str]:
    cells = [p for p in result.points if p["y"] is not None and p["y"] >= 10 and p["predicted_delta_ratio"]
             and p["delta_ratio_first_last"] and abs(math.log10(p["predicted_delta_ratio"])) > 0.5]
    if not cells:
        return "not reproduced", "No cell deep enough and far enough from the boundary to judge."
    agree = sum((p["delta_ratio_first_last"] > 1) == (p["predicted_delta_ratio"] > 1) for p in cells) / len(cells)
    why = (f"In {agree:.0%} of the {len(cells)} cells at depth ≥ 10 and more than ×3 from the boundary, the measured "
           f"gradient vanishes where χ < 1 and explodes where χ > 1, as predicted.")
    return ("reproduced" if agree >= 0.95 else "partly" if agree >= 0.75 else "not reproduced"), why


def judge_learning_rate_law(result: SweepResult) -> tuple[str, str]:
    """Below 2/λ every run is stable (no divergence, the loss fell by 10 %); learning stops within a
    few times 2/λ (between, a run may spike and settle: the catapult). Where it stopped is stated as
    a multiple of 2/λ, computed from the points."""
    bounds = [p["stable_lr"] for p in result.points if p.get("stable_lr")]
    if not bounds or len(result.points) < 4:
        return "not reproduced", "Too few trained points with the sharpness measured (SGD or momentum MLPs only)."
    bound = float(np.median(bounds))
    learned = {p["x"]: p["diverged_at_step"] is None and (p["val_accuracy"] or 0) >= LEARNS for p in result.points}
    below = [p for p in result.points if p["x"] < bound]
    stable = sum(bool(p.get("loss_fell")) for p in below)
    stops = next((lr for lr in sorted(learned) if all(not learned[x] for x in learned if x >= lr)), None)
    why = (f"λ at initialization gives 2/λ = {bound:.3g}. Below it {stable} of {len(below)} runs are stable "
           "(the loss fell); ")
    if stops is None or not any(learned.values()):
        return "not reproduced", why + ("every learning rate tried above it still learns (try larger ones)."
                                        if stops is None else "no learning rate tried learned at this budget.")
    past = sum(learned[x] for x in learned if bound <= x < stops)
    why += (f"from {stops:.3g} up ({stops / bound:.1f}× 2/λ) none learns"
            + (f"; between, {past} run(s) past the bound still learned (the catapult)." if past else "."))
    all_stable = bool(below) and stable == len(below)
    within = 1 <= stops / bound <= CATAPULT_RANGE
    return ("reproduced" if all_stable and within else "partly" if all_stable or within else "not reproduced"), why


def _spec(base: RunConfig, x: str, series: str | None = None, y: str | None = None,
          train: bool = False) -> SweepSpec:
    return SweepSpec(base, parse_axis(x, X_FIELDS, "x"),
                     parse_axis(series, SERIES_FIELDS, "series") if series else None,
                     parse_axis(y, X_FIELDS, "y") if y else None, train)


SWEEP_PRESETS: dict[str, SweepPreset] = {p.name: p for p in (
    SweepPreset("glorot-bengio-depth",
                "Glorot & Bengio 2010: depth 2-16 with sigmoid, tanh and softsign, standard init",
                _spec(WIDE.replace(initializer="random_uniform", init_std=0.036), "depth=2:16:8",
                      "activation=sigmoid,tanh,softsign"),
                "With the standard initialization U[-1/√n, 1/√n], the gradient reaching the first layer shrinks "
                "geometrically with depth, fastest for the sigmoid (whose slope is at most 1/4).", judge_glorot_bengio),
    SweepPreset("he2015-depth", "He et al. 2015: ReLU nets of depth 5-40, Glorot vs He initialization",
                _spec(WIDE.replace(activation="relu"), "depth=5:40:8", "initializer=glorot_uniform,he_normal"),
                "With Glorot's initialization each ReLU layer halves the signal's variance, so it fades with depth; He "
                "initialization (σ_w² = 2) keeps it.", judge_he),
    SweepPreset("order-to-chaos", "Schoenholz et al. 2017: tanh, σ_w 0.5-4 x depth 2-50 at initialization",
                _spec(WIDE.replace(activation="tanh", initializer="random_normal"), "init_std=0.03125:0.25:12:log",
                      y="depth=2,4,7,10,15,20,25,30,40,50"),
                "Below χ = 1 (the ordered phase) the gradient vanishes with depth, above it (chaos) it explodes, "
                "more sharply the deeper the network: the boundary is the line χ = 1.", judge_order_to_chaos),
    SweepPreset("learning-rate-law",
                "The learning-rate law: SGD on a 6 x 128 ReLU MLP, learning rate 0.01-3, trained",
                _spec(RunConfig(optimizer="sgd", train_size=4000, epochs=1), "learning_rate=0.01:3:10:log",
                      train=True),
                "Gradient descent is stable only for steps below 2/λ, λ the loss's sharpness at initialization: "
                "below it every run is stable; a few times past it, SGD stops learning (in between a run may spike "
                "and settle somewhere flatter: the catapult, Lewkowycz et al. 2020).", judge_learning_rate_law),
)}


def get_sweep_preset(name: str) -> SweepPreset:
    if name not in SWEEP_PRESETS:
        raise ConfigError("sweep", name, "one of " + ", ".join(SWEEP_PRESETS))
    return SWEEP_PRESETS[name]
