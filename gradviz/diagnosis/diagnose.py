"""RunResult -> findings: what happened to the gradients and the signal, the numbers that show it,
the cause, and a config change that fixes it (tests/test_fixes.py trains every fix offered)."""

from __future__ import annotations

import numpy as np

from gradviz.config import format_value
from gradviz.diagnosis.candidates import smaller_step
from gradviz.diagnosis.evidence import (
    ADAPTIVE,
    DEAD_FRACTION,
    EXPLODING_RATIO,
    FROZEN_UPDATE,
    LEARNS_SLOWLY,
    LEARNS_WELL,
    NORM_GROWTH,
    SATURATED_FRACTION,
    SEVERITY_ORDER,
    SPIKE_RATIO,
    VANISHING_RATIO,
    Evidence,
    Finding,
    gather_evidence,
    init_grad_ratio,
    pct,
    sci,
)
from gradviz.diagnosis.init_findings import (
    chaotic,
    family_init,
    narrow,
    signal_through_depth,
    symmetric_init,
)
from gradviz.diagnosis.step_findings import SYMPTOMS, followed_from, step_too_large
from gradviz.diagnosis.time_findings import early_steps_ignored
from gradviz.result import RunResult

__all__ = ["Finding", "diagnose"]
# Said by every problem finding that offers no button: a fix is offered only where tests show it works.
NO_FIX = "No single change is offered: none is known to fix this here."


def _diverged(r: RunResult, e: Evidence, cause: Finding | None = None) -> Finding | None:
    """NaN/Inf stopped the run. Where a cause at initialization explains it, its fix is the fix."""
    if not r.diverged:
        return None
    step = r.diverged_at_step
    finite = r.global_norm_pre[np.isfinite(r.global_norm_pre)]
    where = "its output overflowed in the forward pass" if r.divergence_origin == "forward" \
        else "its gradient overflowed in backprop"
    fix, advice = _diverged_fix(r.config)
    if cause is not None and cause.fix:  # it diverged because of how it started
        fix, advice = cause.fix, f"The cause to fix is below: {cause.kind.replace('_', ' ')}."
    return Finding(
        "diverged", "critical",
        f"Training diverged at step {step} (epoch {step / r.steps_per_epoch:.2f}): the loss or a gradient "
        f"became NaN/Inf. The first bad layer is {r.first_bad_layer} ({where}). The largest finite global "
        f"gradient norm before that was {sci(finite.max() if finite.size else None)}. {advice}",
        {"diverged_at_step": step, "first_bad_layer": r.first_bad_layer, "origin": r.divergence_origin,
         "max_finite_global_norm": float(finite.max()) if finite.size else None},
        fix,
    )


BIG_SGD_STEP = 0.1  # an SGD learning rate this large is itself the problem: clipping cannot save it


def _diverged_fix(config) -> tuple[dict, str]:
    """Only changes that tests/test_fixes.py shows to fix a diverging run."""
    if config.time_steps:
        return {}, (f"{NO_FIX} In gradviz's tests neither clipping nor a smaller or orthogonal recurrent matrix "
                    "alone made a diverging recurrent network learn.")
    if config.optimizer not in ADAPTIVE and config.learning_rate < BIG_SGD_STEP and config.clipping is None:
        return {"clipnorm": 1.0}, ("Clip the gradient norm (clipnorm=1.0): with SGD the step is lr x gradient, so "
                                   "one huge gradient is one huge step.")
    return smaller_step(config), "Take smaller steps."


def _vanishing_fix(r: RunResult) -> dict:
    """Only changes that tests/test_fixes.py shows to fix the run. Through time: a SimpleRNN read in
    28 rows instead of more, shorter chunks (an LSTM or GRU at Keras' initial weights starts with
    even less gradient at step 1, and reading 28 rows leaves theirs vanishing too: no fix offered)."""
    config = r.config
    if config.time_steps:
        return {"step_pixels": 28} if config.architecture == "rnn" and config.step_pixels != 28 else {}
    if init_grad_ratio(r) >= VANISHING_RATIO:  # fine at the first step: the training steps made it vanish
        return smaller_step(config)
    if config.activation in ("sigmoid", "tanh", "softsign"):
        return {"activation": "relu", "initializer": "he_normal"}
    if config.initializer in ("random_normal", "random_uniform", "zeros"):
        return {"initializer": family_init(config.activation)}
    return {"batch_norm": True}


