"""RunResult: a run's numbers as numpy arrays plus metadata; save/load (npz + json) and tidy frames."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from gradviz.config import RunConfig

FORMAT_VERSION = 4  # 4: the sharpness and the halves blanked (stored runs without them are retrained)
ACT_STATS = ("mean", "std", "dead_fraction", "saturated_fraction")


@dataclass
class RunResult:
    """Everything a chart, the diagnosis or the CLI needs; no Keras objects, so it caches and saves."""

    config: RunConfig | None  # None for a user's own Keras model (gradviz.watch); `meta` names it
    data: dict
    layers: list[str]  # kernel layers, input -> output (heatmap rows)
    act_layers: list[str]  # hidden activation layers, input -> output
    steps_per_epoch: int
    total_steps: int  # planned
    # Per step. A row may cover `step_stride` steps (long runs are binned); `step` is its first step.
    step: np.ndarray  # int [S]
    loss: np.ndarray  # [S]
    accuracy: np.ndarray  # [S] batch accuracy
    grad_norm: np.ndarray  # [S, L] L2 norm of each kernel's gradient, before clipping
    update_ratio: np.ndarray  # [S, L] ||W_after - W_before|| / ||W_before||
    global_norm_pre: np.ndarray  # [S] global gradient norm (all variables) before clipping
    global_norm_post: np.ndarray  # [S] ... after clipping
    # Per snapshot: row 0 is before training, then one per epoch (and one where a run stopped).
    epoch: np.ndarray  # float [E]
    epoch_step: np.ndarray  # int [E] steps done at the snapshot
    train_loss: np.ndarray  # [E] epoch mean of step losses (row 0: evaluated on a train subset)
    train_accuracy: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    weight_edges: np.ndarray  # [L, WB + 1] fixed per layer for the whole run
    weight_hist: np.ndarray  # [E, L, WB] counts
    pooled_edges: np.ndarray  # [WB + 1] one grid for all kernels together
    pooled_hist: np.ndarray  # [E, WB] every kernel's weights pooled (the seed article's histogram)
    act_edges: np.ndarray  # [A, AB + 1]
    act_hist: np.ndarray  # [E, A, AB] counts on the fixed snapshot images (the first 512 validation images)
    act_stats: np.ndarray  # [E, A, 4] see ACT_STATS
    step_stride: int = 1
    steps_done: int = 0
    diverged_at_step: int | None = None
    first_bad_layer: str | None = None
    divergence_origin: str | None = None  # "forward" (an activation overflowed) or "backward"
    stopped: bool = False  # interrupted by should_stop
    seconds: float = 0.0
    # rnn/lstm/gru only: [S, T] norm of dloss/dh_t at every time step t (the gradient reaching
    # each step's hidden state); [S, 0] for feed-forward models.
    time_grad: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # [K, 2] (step, λ_max): the loss's sharpness at step 0 and at the end, where measured (MLPs with
    # SGD or momentum: gradviz.training.train.measures_sharpness); [0, 2] otherwise.
    sharpness: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    # rnn/lstm/gru at the end of training: validation accuracy with the first half of the image's
    # time steps blanked, and with the second half blanked ([2]); [0] otherwise.
    halves: np.ndarray = field(default_factory=lambda: np.zeros(0))
    meta: dict = field(default_factory=dict)

    # --- summaries -----------------------------------------------------------------------------

    def nbytes(self) -> int:
        """Memory held by the arrays (what a cache should count)."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    @property
    def diverged(self) -> bool:
        return self.diverged_at_step is not None

    @property
    def finished(self) -> bool:
        return not self.stopped and self.steps_done == self.total_steps

    def timing(self) -> dict:
        """Steps, seconds, rate, and where it trained: "in-process" or the Dask worker's address."""
        rate = self.steps_done / self.seconds if self.seconds > 0 else None
        return {"steps": int(self.steps_done), "seconds": round(self.seconds, 3),
                "steps_per_second": round(rate, 1) if rate else None, "where": self.meta.get("where", "in-process")}

    def final(self) -> dict:
        """Last snapshot's metrics; a diverged run's train loss is the non-finite loss it hit."""
        train_loss = float(self.loss[-1]) if self.diverged else float(self.train_loss[-1])
        return {"train_loss": finite_or_none(train_loss),
                "val_loss": finite_or_none(float(self.val_loss[-1])),
                "val_accuracy": finite_or_none(float(self.val_accuracy[-1]))}

    def sharpness_at_init(self) -> float | None:
        """λ_max before the first step, where it was measured."""
        if not len(self.sharpness) or self.sharpness[0, 0] != 0 or not np.isfinite(self.sharpness[0, 1]):
            return None
        return float(self.sharpness[0, 1])

    def first_epoch_rows(self) -> np.ndarray:
        """Step-record rows that fall in the first epoch (all rows if the run stopped earlier)."""
        rows = self.step < self.steps_per_epoch
        return rows if rows.any() else np.ones_like(rows)

    def grad_norm_ratio_first_last(self) -> float | None:
        """Median over the first epoch of ||grad first kernel|| / ||grad output kernel||."""
        rows = self.first_epoch_rows()
        first, last = self.grad_norm[rows, 0], self.grad_norm[rows, -1]
        ok = np.isfinite(first) & np.isfinite(last) & (last > 0)
        return float(np.median(first[ok] / last[ok])) if ok.any() else None

    def time_profile(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Median ||dloss/dh_t|| per time step over the chosen step rows (default: epoch 1)."""
        block = self.time_grad[self.first_epoch_rows() if rows is None else rows]
        block = np.where(np.isfinite(block), block, np.nan)
        with np.errstate(all="ignore"):
            return np.nanmedian(block, axis=0) if len(block) else np.full(self.time_grad.shape[1], np.nan)

    def time_ratio_first_last(self) -> float | None:
        """Median over epoch 1 of ||dloss/dh_1|| / ||dloss/dh_T||: how much gradient reaches the start."""
        if not self.time_grad.shape[1]:
            return None
        rows = self.time_grad[self.first_epoch_rows()]
        first, last = rows[:, 0], rows[:, -1]
        ok = np.isfinite(first) & np.isfinite(last) & (last > 0)
        return float(np.median(first[ok] / last[ok])) if ok.any() else None

    # --- tidy frames for charts ------------------------------------------------------------------

    def steps_frame(self) -> pd.DataFrame:
        """Long frame: one row per (step record, layer) with grad_norm and update_ratio."""
        s, n_layers = len(self.step), len(self.layers)
        return pd.DataFrame({
            "step": np.repeat(self.step, n_layers),
            "layer": np.tile(self.layers, s),
            "depth": np.tile(np.arange(n_layers), s),
            "grad_norm": self.grad_norm.reshape(-1),
            "update_ratio": self.update_ratio.reshape(-1),
        })

    def loss_frame(self) -> pd.DataFrame:
        """Long frame of snapshots: epoch, step, split (train/val), loss, accuracy."""
        parts = [
            pd.DataFrame({"epoch": self.epoch, "step": self.epoch_step, "split": split,
                          "loss": loss, "accuracy": acc})
            for split, loss, acc in (("train", self.train_loss, self.train_accuracy),
                                     ("val", self.val_loss, self.val_accuracy))
        ]
        return pd.concat(parts, ignore_index=True)

    def weight_hist_frame(self, snapshot: int = -1) -> pd.DataFrame:
        """Per layer and bin: initial (snapshot 0) and chosen snapshot counts."""
        return _hist_frame(self.layers, self.weight_edges, self.weight_hist, snapshot)

    def pooled_hist_frame(self, snapshot: int = -1) -> pd.DataFrame:
        """All kernels' weights in one histogram, initial vs chosen snapshot."""
        return _hist_frame(["all kernels"], self.pooled_edges[None], self.pooled_hist[:, None], snapshot)

    def act_hist_frame(self, snapshot: int = -1) -> pd.DataFrame:
        return _hist_frame(self.act_layers, self.act_edges, self.act_hist, snapshot)

    def act_stats_frame(self) -> pd.DataFrame:
        e, a = self.act_stats.shape[:2]
        frame = pd.DataFrame(self.act_stats.reshape(e * a, len(ACT_STATS)), columns=list(ACT_STATS))
        frame.insert(0, "layer", np.tile(self.act_layers, e))
        frame.insert(0, "epoch", np.repeat(self.epoch, a))
        return frame

    # --- persistence -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> tuple[Path, Path] | Path:
        """Write <path>.npz (arrays) and <path>.json (everything else); a path ending in .gradviz
        is written as one run file instead (gradviz.yourmodel.runfile; `gradviz.load` reads it)."""
        if str(path).endswith(".gradviz"):
            from gradviz.yourmodel.runfile import save_run

            return save_run(self, path)
        base = Path(path)
        arrays, meta = self._parts()
        npz, js = base.with_suffix(".npz"), base.with_suffix(".json")
        np.savez_compressed(npz, **arrays)
        js.write_text(json.dumps(meta, indent=1, allow_nan=True))
        return npz, js

    def to_bytes(self) -> bytes:
        """The whole run as one .npz (its metadata as JSON inside): one object, written at once."""
        arrays, meta = self._parts()
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays, __meta__=np.array(json.dumps(meta, allow_nan=True)))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "RunResult":
        with np.load(io.BytesIO(data)) as archive:
            meta = json.loads(str(archive["__meta__"]))
            arrays = {name: archive[name] for name in archive.files if name != "__meta__"}
        return cls._from_parts(meta, arrays)

    @staticmethod
    def meta_of(data: bytes) -> dict:
        """Only the metadata of to_bytes() output (the arrays are not decompressed)."""
        with np.load(io.BytesIO(data)) as archive:
            return json.loads(str(archive["__meta__"]))

    def _parts(self) -> tuple[dict, dict]:
        arrays, meta = {}, {"format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif isinstance(value, RunConfig):
                meta[f.name] = value.to_dict()
            else:
                meta[f.name] = value
        return arrays, meta

    @classmethod
    def _from_parts(cls, meta: dict, arrays: dict) -> "RunResult":
        meta = dict(meta)
        if meta.pop("format_version", None) != FORMAT_VERSION:
            raise ValueError("unknown result format")
        meta["config"] = RunConfig.from_dict(meta["config"])
        return cls(**meta, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "RunResult":
        base = Path(path)
        meta = json.loads(base.with_suffix(".json").read_text())
        with np.load(base.with_suffix(".npz")) as archive:
            arrays = {name: archive[name] for name in archive.files}
        try:
            return cls._from_parts(meta, arrays)
        except ValueError:
            raise ValueError(f"{base}: unknown result format") from None


@dataclass
class Progress:
    """Handed to on_progress while a run trains (here, between compiled chunks, or from a worker)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    snapshot: Callable[[], RunResult]  # the result so far (built only if asked for)
    where: str = "in-process"

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 1.0


def _hist_frame(layers, edges, hist, snapshot) -> pd.DataFrame:
    frames = []
    for which, index in (("initial", 0), ("current", snapshot)):
        counts = hist[index]
        frames.append(pd.DataFrame({
            "layer": np.repeat(layers, counts.shape[1]),
            "bin_start": edges[:, :-1].reshape(-1),
            "bin_end": edges[:, 1:].reshape(-1),
            "count": counts.reshape(-1),
            "when": which,
        }))
    return pd.concat(frames, ignore_index=True)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN/Inf: non-finite numbers become null."""
    return float(value) if value is not None and math.isfinite(value) else None
