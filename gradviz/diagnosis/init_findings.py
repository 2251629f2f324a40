"""Findings whose cause is the initialization: zero (symmetric) weights, a forward signal that
collapses or blows up through depth before training starts, a bounded activation started in the
chaotic phase (χ > 1), and a ReLU net too narrow for its depth (units dead before the first step).
The fix is computed from mean-field
theory (gradviz.signal.theory): the initializer, or the random_normal / random_uniform std, that puts
chi = sigma_w^2 E[phi'(z)^2] at 1 for the activation."""

from __future__ import annotations

import numpy as np

from gradviz.config import SCALED_INITIALIZERS, RunConfig
from gradviz.diagnosis.evidence import (
    CHAOTIC_CHI,
    DEAD_FRACTION,
    SIGNAL_BLOWUP,
    SIGNAL_COLLAPSE,
    Evidence,
    Finding,
    init_grad_ratio,
    pct,
    sci,
)
from gradviz.result import RunResult
from gradviz.signal import theory

RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu")
# What each activation family is started with so that chi is ~1 (He et al. 2015 for the ReLU
# family, LeCun for SELU's self-normalisation, Glorot & Bengio 2010 for the rest).
FAMILY_INIT = {**{a: "he_normal" for a in RELU_FAMILY}, "selu": "lecun_normal"}
DEFAULT_INIT = "glorot_uniform"
INIT_NAMES = {"he_normal": "He initialization (σ_w² = 2)", "lecun_normal": "LeCun initialization (σ_w² = 1)",
              "glorot_uniform": "Glorot initialization (σ_w² ≈ 1)"}


def family_init(activation: str) -> str:
    return FAMILY_INIT.get(activation, DEFAULT_INIT)


def init_fix(config: RunConfig, input_second_moment: float | None) -> tuple[dict, str]:
    """(config change, why it works): for random_normal / random_uniform the std at chi = 1 for
    this width and depth (where the theory finds one), otherwise the activation's initializer.
    Sigmoid has no initializer at chi = 1 (its slope is at most 1/4; tested: Glorot after zeros
    still did not learn), so its fix swaps in ReLU with He initialization."""
    if config.activation == "sigmoid":
        return ({"activation": "relu", "initializer": "he_normal"},
                "sigmoid's slope is at most 1/4, so no initialization puts χ at 1; ReLU with He initialization does")
    if config.initializer in SCALED_INITIALIZERS and input_second_moment is not None:
        std = theory.critical_init_std(config, input_second_moment)
        if std is not None:
            std = float(f"{std:.2g}")
            return {"init_std": std}, f"σ = {std:g} puts χ at 1 for {config.activation} at this width and depth"
    target = family_init(config.activation)
    if target == config.initializer:
        return {}, ""
    return {"initializer": target}, f"{INIT_NAMES[target]} puts χ near 1 for {config.activation}"


def _severity(e: Evidence) -> str:
    return "warning" if e.learning else "critical"


def symmetric_init(r: RunResult, e: Evidence) -> Finding | None:
    """Every weight starts at 0: a layer's units compute the same thing and get the same update."""
    if r.config.initializer != "zeros":
        return None
    fix, why = init_fix(r.config, e.input_second_moment)
    spread = f"{sci(e.init_spread[0])}" if len(e.init_spread) else "0"
    return Finding(
        "symmetric_init", _severity(e),
        f"Every weight starts at 0, so all units of a layer compute the same value (activation spread at "
        f"initialization: {spread}) and receive the same gradient, which is exactly 0 for every hidden "
        f"kernel: nothing can make them differ, whatever the learning rate ({e.learning_note()}). The cause "
        f"is the initialization; {why}.",
        {"initializer": "zeros", "init_spread_first": float(e.init_spread[0]) if len(e.init_spread) else 0.0,
         "val_accuracy": e.val_accuracy}, fix)


def _theory_note(config: RunConfig, e: Evidence) -> tuple[str, dict]:
    prediction = e.prediction(config)
    if prediction is None:
        return f" (mean-field theory does not cover this model: {theory.not_covered(config)})", {}
    chi = sum(prediction.hidden_chi) / len(prediction.hidden_chi)
    first_scale = theory.weight_scale(config, config.width, config.width)
    return (f". Mean-field theory predicts it: with σ_w² = {first_scale:.2g} per hidden layer, "
            f"χ = σ_w²·E[φ′(z)²] ≈ {chi:.2g}, so going back through a layer the gradient changes "
            f"×{prediction.grad_factor_per_layer:.2g}"), {"predicted_chi": chi, "sigma_w2": first_scale,
                                                          "predicted_grad_factor": prediction.grad_factor_per_layer}