def _vanishing(r: RunResult, e: Evidence) -> Finding | None:
    if e.ratio is None or e.ratio >= VANISHING_RATIO or r.diverged:
        return None
    head = f"{e.ratio_text('of').capitalize()} (median over epoch 1; threshold {VANISHING_RATIO:g})"
    if e.recurrent:
        head += ": what the model reads first barely reaches the loss"
    evidence = {"grad_norm_ratio_first_last": e.ratio, "loss_start": e.loss_start, "loss_end": e.loss_end,
                "val_accuracy": e.val_accuracy, "first_layer_update_ratio": e.first_update}
    if len(r.halves) == 2:
        evidence.update(first_half_blanked=float(r.halves[0]), second_half_blanked=float(r.halves[1]))
    if e.recurrent:  # layer update ratios say nothing about time; what matters is what is learnt from
        learns = f"The model learns only from the last steps ({e.learning_note()})" if e.learning \
            else f"The model is not learning ({e.learning_note()})"
        if len(r.halves) == 2:  # measured, not only inferred from the gradient
            learns += (f"; blanking the first half of each image leaves validation accuracy at {pct(r.halves[0])}, "
                       f"blanking the second half {pct(r.halves[1])}")
        return Finding("vanishing", "warning" if e.learning else "critical", f"{head}. {learns}.", evidence,
                       _vanishing_fix(r))
    if not e.learning:
        return Finding("vanishing", "critical",
                       f"{head}, and the model is not learning: {e.learning_note()}. The early layers "
                       f"barely move (update/weight {sci(e.first_update)} per step).", evidence, _vanishing_fix(r))
    if e.first_update is not None and e.first_update < FROZEN_UPDATE:
        return Finding("vanishing", "warning",
                       f"{head}. The model still learns ({e.learning_note()}) but mostly in its last layers: "
                       f"the first layer moves only {sci(e.first_update)} of its size per step.",
                       evidence, _vanishing_fix(r))
    return None  # it learns, and the first layer moves: small gradients are not the problem (see _healthy)


def _exploding(r: RunResult, e: Evidence) -> Finding | None:
    if r.diverged:
        return None
    reasons = []
    if e.ratio is not None and e.ratio > EXPLODING_RATIO:
        reasons.append(e.ratio_text("times"))
    if e.norm_growth is not None and e.norm_growth > NORM_GROWTH:
        reasons.append(f"the global gradient norm grew {sci(e.norm_growth)}x from the first to the last epoch")
    if e.spike is not None and e.spike > SPIKE_RATIO:
        reasons.append(f"the global gradient norm spiked to {sci(e.spike)}x its first-epoch median")
    if not reasons:
        return None
    severity = "warning" if e.learning else "critical"
    return Finding("exploding", severity,
                   f"Gradients are exploding: {'; '.join(reasons)} ({e.learning_note()}).",
                   {"grad_norm_ratio_first_last": e.ratio, "norm_growth": e.norm_growth, "spike": e.spike},
                   _exploding_fix(r))


def _exploding_fix(r: RunResult) -> dict:
    """Too-large initial weights are the cause to fix first; then unclipped SGD; then the step size."""
    config = r.config
    if config.time_steps:  # tested: no single change made the exploding ReLU recurrent network learn
        return {}
    if config.initializer in ("random_normal", "random_uniform") and config.width * config.init_std ** 2 > 2:
        return {"initializer": family_init(config.activation)}
    if config.optimizer not in ADAPTIVE and config.clipping is None and config.learning_rate < BIG_SGD_STEP:
        return {"clipnorm": 1.0}
    return smaller_step(config)


def _last_stats(r: RunResult, column: int) -> tuple[float, str] | None:
    values = r.act_stats[-1, :, column]
    if not len(values) or np.all(np.isnan(values)):
        return None
    worst = int(np.nanargmax(values))
    return float(values[worst]), r.act_layers[worst]


