"""Findings for a user's own model: a watched run (gradviz.watch) or a probe at initialization
(gradviz.probe_model), each naming the user's layer and advising a Keras code change, never a
one-click retrain (gradviz cannot rebuild someone else's model).

The rules, the root cause first (thresholds shared with gradviz's own diagnosis,
gradviz.diagnosis.evidence; docs/your-model.md states each):
  symmetric   (probe) a kernel whose weights are all equal (e.g. zeros): its units get equal
              gradients and stay copies of each other.
  nan         (run) a step's loss or gradient was not finite: where (forward or backward), which
              layer, which step, and the batch's rows where they are known.
  step_too_large (run) an early update moved a kernel by more than 10 % of its norm per step.
  vanishing / exploding  the first kernel's gradient norm over the last's, below 1e-3 or above
              1e2 (a run: the first epoch's median; a probe: the one batch).
  signal_collapse / signal_blowup (probe) the last weighted layer's output RMS over the first's,
              below 1e-2 or above 1e2.
  dead / saturated  a ReLU layer with over half its units zero on every sample input, a sigmoid
              or tanh layer with over half its outputs within 0.02 of an asymptote.
"""

from __future__ import annotations

import warnings

import numpy as np

from gradviz.diagnosis.evidence import (
    DEAD_FRACTION,
    EXPLODING_RATIO,
    SATURATED_FRACTION,
    SEVERITY_ORDER,
    SIGNAL_BLOWUP,
    SIGNAL_COLLAPSE,
    VANISHING_RATIO,
    Finding,
    sci,
)
from gradviz.result import ACT_STATS, RunResult

EARLY_STEPS = 20  # the steps whose update/weight ratio says whether the step is too large
LARGE_UPDATE = 0.1
DEAD, SATURATED = ACT_STATS.index("dead_fraction"), ACT_STATS.index("saturated_fraction")


def diagnose_model(measured) -> list[Finding]:
    """Findings for a watched run's RunResult or a ModelProbe, the root cause first.

    Args:
        measured: `callback.result` of gradviz.watch, a RunResult loaded from a run file, or a
            gradviz.probe_model ModelProbe.
    Returns:
        Findings (kind, severity, message naming the layer; `evidence["keras"]` the code change advised).
    """
    if isinstance(measured, RunResult):
        found = _run_findings(measured)
    else:
        found = _probe_findings(measured)
    order = ("symmetric", "nan", "step_too_large", "vanishing", "exploding", "signal_collapse", "signal_blowup",
             "dead", "saturated")
    return sorted(found, key=lambda f: (order.index(f.kind), SEVERITY_ORDER[f.severity]))


def _finding(kind, severity, message, keras_change, **evidence) -> Finding:
    return Finding(kind, severity, message, evidence={**evidence, "keras": keras_change})


def _short(name: str) -> str:
    """`sequential/dense_7/kernel` -> `dense_7` (the layer to change in the user's code)."""
    parts = name.split("/")
    return parts[-2] if len(parts) >= 2 else parts[0]


# --- a watched run ------------------------------------------------------------------------------------

def _run_findings(result: RunResult) -> list[Finding]:
    found: list[Finding] = []
    meta = result.meta or {}
    rate = meta.get("learning_rate")
    smaller = f"learning_rate={rate / 10:g}" if rate else "a learning rate 10x smaller"
    if result.diverged:
        found.append(_nan_finding(result, meta.get("nan") or {}, smaller))
    ratios = _early_update_ratios(result)
    if ratios is not None and np.nanmax(ratios) > LARGE_UPDATE:
        worst = int(np.nanargmax(ratios))
        found.append(_finding(
            "step_too_large", "warning",
            f"The step is too large: in the first {EARLY_STEPS} steps each update moved "
            f"`{_short(result.layers[worst])}`'s kernel by {ratios[worst]:.0%} of its norm (a healthy step "
            "moves it by ~0.1-1 %).",
            f"keras.optimizers.{meta.get('optimizer') or 'Adam'}({smaller})", update_ratio=float(ratios[worst])))
    found += _ratio_findings(result.grad_norm_ratio_first_last(), result.layers, "over the first epoch")
    if len(result.act_stats):
        found += _unit_findings(result.act_layers, result.act_stats[-1], (result.meta or {}).get("activations", {}),
                                "on the sample inputs at the end of training")
    return found


def _nan_finding(result: RunResult, where: dict, smaller: str) -> Finding:
    layer = where.get("layer") or result.first_bad_layer
    origin = where.get("origin") or result.divergence_origin
    if where.get("inputs_not_finite"):
        place, advice = "in the batch's inputs themselves (they hold NaN or Inf)", \
            "clean the inputs (np.nan_to_num, or drop those rows) before fit"
    else:
        place = {"forward": "in the forward pass (the loss overflowed)",
                 "backward": "in backpropagation (the loss was finite, a gradient was not)"}.get(origin, "")
        advice = f"a smaller step ({smaller}), or clipnorm=1.0 in the optimizer"
    at = f" at `{_short(layer)}`" if layer else ""
    rows = where.get("rows")
    if rows:
        batch = f" Its rows in your inputs: {', '.join(map(str, rows[:12]))}{' ...' if len(rows) > 12 else ''}."
    elif rows is None:
        batch = " Pass your inputs to gradviz.watch(model, x=...) to have its rows named."
    else:
        batch = " Its rows were not found in the inputs given to gradviz.watch (were they changed?)."
    return _finding(
        "nan", "critical",
        f"NaN/Inf at step {result.diverged_at_step} (epoch {where.get('epoch', '?')}, batch {where.get('batch', '?')})"
        f"{at} {place}. Training stopped, and the model was put back to its weights at the end of the last "
        f"whole epoch (not its optimizer's state: compile again before training on).{batch}",
        advice, step=result.diverged_at_step, layer=layer, origin=origin, rows=rows)