def signal_through_depth(r: RunResult, e: Evidence) -> Finding | None:
    """The activations' spread at initialization shrinks (or grows) ~geometrically with depth."""
    ratio = e.signal_ratio
    if r.config.initializer == "zeros" or ratio is None or SIGNAL_COLLAPSE <= ratio <= SIGNAL_BLOWUP:
        return None
    collapse = ratio < SIGNAL_COLLAPSE
    layers = r.act_layers
    theory_note, predicted = _theory_note(r.config, e)
    fix, why = init_fix(r.config, e.input_second_moment)
    consequence = (
        "Each kernel's gradient is its input times the gradient reaching it, so the two shrinkages meet and "
        f"every layer's gradient is small together (first/last {sci(e.ratio)}: that ratio alone looks fine)"
        if collapse else "Activations and gradients both grow with depth, so the first steps are huge")
    remedy = f"; {why}." if fix else "; no single change of initializer is known to fix this model."
    return Finding(
        "signal_collapse" if collapse else "signal_blowup", _severity(e),
        f"At initialization the forward signal {'fades' if collapse else 'blows up'} through depth: the "
        f"activations' spread is {sci(e.init_spread[0])} after {layers[0]} and {sci(e.init_spread[-1])} after "
        f"{layers[-1]} (×{sci(ratio)}){theory_note}. {consequence} ({e.learning_note()}). The cause is the "
        f"initialization's scale for {r.config.activation} at depth {r.config.depth}{remedy}",
        {"init_spread_first": float(e.init_spread[0]), "init_spread_last": float(e.init_spread[-1]),
         "signal_ratio": ratio, "grad_norm_ratio_first_last": e.ratio, "val_accuracy": e.val_accuracy, **predicted},
        fix)


BOUNDED = ("sigmoid", "tanh", "softsign")
NARROW_WIDTH, WIDER = 128, 4  # a ReLU net narrower than this is tried WIDER times wider, at least this wide


def wider(config: RunConfig) -> int | None:
    """The width a narrow ReLU-family net is tried at, or None where it is not narrow."""
    if config.activation not in RELU_FAMILY or config.width >= NARROW_WIDTH:
        return None
    return max(config.width * WIDER, NARROW_WIDTH)


def chaotic(r: RunResult, e: Evidence) -> Finding | None:
    """A bounded activation started with χ > 1: the chaotic phase (Poole et al. 2016). Going back
    the gradient grows by √χ a layer while the units sit at their flat ends. Named from the theory's
    χ, with the measured first/output gradient ratio at the first step beside it (it must show the
    growth: where it does not, the theory's picture is not what happened, and nothing is said)."""
    config = r.config
    prediction = e.prediction(config)
    if config.activation not in BOUNDED or config.initializer == "zeros" or prediction is None:
        return None
    chi = sum(prediction.hidden_chi) / len(prediction.hidden_chi)
    measured = init_grad_ratio(r)
    if chi <= CHAOTIC_CHI or measured <= 1:
        return None
    fix, why = init_fix(config, e.input_second_moment)
    saturated = r.act_stats[0, :, 3] if r.act_stats.size else []
    most = f"; up to {pct(max(saturated))} of a layer's units start at the flat ends" if len(saturated) else ""
    return Finding(
        "chaotic", _severity(e),
        f"The network starts in the chaotic phase: with {config.activation} and σ_w² = "
        f"{theory.weight_scale(config, config.width, config.width):.2g}, mean-field theory gives χ ≈ {chi:.2g} > 1, "
        f"so going back through a layer the gradient grows ×{prediction.grad_factor_per_layer:.2g}; measured at "
        f"the first step, the first layer's gradient is {sci(measured)} × the output layer's{most} "
        f"({e.learning_note()}). The cause is the initialization's scale{'; ' + why if fix else ''}.",
        {"predicted_chi": chi, "grad_norm_ratio_first_last_at_init": measured, "val_accuracy": e.val_accuracy},
        fix)


def narrow(r: RunResult, e: Evidence) -> Finding | None:
    """A ReLU-family net whose units are already dead at initialization in some layer: with few units
    per layer, one layer where most happen to be off cuts the signal for every layer after it (the
    dying-ReLU cascade of narrow deep nets, Lu et al. 2019). More units per layer make it unlikely."""
    config = r.config
    if config.activation not in RELU_FAMILY or config.architecture != "mlp" or not r.act_stats.size:
        return None
    dead, width = r.act_stats[0, :, 2], wider(config)
    if width is None or not np.isfinite(dead).any() or not np.nanmax(dead) >= DEAD_FRACTION:
        return None  # a wide net with dead units at the start: not the width's doing (the symptom rules speak)
    worst = int(np.nanargmax(dead))
    fix = {"width": width}
    return Finding(
        "narrow", _severity(e),
        f"Before the first step {pct(dead[worst])} of the units in {r.act_layers[worst]} output 0 for every "
        f"image checked: with {config.width} units per layer and {config.depth} layers, a layer where most units "
        f"happen to be off cuts the signal and the gradient for everything after it ({e.learning_note()}). The "
        f"cause is the width for this depth; {width} units per layer make it unlikely.",
        {"dead_fraction_at_init": float(dead[worst]), "layer": r.act_layers[worst], "val_accuracy": e.val_accuracy},
        fix)
