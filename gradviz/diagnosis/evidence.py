"""The numbers every diagnosis rule reads from a RunResult, computed once, and the Finding a rule
returns. Thresholds live here, with the rule they serve (also listed in docs/diagnosis.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from gradviz.result import RunResult
from gradviz.signal import theory

# Gradient size alone is not enough: Adam divides each step by a running RMS, so a tiny gradient
# can still move weights. A finding therefore also looks at whether the loss fell and at how far
# each step moved the first layer's weights.
VANISHING_RATIO = 1e-3  # first-layer / output-layer gradient norm, median over epoch 1
EXPLODING_RATIO = 1e2  # the same ratio, the other way
NORM_GROWTH = 1e2  # median global gradient norm, last epoch vs first epoch
SPIKE_RATIO = 1e2  # largest global norm vs the median: isolated blow-ups
STALLED_IMPROVEMENT = 0.1  # loss fell by less than 10 % of its initial value
CHANCE = 0.1
CHANCE_MARGIN = 0.1  # val accuracy within 10 points of chance (10 %) counts as not learning
FROZEN_UPDATE = 1e-4  # first-layer update/weight ratio per step below this: effectively frozen
DEAD_FRACTION = 0.5  # share of ReLU units that output 0 for every snapshot image
SATURATED_FRACTION = 0.5  # share of sigmoid/tanh outputs within 0.02 of their asymptotes
# The spread (std) of the activations at initialization, last hidden layer vs first: below this
# the forward signal has collapsed through depth, above its inverse it has blown up.
SIGNAL_COLLAPSE = 1e-2
SIGNAL_BLOWUP = 1e2
CHAOTIC_CHI = 1.5  # predicted χ per hidden layer above this, for a bounded activation: the chaotic phase
LEARNS_SLOWLY = 0.6  # val accuracy below this, in a run that learns: slow learning, not "healthy"
LEARNS_WELL = 0.8  # val accuracy of a run that learns well: a poor start it made up for is told, not fixed
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
ADAPTIVE = ("adam", "rmsprop")


@dataclass
class Finding:
    """What a rule found: kind, how bad, a message naming the cause with its numbers, and the
    config change that fixes it (empty where no single change is known to)."""

    kind: str  # see docs/diagnosis.md for every kind
    severity: str  # critical, warning, info
    message: str
    evidence: dict = field(default_factory=dict)
    fix: dict = field(default_factory=dict)  # RunConfig field changes

    def to_dict(self) -> dict:
        return asdict(self)


def sci(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1e}"


def pct(x: float) -> str:
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
    init_spread: np.ndarray = field(default_factory=lambda: np.zeros(0))  # activation std per hidden layer at step 0
    input_second_moment: float | None = None  # E[x_i^2] of the training images (theory's starting point)

    def ratio_text(self, relation: str) -> str:
        """'the first layer's gradient is 1e-07 of the output layer's', or the same through time."""
        if self.recurrent:
            return (f"the gradient reaching time step 1 is {sci(self.ratio)} {relation} "
                    f"the one at step {self.time_steps}")
        return f"the first layer's gradient is {sci(self.ratio)} {relation} the output layer's"

    @property
    def improvement(self) -> float:
        if not np.isfinite(self.loss_start) or not np.isfinite(self.loss_end) or self.loss_start <= 0:
            return 0.0
        return (self.loss_start - self.loss_end) / self.loss_start

    @property
    def learning(self) -> bool:
        return self.improvement >= STALLED_IMPROVEMENT and self.val_accuracy > CHANCE + CHANCE_MARGIN

    @property
    def signal_ratio(self) -> float | None:
        """Activation spread at initialization, last hidden layer over the first."""
        spread = self.init_spread
        if len(spread) < 2 or not np.all(np.isfinite(spread[[0, -1]])) or spread[0] <= 0:
            return None
        return float(spread[-1] / spread[0])

    def learning_note(self) -> str:
        return f"loss {self.loss_start:.3g} -> {self.loss_end:.3g}, val accuracy {pct(self.val_accuracy)}"

    def prediction(self, config) -> theory.Prediction | None:
        if self.input_second_moment is None:
            return None
        return theory.predict(config, self.input_second_moment)


def init_grad_ratio(r: RunResult) -> float:
    """First kernel's gradient norm over the output kernel's at the first training step."""
    first, last = (float(r.grad_norm[0, 0]), float(r.grad_norm[0, -1])) if len(r.step) else (0.0, 0.0)
    return first / last if last > 0 and np.isfinite(first) else 0.0


def _median(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def gather_evidence(r: RunResult) -> Evidence:
    last_epoch = r.step >= max(0, r.steps_done - r.steps_per_epoch)
    first = _median(r.global_norm_pre[r.first_epoch_rows()])
    last = _median(r.global_norm_pre[last_epoch])
    peak = np.nanmax(np.where(np.isfinite(r.global_norm_pre), r.global_norm_pre, np.nan)) if len(r.step) else None
    clipped = None
    if r.config.clipping is not None and len(r.step):
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
        init_spread=r.act_stats[0, :, 1] if r.act_stats.size else np.zeros(0),
        input_second_moment=r.data.get("pixel_second_moment"),
    )