def _early_update_ratios(result: RunResult) -> np.ndarray | None:
    rows = result.step < EARLY_STEPS
    block = result.update_ratio[rows]
    if not len(block) or not np.isfinite(block).any():
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a kernel with no finite ratio (all-zero weights): NaN
        return np.nanmedian(np.where(np.isfinite(block), block, np.nan), axis=0)


def _ratio_findings(ratio: float | None, layers: list[str], when: str) -> list[Finding]:
    if ratio is None or len(layers) < 2:
        return []
    first, last = _short(layers[0]), _short(layers[-1])
    if ratio < VANISHING_RATIO:
        return [_finding(
            "vanishing", "warning",
            f"Vanishing gradient: `{first}` gets {sci(ratio)} of the gradient `{last}` gets, {when}, so the "
            "layers near the input barely learn.",
            f"give the hidden layers activation='relu' and kernel_initializer='he_normal' (from `{first}` on), or "
            "add keras.layers.BatchNormalization() after them", ratio=ratio)]
    if ratio > EXPLODING_RATIO:
        return [_finding(
            "exploding", "warning",
            f"Exploding gradient: `{first}` gets {sci(ratio)}× the gradient `{last}` gets, {when}.",
            "a smaller kernel_initializer scale (e.g. 'glorot_uniform'), and clipnorm=1.0 in the optimizer",
            ratio=ratio)]
    return []


def _unit_findings(names: list[str], stats: np.ndarray, activations: dict, when: str) -> list[Finding]:
    found = []
    for name, row in zip(names, np.asarray(stats)):
        if np.isfinite(row[DEAD]) and row[DEAD] > DEAD_FRACTION:
            found.append(_finding(
                "dead", "warning", f"Dead units: {row[DEAD]:.0%} of `{name}`'s ReLU units output 0 for every input "
                f"{when}; they get no gradient and stop learning.",
                f"give `{name}` kernel_initializer='he_normal', or activation='leaky_relu'; a smaller learning rate "
                "if they died during training", dead_fraction=float(row[DEAD]), layer=name))
        if np.isfinite(row[SATURATED]) and row[SATURATED] > SATURATED_FRACTION:
            found.append(_finding(
                "saturated", "warning", f"Saturated units: {row[SATURATED]:.0%} of `{name}`'s "
                f"{activations.get(name, '')} outputs sit within 0.02 of an asymptote {when}, where its slope is "
                "~0 and gradients vanish through it.",
                f"give `{name}` activation='relu' and kernel_initializer='he_normal', or add "
                "keras.layers.BatchNormalization() before its activation", saturated_fraction=float(row[SATURATED]),
                layer=name))
    return found


# --- a probe at initialization ------------------------------------------------------------------------

def _probe_findings(probe) -> list[Finding]:
    found = [_finding(
        "symmetric", "critical",
        f"`{_short(name)}`'s weights are all equal (e.g. all zero): every unit in it computes the same thing "
        "and gets the same gradient, so they stay copies of each other.",
        f"give `{_short(name)}` kernel_initializer='glorot_uniform' (or 'he_normal' before a ReLU)", layer=name)
        for name, spread in zip(probe.layers, probe.kernel_spread) if spread == 0]
    norms = np.asarray(probe.grad_norm)
    if len(norms) >= 2 and norms[-1] > 0 and np.isfinite(norms).all():
        found += _ratio_findings(float(norms[0] / norms[-1]), probe.layers, "at initialization")
    rms = np.asarray(probe.forward_rms)
    if len(rms) >= 3 and rms[0] > 0 and np.isfinite(rms).all():
        ratio = float(rms[-2] / rms[0])  # the last hidden layer over the first (the output layer's logits excepted)
        first, last = probe.forward_layers[0], probe.forward_layers[-2]
        if ratio < SIGNAL_COLLAPSE:
            found.append(_finding(
                "signal_collapse", "warning",
                f"The signal collapses going forward: `{last}`'s outputs are {sci(ratio)} the size of "
                f"`{first}`'s at initialization.",
                "a larger kernel_initializer scale (he_normal for ReLU, glorot for tanh) or "
                "keras.layers.BatchNormalization()", ratio=ratio))
        elif ratio > SIGNAL_BLOWUP:
            found.append(_finding(
                "signal_blowup", "warning", f"The signal blows up going forward: `{last}`'s outputs are {sci(ratio)}× "
                f"the size of `{first}`'s at initialization.",
                "a smaller kernel_initializer scale, or keras.layers.BatchNormalization()", ratio=ratio))
    if probe.act_stats:
        found += _unit_findings(probe.act_layers, np.asarray(probe.act_stats), probe.activations, "at initialization")
    return found