def _dead_units(r: RunResult, e: Evidence) -> Finding | None:
    stats = _last_stats(r, 2)
    if stats is None or stats[0] < DEAD_FRACTION:
        return None
    fraction, layer = stats
    fix = smaller_step(r.config) if r.config.learning_rate >= 1e-2 else {"activation": "leaky_relu"}
    return Finding("dead_units", "warning",
                   f"{pct(fraction)} of the ReLU units in {layer} output 0 for every validation image checked: "
                   f"they pass no gradient and no longer learn ({e.learning_note()}).",
                   {"layer": layer, "dead_fraction": fraction}, fix)


def _saturation(r: RunResult, e: Evidence) -> Finding | None:
    stats = _last_stats(r, 3)
    if stats is None or stats[0] < SATURATED_FRACTION:
        return None
    fraction, layer = stats
    fix = {"initializer": "glorot_uniform"} if r.config.initializer in ("random_normal", "random_uniform") \
        else {"activation": "relu", "initializer": "he_normal"}
    return Finding("saturation", "warning",
                   f"{pct(fraction)} of {r.config.activation} outputs in {layer} sit at the flat ends of the curve, "
                   f"where its slope is near 0, so little gradient passes ({e.learning_note()}).",
                   {"layer": layer, "saturated_fraction": fraction}, fix)


def _healthy(r: RunResult, e: Evidence) -> Finding:
    """Only for a model that learns. Small gradients that Adam still turns into steps are noted."""
    evidence = {"grad_norm_ratio_first_last": e.ratio, "loss_start": e.loss_start, "loss_end": e.loss_end,
                "val_accuracy": e.val_accuracy, "clipped_fraction": e.clipped_fraction}
    note = ""
    if e.ratio is not None and e.ratio < VANISHING_RATIO and not e.recurrent:
        why = " Adam rescales each step by the gradient's running RMS, so" if r.config.optimizer in ADAPTIVE else ""
        note = f" The first layer's gradient is small ({sci(e.ratio)} of the output layer's), yet{why} it still " \
               f"moves {sci(e.first_update)} of its size per step: small gradients are not the problem here."
    if e.clipped_fraction is not None:
        note += f" Clipping was active on {pct(e.clipped_fraction)} of steps."
        if r.config.optimizer in ADAPTIVE:
            note += " With Adam it changes little: Adam divides each step by the gradient's running RMS."
    return Finding("healthy", "info",
                   f"Healthy: {e.ratio_text('of')}, and the model learns: {e.learning_note()}.{note}",
                   evidence, {})


def _slow_learning(r: RunResult, e: Evidence) -> Finding:
    """A run that learns, with nothing wrong in sight, but stays below LEARNS_SLOWLY: not called
    healthy. A hint, no button: no change was tried on it."""
    return Finding(
        "slow_learning", "info",
        f"Learning, but slowly ({e.learning_note()}). The gradients show no problem ({e.ratio_text('of')}); "
        f"this run took {r.steps_done:,} steps. More epochs or training images usually carry it further; a "
        "larger learning rate may too. Nothing was tried here: compare them side by side on the Compare page.",
        {"grad_norm_ratio_first_last": e.ratio, "loss_start": e.loss_start, "loss_end": e.loss_end,
         "val_accuracy": e.val_accuracy}, {})


def _learning_verdict(r: RunResult, e: Evidence) -> Finding:
    """With no problem found: healthy, slow learning or not learning, by how far the model got."""
    if not e.learning:
        return _not_learning(r, e)
    return _healthy(r, e) if e.val_accuracy >= LEARNS_SLOWLY else _slow_learning(r, e)


def _not_learning(r: RunResult, e: Evidence) -> Finding:
    """A model at chance is never healthy. With no cause in sight, no button: nothing is known to fix it."""
    spread = f"; the activations' spread changes ×{sci(e.signal_ratio)} through depth at initialization" \
        if e.signal_ratio is not None else ""
    config = r.config
    return Finding(
        "not_learning", "critical",
        f"The model is not learning ({e.learning_note()}), and neither its gradients ({e.ratio_text('of')}) nor "
        f"its signal at initialization{spread} shows a cause. No single change is known to fix it here: the "
        f"step ({config.optimizer}, learning rate {config.learning_rate:g}) may be too small for "
        f"{config.epochs} epoch(s) - try a larger one or more epochs, side by side on the Compare page.",
        {"grad_norm_ratio_first_last": e.ratio, "signal_ratio": e.signal_ratio, "loss_start": e.loss_start,
         "loss_end": e.loss_end, "val_accuracy": e.val_accuracy}, {})


