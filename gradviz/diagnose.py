"""RunResult -> findings: what happened to the gradients, the numbers that show it, and a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from gradviz.result import RunResult

# Thresholds (also listed in the README). Gradient size alone is not enough: Adam divides each
# step by a running RMS, so a tiny gradient can still move weights. A finding therefore also looks
# at whether the loss fell and at how far each step moved the first layer's weights.
VANISHING_RATIO = 1e-3  # first-layer / output-layer gradient norm, median over epoch 1
EXPLODING_RATIO = 1e2  # the same ratio, the other way
NORM_GROWTH = 1e2  # median global gradient norm, last epoch vs first epoch
SPIKE_RATIO = 1e2  # largest global norm vs the median: isolated blow-ups
STALLED_IMPROVEMENT = 0.1  # loss fell by less than 10 % of its initial value
CHANCE_MARGIN = 0.1  # val accuracy within 10 points of chance (10 %) counts as not learning
FROZEN_UPDATE = 1e-4  # first-layer update/weight ratio per step below this: effectively frozen
DEAD_FRACTION = 0.5  # share of ReLU units that output 0 for every probe image
SATURATED_FRACTION = 0.5  # share of sigmoid/tanh outputs within 0.02 of their asymptotes
CHANCE = 0.1
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
ADAPTIVE = ("adam", "rmsprop")


@dataclass
class Finding:
    kind: str  # vanishing, exploding, diverged, dead_units, saturation, healthy
    severity: str  # critical, warning, info
    message: str
    evidence: dict = field(default_factory=dict)
    fix: dict = field(default_factory=dict)  # RunConfig field changes

    def to_dict(self) -> dict:
        return asdict(self)


def _sci(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1e}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


@dataclass
class Evidence:
    """The numbers every rule reads, computed once."""

    ratio: float | None
    loss_start: float
    loss_end: float
    val_accuracy: float
    first_update: float | None  # median first-layer update/weight ratio over the last epoch
    norm_growth: float | None
    spike: float | None
    clipped_fraction: float | None
    recurrent: bool = False  # rnn/lstm/gru: `ratio` is time step 1 vs the last time step
    time_steps: int = 0

    def ratio_text(self, relation: str) -> str:
        """'the first layer's gradient is 1e-07 of the output layer's', or the same through time."""
        if self.recurrent:
            return f"the gradient reaching time step 1 is {_sci(self.ratio)} {relation} the one at step {self.time_steps}"
        return f"the first layer's gradient is {_sci(self.ratio)} {relation} the output layer's"

    @property
    def improvement(self) -> float:
        if not np.isfinite(self.loss_start) or not np.isfinite(self.loss_end) or self.loss_start <= 0:
            return 0.0
        return (self.loss_start - self.loss_end) / self.loss_start

    @property
    def learning(self) -> bool:
        return self.improvement >= STALLED_IMPROVEMENT and self.val_accuracy > CHANCE + CHANCE_MARGIN


def _median(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def gather_evidence(r: RunResult) -> Evidence:
    last_epoch = r.step >= max(0, r.steps_done - r.steps_per_epoch)
    first = _median(r.global_norm_pre[r.first_epoch_rows()])
    last = _median(r.global_norm_pre[last_epoch])
    peak = np.nanmax(np.where(np.isfinite(r.global_norm_pre), r.global_norm_pre, np.nan)) if len(r.step) else None
    clipping = r.config.clipping is not None
    clipped = None
    if clipping and len(r.step):
        clipped = float(np.mean(r.global_norm_post < 0.999 * r.global_norm_pre))
    recurrent = r.config.time_steps > 0
    return Evidence(
        ratio=r.time_ratio_first_last() if recurrent else r.grad_norm_ratio_first_last(),
        recurrent=recurrent,
        time_steps=r.config.time_steps,
        loss_start=float(r.train_loss[0]),
        loss_end=float(r.train_loss[-1]),
        val_accuracy=float(r.val_accuracy[-1]),
        first_update=_median(r.update_ratio[last_epoch, 0]),
        norm_growth=last / first if first and last else None,
        spike=peak / first if first and peak is not None and np.isfinite(peak) else None,
        clipped_fraction=clipped,
    )


def _learning_note(e: Evidence) -> str:
    return f"loss {e.loss_start:.3g} -> {e.loss_end:.3g}, val accuracy {_pct(e.val_accuracy)}"


def _diverged(r: RunResult, e: Evidence) -> Finding | None:
    if not r.diverged:
        return None
    step = r.diverged_at_step
    finite = r.global_norm_pre[np.isfinite(r.global_norm_pre)]
    where = "its output overflowed in the forward pass" if r.divergence_origin == "forward" \
        else "its gradient overflowed in backprop"
    config = r.config
    if config.optimizer not in ADAPTIVE and config.clipnorm is None and config.global_clipnorm is None:
        fix = {"clipnorm": 1.0}
        advice = "Clip the gradient norm (clipnorm=1.0): with SGD the step is lr x gradient, so one huge gradient is one huge step."
    else:
        fix = {"learning_rate": max(config.learning_rate / 10, 1e-6)}
        advice = "Lower the learning rate ten-fold."
    return Finding(
        "diverged", "critical",
        f"Training diverged at step {step} (epoch {step / r.steps_per_epoch:.2f}): the loss or a gradient "
        f"became NaN/Inf. The first bad layer is {r.first_bad_layer} ({where}). The largest finite global "
        f"gradient norm before that was {_sci(finite.max() if finite.size else None)}. {advice}",
        {"diverged_at_step": step, "first_bad_layer": r.first_bad_layer, "origin": r.divergence_origin,
         "max_finite_global_norm": float(finite.max()) if finite.size else None},
        fix,
    )


def _vanishing_fix(r: RunResult) -> dict:
    config = r.config
    if config.architecture == "rnn":
        return {"architecture": "lstm"}
    if config.time_steps:  # an LSTM/GRU that still loses the start: give it fewer, larger steps
        return {"step_pixels": 28} if config.step_pixels != 28 else {"learning_rate": min(config.learning_rate * 3, 10.0)}
    if config.activation in ("sigmoid", "tanh"):
        return {"activation": "relu", "initializer": "he_normal"}
    if config.initializer in ("random_normal", "random_uniform", "zeros"):
        return {"initializer": "he_normal" if config.activation == "relu" else "glorot_uniform"}
    return {"batch_norm": True}


def _vanishing(r: RunResult, e: Evidence) -> Finding | None:
    if e.ratio is None or e.ratio >= VANISHING_RATIO or r.diverged:
        return None
    head = f"{e.ratio_text('of').capitalize()} (median over epoch 1; threshold {VANISHING_RATIO:g})"
    if e.recurrent:
        head += ": what the model reads first barely reaches the loss"
    evidence = {"grad_norm_ratio_first_last": e.ratio, "loss_start": e.loss_start, "loss_end": e.loss_end,
                "val_accuracy": e.val_accuracy, "first_layer_update_ratio": e.first_update}
    if e.recurrent:  # layer update ratios say nothing about time; what matters is what is learnt from
        learns = f"The model learns only from the last steps ({_learning_note(e)})" if e.learning \
            else f"The model is not learning ({_learning_note(e)})"
        return Finding("vanishing", "warning" if e.learning else "critical", f"{head}. {learns}.", evidence,
                       _vanishing_fix(r))
    if not e.learning:
        return Finding("vanishing", "critical",
                       f"{head}, and the model is not learning: {_learning_note(e)}. The early layers "
                       f"barely move (update/weight {_sci(e.first_update)} per step).", evidence, _vanishing_fix(r))
    if e.first_update is not None and e.first_update < FROZEN_UPDATE:
        return Finding("vanishing", "warning",
                       f"{head}. The model still learns ({_learning_note(e)}) but mostly in its last layers: "
                       f"the first layer moves only {_sci(e.first_update)} of its size per step.",
                       evidence, _vanishing_fix(r))
    why = " Adam rescales each step by the gradient's running RMS, so" if r.config.optimizer in ADAPTIVE else ""
    return Finding("vanishing", "info",
                   f"{head}, yet training works ({_learning_note(e)}):{why} the first layer still moves "
                   f"{_sci(e.first_update)} of its size per step.", evidence, _vanishing_fix(r))


def _exploding(r: RunResult, e: Evidence) -> Finding | None:
    if r.diverged:
        return None
    reasons = []
    if e.ratio is not None and e.ratio > EXPLODING_RATIO:
        reasons.append(e.ratio_text("times"))
    if e.norm_growth is not None and e.norm_growth > NORM_GROWTH:
        reasons.append(f"the global gradient norm grew {_sci(e.norm_growth)}x from the first to the last epoch")
    if e.spike is not None and e.spike > SPIKE_RATIO:
        reasons.append(f"the global gradient norm spiked to {_sci(e.spike)}x its first-epoch median")
    if not reasons:
        return None
    severity = "warning" if e.learning else "critical"
    return Finding("exploding", severity,
                   f"Gradients are exploding: {'; '.join(reasons)} ({_learning_note(e)}).",
                   {"grad_norm_ratio_first_last": e.ratio, "norm_growth": e.norm_growth, "spike": e.spike},
                   _exploding_fix(r))


def _exploding_fix(r: RunResult) -> dict:
    """Too-large initial weights are the cause to fix first; then unclipped SGD; then the step size."""
    config = r.config
    if config.time_steps and config.recurrent_initializer == "random_normal" and config.width * config.recurrent_std ** 2 > 1:
        return {"recurrent_initializer": "orthogonal"}  # a recurrent matrix with norm ~1 per step
    if config.initializer in ("random_normal", "random_uniform") and config.width * config.init_std ** 2 > 2:
        return {"initializer": "he_normal" if config.activation == "relu" else "glorot_uniform"}
    if config.optimizer not in ADAPTIVE and config.clipnorm is None and config.global_clipnorm is None:
        return {"clipnorm": 1.0}
    return {"learning_rate": max(config.learning_rate / 10, 1e-6)}


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
    fix = {"learning_rate": r.config.learning_rate / 10} if r.config.learning_rate >= 1e-2 else {"activation": "leaky_relu"}
    return Finding("dead_units", "warning",
                   f"{_pct(fraction)} of the ReLU units in {layer} output 0 for every probe image: they pass "
                   f"no gradient and no longer learn ({_learning_note(e)}).",
                   {"layer": layer, "dead_fraction": fraction}, fix)


def _saturation(r: RunResult, e: Evidence) -> Finding | None:
    stats = _last_stats(r, 3)
    if stats is None or stats[0] < SATURATED_FRACTION:
        return None
    fraction, layer = stats
    fix = {"initializer": "glorot_uniform"} if r.config.initializer in ("random_normal", "random_uniform") \
        else {"activation": "relu", "initializer": "he_normal"}
    return Finding("saturation", "warning",
                   f"{_pct(fraction)} of {r.config.activation} outputs in {layer} sit at the flat ends of the curve, "
                   f"where its slope is near 0, so little gradient passes ({_learning_note(e)}).",
                   {"layer": layer, "saturated_fraction": fraction}, fix)


def _healthy(r: RunResult, e: Evidence, problems: list[Finding]) -> Finding | None:
    if any(f.severity in ("critical", "warning") for f in problems):
        return None
    evidence = {"grad_norm_ratio_first_last": e.ratio, "loss_start": e.loss_start, "loss_end": e.loss_end,
                "val_accuracy": e.val_accuracy, "clipped_fraction": e.clipped_fraction}
    clip_note = ""
    if e.clipped_fraction is not None:
        clip_note = f" Clipping was active on {_pct(e.clipped_fraction)} of steps."
        if r.config.optimizer in ADAPTIVE:
            clip_note += " With Adam it changes little: Adam divides each step by the gradient's running RMS."
    if not e.learning:
        return Finding("healthy", "warning",
                       f"Gradients flow ({e.ratio_text('of')}) but the model learns little: "
                       f"{_learning_note(e)}. Try a larger learning rate or more epochs.{clip_note}",
                       evidence, {"learning_rate": min(r.config.learning_rate * 10, 10.0)})
    return Finding("healthy", "info",
                   f"Healthy: {e.ratio_text('of')}, and the model learns: {_learning_note(e)}.{clip_note}",
                   evidence, {})


def diagnose(r: RunResult) -> list[Finding]:
    """All findings, most severe first; always at least one."""
    e = gather_evidence(r)
    rules = (_diverged, _vanishing, _exploding, _dead_units, _saturation)
    problems = [f for f in (rule(r, e) for rule in rules) if f is not None]
    healthy = _healthy(r, e, problems)
    findings = problems + ([healthy] if healthy else [])
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity])
