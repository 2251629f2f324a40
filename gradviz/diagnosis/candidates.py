"""The single changes worth trying on a failing run, derived from its causes (no TensorFlow).

The rule: every problem finding proposes the changes its cause suggests, root cause first: its own
fix; for the initialization, the scale the theory puts at χ = 1 (a std, the activation family's
initializer, an orthogonal gain of 1); for the step, a learning rate computed from the curvature
(half of 2/λ for SGD) or a tenth of it; then the architecture's remedies (ReLU with He init for a
bounded activation, leaky ReLU for dead units, batch norm, residual skips, a wider net where it is
narrow) and, for
recurrent nets, an orthogonal recurrent matrix and reading 28 pixels a step. A change the config
already has, one the config rules refuse and one over the memory cap are dropped; the first
MAX_CANDIDATES distinct ones are tried (gradviz.diagnosis.fix_search).
"""

from __future__ import annotations

import math
from typing import Iterable

from gradviz.config import RECURRENT, SCALED_INITIALIZERS, ConfigError, RunConfig, format_value
from gradviz.diagnosis.evidence import ADAPTIVE, Finding
from gradviz.diagnosis.init_findings import BOUNDED, family_init, init_fix, wider
from gradviz.serving.limits import MemoryLimit, check_memory
from gradviz.signal.step_bound import stable_lr

MAX_CANDIDATES = 6
USUAL_ADAPTIVE_LR = 1e-3  # Adam's and RMSprop's usual step (Kingma & Ba 2015)


def round_down(value: float) -> float:
    """One significant figure, rounded down: 0.0374 -> 0.03 (a step just under a bound stays under)."""
    power = 10 ** math.floor(math.log10(value))
    return math.floor(value / power) * power


def curvature_lr(config: RunConfig, lambda_max: float | None) -> float | None:
    """Half the largest stable SGD step 2/λ (momentum: 2(1+β)/λ), so a step stays well inside the
    bound as the curvature grows early in training; None without λ or for Adam/RMSprop."""
    bound = stable_lr(lambda_max, config.optimizer) if lambda_max else None
    return round_down(bound / 2) if bound else None


def smaller_step(config: RunConfig) -> dict:
    """A tenth of the step; Adam and RMSprop at most their usual 1e-3."""
    lr = config.learning_rate / 10
    return {"learning_rate": max(min(lr, USUAL_ADAPTIVE_LR) if config.optimizer in ADAPTIVE else lr, 1e-6)}


def _step(config: RunConfig, lambda_max: float | None) -> Iterable[dict]:
    lr = curvature_lr(config, lambda_max)
    if lr is not None and lr < config.learning_rate:
        yield {"learning_rate": lr}
    yield smaller_step(config)
    if config.optimizer not in ADAPTIVE and config.clipping is None:
        yield {"clipnorm": 1.0}


def _init(config: RunConfig, m2: float | None) -> Iterable[dict]:
    yield init_fix(config, m2)[0]
    if config.initializer == "orthogonal":
        yield {"init_gain": 1.0}
    yield {"initializer": family_init(config.activation)}


def _activation(config: RunConfig) -> Iterable[dict]:
    if config.activation in BOUNDED or config.activation == "linear":
        yield {"activation": "relu", "initializer": "he_normal"}
    if config.activation == "relu":
        yield {"activation": "leaky_relu"}


def _architecture(config: RunConfig) -> Iterable[dict]:
    if config.architecture in RECURRENT:
        yield {"recurrent_initializer": "orthogonal"}
        yield {"step_pixels": 28}
        return
    yield {"batch_norm": True}
    yield {"residual": True}
    if wider(config):
        yield {"width": wider(config)}


# Which family of changes each finding's cause points to, in the order they are tried.
BY_KIND = {
    "step_too_large": ("step",),
    "diverged": ("step", "init"),
    "symmetric_init": ("init", "activation"),
    "signal_collapse": ("init", "activation", "architecture"),
    "signal_blowup": ("init", "step", "architecture"),
    "chaotic": ("init", "activation", "architecture"),
    "narrow": ("architecture", "init"),
    "vanishing": ("init", "activation", "architecture", "step"),
    "exploding": ("init", "step", "architecture"),
    "dead_units": ("step", "activation", "init", "architecture"),
    "saturation": ("init", "activation", "step", "architecture"),
    "early_steps_ignored": ("architecture",),
    "not_learning": ("init", "activation", "architecture"),
}


def candidate_changes(config: RunConfig, findings: list[Finding], lambda_max: float | None = None,
                      input_second_moment: float | None = None) -> list[dict]:
    """The distinct single changes to try on `config`, root cause first.

    Args:
        config: the learner's run.
        findings: its diagnosis (gradviz.diagnose), root cause first.
        lambda_max: the loss's sharpness at initialization, where measured (the learning rate law).
        input_second_moment: E[x²] of the images (the theory's starting point for an init scale).
    Returns:
        At most MAX_CANDIDATES changes, each a dict of RunConfig fields, none a no-op, every one a
        valid config within the memory cap.
    """
    families = {"step": lambda: _step(config, lambda_max), "init": lambda: _init(config, input_second_moment),
                "activation": lambda: _activation(config), "architecture": lambda: _architecture(config)}
    proposed: list[dict] = []
    for finding in findings:
        if finding.severity == "info":
            continue
        proposed.append(finding.fix)
        for family in BY_KIND.get(finding.kind, ()):
            proposed.extend(families[family]())
    return _usable(config, proposed)[:MAX_CANDIDATES]


def _usable(config: RunConfig, proposed: list[dict]) -> list[dict]:
    seen, usable = set(), []
    for change in proposed:
        change = {k: v for k, v in change.items() if format_value(getattr(config, k)) != format_value(v)}
        if change.get("init_std") is not None and config.initializer not in SCALED_INITIALIZERS:
            continue
        key = tuple(sorted((k, format_value(v)) for k, v in change.items()))
        if not change or key in seen or config.unused_fields() & set(change):
            continue
        seen.add(key)
        try:
            check_memory(config.replace(**change), "training")
        except (ConfigError, MemoryLimit):
            continue
        usable.append(change)
    return usable
