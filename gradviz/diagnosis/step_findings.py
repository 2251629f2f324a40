"""The step too large for the curvature: the learning-rate law as a finding (no TensorFlow).

The rule: with SGD or momentum, unclipped, where the loss's sharpness λ at initialization was
measured, a learning rate above the optimizer's stable bound (2/λ; 2(1+β)/λ with momentum) is too
large for the curvature. Adam and RMSprop divide each step by a running gradient size, so no bound
in the learning rate alone applies to them; for them the evidence is the step itself: the median
update/weight ratio of some layer over the first steps above BIG_UPDATE (a tenth of the weights'
size per step; ~1e-3 is the usual healthy size). With SGD a huge update is a huge gradient times
the step, the exploding-gradient story the other rules tell, so it is not read as the step's. A run above
the bound may still learn, spiking first and settling somewhere flatter (the catapult, Lewkowycz
et al. 2020): then it is told as information. Otherwise it is the root cause, placed above the
symptoms that followed from it (dead or saturated units, a gradient pushed to 0, NaN), which
keep their place below it without fixes of their own. Its fix is a learning rate from λ (half the
bound) where measured, else a tenth of the step (Adam and RMSprop at most 1e-3); the fix search
verifies it on the run.
"""

from __future__ import annotations

import numpy as np

from gradviz.diagnosis.candidates import USUAL_ADAPTIVE_LR, curvature_lr, smaller_step
from gradviz.diagnosis.evidence import ADAPTIVE, LEARNS_WELL, Evidence, Finding, pct, sci
from gradviz.result import RunResult
from gradviz.signal.step_bound import stable_lr

EARLY_STEPS = 10  # the first steps' update/weight ratios are what the step size did, before anything else
BIG_UPDATE = 0.1  # median update/weight ratio over the early steps, any layer
USEFUL_LR = 1e-4  # a learning rate from the curvature below this would barely train in a run's budget
SYMPTOMS = ("vanishing", "exploding", "dead_units", "saturation")


def early_update(r: RunResult) -> tuple[float, str] | None:
    """(largest median update/weight ratio over the first steps, its layer)."""
    early = r.update_ratio[:EARLY_STEPS]
    if not len(early):
        return None
    with np.errstate(all="ignore"):
        medians = np.nanmedian(np.where(np.isfinite(early), early, np.nan), axis=0)
    if not np.isfinite(medians).any():
        return None
    worst = int(np.nanargmax(medians))
    return float(medians[worst]), r.layers[worst]


def step_too_large(r: RunResult, e: Evidence) -> Finding | None:
    """The learning rate is past the curvature's bound (SGD, λ measured) or moves the weights by
    more than a tenth of their size per step."""
    config, lam = r.config, r.sharpness_at_init()
    # Clipping caps every step at lr x the threshold: the curvature's bound on lr alone stops applying.
    bound = stable_lr(lam, config.optimizer) if config.clipping is None else None
    update = early_update(r)
    if bound is not None and config.learning_rate > bound:
        why = (f"the loss's sharpness at initialization is λ = {lam:.3g}, so the largest stable "
               f"{config.optimizer} step is about {_bound_formula(config.optimizer)} = {bound:.3g}, and the "
               f"learning rate is {config.learning_rate:g} ({config.learning_rate / bound:.1f}× the bound)")
        evidence = {"lambda_max": lam, "stable_lr": bound}
    elif update is not None and update[0] > BIG_UPDATE and config.optimizer in ADAPTIVE \
            and config.learning_rate > USUAL_ADAPTIVE_LR:  # at the usual step, a large ratio means tiny weights
        why = (f"over the first {EARLY_STEPS} steps recorded, each moved {update[1]}'s weights by {pct(update[0])} of "
               f"their size (median; a healthy step moves ~0.1%)")
        if config.optimizer in ADAPTIVE:
            why += f": {config.optimizer} steps every weight by about the learning rate ({config.learning_rate:g})"
        evidence = {"early_update_ratio": update[0], "layer": update[1]}
    else:
        return None
    evidence.update({"learning_rate": config.learning_rate, "val_accuracy": e.val_accuracy})
    fix = {"learning_rate": curvature_lr(config, lam)} if bound is not None else smaller_step(config)
    if bound is not None and fix["learning_rate"] < USEFUL_LR:  # no usual step is stable: the curvature is
        return Finding("step_too_large", "info",
                       f"The step is larger than the curvature allows: {why}. A curvature this extreme comes from "
                       f"the start the weights were given: a step inside the bound ({fix['learning_rate']:.1g}) is "
                       "far below any usual one, so the step is not named the cause here.", evidence, {})
    if e.learning and e.val_accuracy >= LEARNS_WELL and not r.diverged:
        return Finding("step_too_large", "info",
                       f"The step is larger than the curvature allows: {why}. Yet the model learns well "
                       f"({e.learning_note()}): a step past the bound can spike and then settle somewhere flatter "
                       "(the catapult), so no fix is offered.", {**evidence, "catapult": True}, {})
    what = "too large for the curvature" if bound is not None else "too large"
    return Finding("step_too_large", "warning" if e.learning else "critical",
                   f"The step is {what}: {why}. What follows below came from it "
                   f"({e.learning_note()}). The cause is the learning rate.", evidence, fix)


def _bound_formula(optimizer: str) -> str:
    return "2(1+β)/λ" if optimizer == "momentum" else "2/λ"


def followed_from(symptom: Finding, cause: str = "the too-large step") -> Finding:
    """A symptom of a cause named above it: kept, below it, without a fix of its own."""
    symptom.fix = {}
    symptom.message += f" It followed from {cause} (above): fix that first."
    return symptom


def describe_sharpness(r: RunResult) -> str | None:
    """λ at initialization and the bound, in a sentence (for the reports), or None where unmeasured."""
    lam = r.sharpness_at_init()
    if lam is None:
        return None
    bound = stable_lr(lam, r.config.optimizer)
    if bound is None:
        return (f"sharpness at initialization λ = {sci(lam)}; {r.config.optimizer} rescales its steps, so the "
                f"simple bound does not apply (SGD's would be {sci(stable_lr(lam, 'sgd'))})")
    return f"sharpness at initialization λ = {sci(lam)}: stable {r.config.optimizer} steps below {sci(bound)}"