def diagnose(r: RunResult) -> list[Finding]:
    """What happened to a run, and why: its findings, the root cause first.

    A cause at initialization (zero weights, a signal that collapses or blows up through depth)
    explains the gradient symptoms that follow from it, so they are not reported beside it with
    fixes of their own; a step too large for the curvature comes next, above the symptoms that
    followed from it (kept, without fixes). docs/diagnosis.md states every rule.

    Args:
        r: a finished (or diverged, or stopped) run.
    Returns:
        Findings, most severe first; always at least one (`healthy` only for a run that learns
            well).
    """
    e = gather_evidence(r)
    cause = symmetric_init(r, e) or signal_through_depth(r, e) or chaotic(r, e) or narrow(r, e)
    step = step_too_large(r, e) if cause is None else None
    symptoms = () if cause is not None else (_vanishing, _exploding, _dead_units, _saturation)
    found = [rule(r, e) for rule in symptoms]
    if cause is not None and cause.kind == "chaotic":  # its saturated units, named below it
        found = [followed_from(f, "the chaotic start") for f in [_saturation(r, e)] if f is not None]
    if cause is None and not any(f is not None and f.kind == "vanishing" for f in found):
        found.append(early_steps_ignored(r, e))  # reached, yet not used
    if step is not None and step.severity != "info":
        found = [followed_from(f) if f is not None and f.kind in SYMPTOMS and not _present_at_init(f, r) else f
                 for f in found]
    step_root = step if step is not None and step.severity != "info" else None
    problems = [f for f in [_diverged(r, e, cause), cause or step_root, *found] if f is not None]
    made_up = cause is not None and _made_up_for(cause, r, e)
    for finding in problems:
        finding.fix = _only_changes(r.config, finding.fix)
        if not finding.fix and finding.severity != "info" and "fix that first" not in finding.message \
                and NO_FIX not in finding.message:
            finding.message += f" {NO_FIX}"
    if step is not None and step.severity == "info":  # the catapult, or a curvature no usual step fits
        problems.append(step)
        made_up = made_up or (step.evidence.get("catapult", False)
                              and not any(f.severity in ("critical", "warning") for f in problems))
    if made_up:
        problems.insert(0, _healthy(r, e))  # what happened first; how it started, second
    elif not any(f.severity in ("critical", "warning") for f in problems):
        problems.append(_learning_verdict(r, e))
    return sorted(problems, key=lambda f: SEVERITY_ORDER[f.severity])


def _present_at_init(symptom: Finding, r: RunResult) -> bool:
    """The symptom was there before the first step (so the step size did not cause it)."""
    if symptom.kind not in SYMPTOMS or not len(r.step):
        return False
    if symptom.kind == "vanishing":
        return init_grad_ratio(r) < VANISHING_RATIO
    column = {"dead_units": 2, "saturation": 3}.get(symptom.kind)
    if column is None:
        return False
    at_init = r.act_stats[0, :, column]
    threshold = DEAD_FRACTION if column == 2 else SATURATED_FRACTION
    return bool(np.isfinite(at_init).any() and np.nanmax(at_init) >= threshold)


def _only_changes(config, fix: dict) -> dict:
    """The fix without the fields the config already has (a button names only what it changes)."""
    return {k: v for k, v in fix.items() if format_value(getattr(config, k)) != format_value(v)}


def _made_up_for(cause: Finding, r: RunResult, e: Evidence) -> bool:
    """A poor start the run made up for: it learns well and did not diverge. The cause is then told
    as information, without a fix (the run needs none)."""
    if cause.severity == "critical" or r.diverged or e.val_accuracy < LEARNS_WELL:
        return False
    how = (f"with {r.config.optimizer}, which rescales each step by the gradient's running size, "
           if r.config.optimizer in ADAPTIVE else "")
    cause.severity, cause.fix = "info", {}
    cause.message += (f" Yet the model learns well (val accuracy {pct(e.val_accuracy)}): {how}the training made up "
                      f"for the poor start, so no fix is offered.")
    return True
