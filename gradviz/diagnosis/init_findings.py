"""Findings whose cause is the initialization: zero (symmetric) weights, and a forward signal that
collapses or blows up through depth before training starts. The fix is computed from mean-field
theory (gradviz.signal.theory): the initializer, or the random_normal / random_uniform std, that puts
chi = sigma_w^2 E[phi'(z)^2] at 1 for the activation."""

from __future__ import annotations

from gradviz.config import SCALED_INITIALIZERS, RunConfig
from gradviz.diagnosis.evidence import (
    SIGNAL_BLOWUP,
    SIGNAL_COLLAPSE,
    Evidence,
    Finding,
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
