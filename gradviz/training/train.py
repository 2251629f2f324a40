"""Instrumented, graph-compiled training: per-layer gradient norms recorded inside the compiled step."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import keras
import numpy as np

from gradviz.config import RunConfig
from gradviz.data import Dataset
from gradviz.result import Progress, RunResult
from gradviz.training.models import (
    build_model,
    kernel_layers,
    model_inputs,
    submodel,
    tracked_kernels,
)
from gradviz.training.steplog import DEFAULT_CAPACITY, StepLog
from gradviz.training.steps import CompiledSteps, StepRecord
from gradviz.training.tf_setup import tf

WEIGHT_BINS = 60
ACT_BINS = 40
PROBE_SIZE = 512  # fixed validation images whose activations are summarised each epoch
TRAIN_EVAL_SIZE = 1000  # train subset scored at step 0, before there is an epoch mean (one eval batch)
CHUNK_SECONDS = 0.4  # aim for a progress callback this often, so a UI can stream
MIN_CHUNK, MAX_CHUNK = 4, 512
FIRST_CHUNK = 8  # small, so the first numbers appear soon after tracing
# Activation histograms use fixed ranges so runs can be compared; values outside land in the edge bins.
ACT_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "relu": (0.0, 4.0)}
DEFAULT_ACT_RANGE = (-4.0, 4.0)
SATURATION = {"sigmoid": 0.02, "tanh": 0.02}  # within this of the asymptote: derivative ~< 0.04
STEP_LOG_CAPACITY = DEFAULT_CAPACITY  # rows kept per run, however long it trains


def validate(compiled: CompiledSteps, data: Dataset) -> tuple[float, float, list[np.ndarray]]:
    """Validation loss and accuracy, with the probe batch's activations."""
    return compiled.evaluate(data.x_val, data.y_val, keep=PROBE_SIZE)


def epoch_order(n: int, seed: int, epoch: int) -> tf.Tensor:
    # Stateless: the shuffle depends only on (seed, epoch), never on what else the process did.
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=[seed, epoch])


class Probe:
    """Per-layer weight histograms and activation statistics, taken at each snapshot."""

    def __init__(self, model: keras.Model, config: RunConfig, act_names: list[str]):
        self.activation = config.activation
        self.kernels = [kernel for _, kernel in tracked_kernels(model)]
        self.act_names = act_names  # none for recurrent models: their state is probed per step
        initial = self.weights_now()
        self.weight_edges = np.stack([_weight_edges(k) for k in initial])
        # The seed article's view: every Dense/Conv kernel pooled into one histogram.
        self.pooled_edges = _weight_edges(np.concatenate([k.reshape(-1) for k in initial]))
        low, high = ACT_RANGES.get(config.activation, DEFAULT_ACT_RANGE)
        self.act_edges = np.tile(np.linspace(low, high, ACT_BINS + 1), (len(act_names), 1))

    def weights_now(self) -> list[np.ndarray]:
        """Copies of the kernels as they are now (the next step changes the variables)."""
        return [np.array(k) for k in self.kernels]

    def summarise(self, weights: list[np.ndarray], outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """A snapshot's histograms and statistics, from copies: safe on another thread."""
        weight_hist, pooled_hist = self.weight_hist(weights)
        act_hist, act_stats = self.activations(outputs)
        return {"weight_hist": weight_hist, "pooled_hist": pooled_hist, "act_hist": act_hist, "act_stats": act_stats}

    def weight_hist(self, values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """([L, WB] per-layer counts, [WB] counts of all kernels pooled)."""
        per_layer = np.stack([_clipped_hist(v, edges) for v, edges in zip(values, self.weight_edges)])
        return per_layer, sum(_clipped_hist(v, self.pooled_edges) for v in values)

    def activations(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """([A, AB] histogram counts, [A, 4] mean/std/dead/saturated) of the probe batch's outputs."""
        if not outputs:
            return np.zeros((0, ACT_BINS), dtype=np.int64), np.zeros((0, 4))
        hists = [_clipped_hist(values, edges) for values, edges in zip(outputs, self.act_edges)]
        return np.stack(hists), np.stack([activation_stats(values, self.activation) for values in outputs])


def activation_stats(values: np.ndarray, activation: str) -> np.ndarray:
    """mean, std, dead fraction (relu: units zero for every probe input), saturated fraction."""
    finite = values[np.isfinite(values)]
    mean = float(finite.mean(dtype=np.float64)) if finite.size else math.nan
    std = float(finite.std(dtype=np.float64)) if finite.size else math.nan
    dead = saturated = math.nan
    if activation == "relu":
        per_unit = values.reshape(-1, values.shape[-1])  # conv: a unit is a channel
        dead = float(np.mean(np.all(per_unit <= 0, axis=0)))
    margin = SATURATION.get(activation)
    if margin is not None:
        low, high = ACT_RANGES[activation]
        saturated = float(np.mean((values < low + margin) | (values > high - margin)))
    return np.array([mean, std, dead, saturated])


def _weight_edges(kernel: np.ndarray) -> np.ndarray:
    """Symmetric bins at 1.5x the initial largest weight (zeros init: +-0.05)."""
    limit = 1.5 * float(np.max(np.abs(kernel))) or 0.05
    return np.linspace(-limit, limit, WEIGHT_BINS + 1)


def _clipped_hist(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts on fixed, evenly spaced edges; out-of-range values (and +-Inf) go to the edge bins,
    NaN is dropped. Binning by arithmetic + bincount is ~5x faster than np.histogram here."""
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    values = values[~np.isnan(values)]
    bins = len(edges) - 1
    index = np.floor((values - edges[0]) * (bins / (edges[-1] - edges[0])))
    return np.bincount(np.clip(index, 0, bins - 1).astype(np.intp), minlength=bins)


def _locate_divergence(model: keras.Model, xb: np.ndarray, bad_norms: np.ndarray) -> tuple[str, str]:
    """Name the layer where numbers first went non-finite at the diverging step.

    Forward first: the earliest kernel layer whose output on that batch overflows. If the forward
    pass is finite, the overflow happened in backprop, which runs output -> input: the bad layer
    nearest the output is where it began.
    """
    layers = kernel_layers(model)
    outputs = submodel(model, [layer.output for layer in layers])(model_inputs(model, xb), training=True)
    for layer, out in zip(layers, outputs if isinstance(outputs, (list, tuple)) else [outputs]):
        if not np.all(np.isfinite(np.asarray(out))):
            return layer.name, "forward"
    names = [name for name, _ in tracked_kernels(model)]
    bad = np.flatnonzero(~np.isfinite(bad_norms))
    return names[int(bad[-1]) if bad.size else -1], "backward"


class _Recorder:
    """Collects step rows and snapshots and assembles RunResults (partial or final)."""

    def __init__(self, config, dataset, layers, probe: Probe, steps_per_epoch, started):
        self.config, self.dataset, self.layers, self.probe = config, dataset, layers, probe
        self.steps_per_epoch, self.started = steps_per_epoch, started
        self.record = StepRecord(len(layers), config.time_steps)
        self.log = StepLog(self.record.width, STEP_LOG_CAPACITY)
        self.snapshots: list[dict] = []
        self.steps_done = 0
        # Histograms and activation statistics are numpy work on copies: a second thread does them
        # while this one goes on training (~25 ms less per 3-epoch 10x256 run), and it computes the
        # step-0 snapshot while this thread traces the step loop.
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="gradviz-snapshot")

    def add_steps(self, rows: np.ndarray) -> None:
        self.log.append(self.steps_done, rows)
        self.steps_done += len(rows)

    def snapshot(self, train_loss: float, train_accuracy: float, val: tuple[float, float, list]) -> None:
        """`val`: (loss, accuracy, probe activations) from CompiledSteps.evaluate on the validation set."""
        summary = self.pool.submit(self.probe.summarise, self.probe.weights_now(), val[2])
        self.snapshots.append({
            "epoch": self.steps_done / self.steps_per_epoch, "epoch_step": self.steps_done,
            "train_loss": train_loss, "train_accuracy": train_accuracy,
            "val_loss": val[0], "val_accuracy": val[1], "summary": summary,
        })

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def result(self, **extra) -> RunResult:
        steps, rows = self.log.arrays()
        n_layers, r = len(self.layers), self.record
        batch = self.config.batch_size
        snaps = [{**{k: v for k, v in s.items() if k != "summary"}, **s["summary"].result()} for s in self.snapshots]
        snap = {key: np.array([r[key] for r in snaps]) for key in snaps[0]}
        return RunResult(
            config=self.config, data=self.dataset.info(), layers=self.layers,
            act_layers=self.probe.act_names, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.steps_per_epoch * self.config.epochs,
            step=steps, loss=rows[:, r.LOSS], accuracy=rows[:, r.CORRECT] / batch,
            global_norm_pre=rows[:, r.NORM_PRE], global_norm_post=rows[:, r.NORM_POST],
            grad_norm=rows[:, r.grad_norms].reshape(-1, n_layers),
            update_ratio=rows[:, r.update_ratios].reshape(-1, n_layers),
            time_grad=rows[:, r.time_grads],
            weight_edges=self.probe.weight_edges, pooled_edges=self.probe.pooled_edges, act_edges=self.probe.act_edges,
            step_stride=self.log.stride, steps_done=self.steps_done,
            seconds=time.perf_counter() - self.started, **snap, **extra,
        )


def _epoch_means(rows: list[np.ndarray], batch: int) -> tuple[float, float]:
    """Mean loss and accuracy over an epoch's finite steps (Keras' running train metrics)."""
    stacked = np.concatenate(rows) if rows else np.empty((0, StepRecord.FIXED))
    finite = stacked[np.isfinite(stacked[:, StepRecord.LOSS])]
    if not len(finite):
        return math.nan, math.nan
    return (float(finite[:, StepRecord.LOSS].mean()),
            float(finite[:, StepRecord.CORRECT].sum() / (batch * len(finite))))


def train(
    config: RunConfig,
    data: Dataset,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train `config` on `data`, recording every step's gradient norms; never raises on NaN."""
    started = time.perf_counter()
    model = build_model(config)
    steps_per_epoch = len(data.y_train) // config.batch_size  # whole batches only: every step sees batch_size examples
    compiled = CompiledSteps(model, config, data.x_train, data.y_train)
    probe = Probe(model, config, compiled.act_names)
    rec = _Recorder(config, data, [name for name, _ in tracked_kernels(model)], probe, steps_per_epoch, started)
    try:
        _first_snapshot_while_tracing(compiled, rec, data)
        return _train_epochs(config, data, model, compiled, rec, on_progress, should_stop)
    finally:
        rec.close()


def _train_epochs(config, data, model, compiled, rec, on_progress, should_stop) -> RunResult:
    """The epoch loop: compiled chunks, progress between them, a snapshot after each epoch."""
    n, steps_per_epoch = len(data.y_train), rec.steps_per_epoch
    chunk = FIRST_CHUNK
    for epoch in range(config.epochs):
        perm = epoch_order(n, config.seed, epoch)
        epoch_rows: list[np.ndarray] = []
        start = 0
        while start < steps_per_epoch:
            tick = time.perf_counter()
            rows = compiled.chunk(perm, tf.constant(start), tf.constant(min(start + chunk, steps_per_epoch))).numpy()
            chunk = _next_chunk(chunk, len(rows), time.perf_counter() - tick)
            rec.add_steps(rows)
            epoch_rows.append(rows)
            start += len(rows)
            if not _step_ok(rows[-1], rec.record):
                return _diverged(rec, compiled, model, data, perm, epoch_rows, start - 1)
            if on_progress is not None:
                on_progress(Progress(rec.steps_done, steps_per_epoch * config.epochs,
                                     rec.steps_done / steps_per_epoch, float(rows[-1, StepRecord.LOSS]), rec.result))
            if should_stop is not None and should_stop():
                rec.snapshot(*_epoch_means(epoch_rows, config.batch_size), validate(compiled, data))
                return rec.result(stopped=True)
        rec.snapshot(*_epoch_means(epoch_rows, config.batch_size), validate(compiled, data))
    return rec.result()


def _first_snapshot_while_tracing(compiled: CompiledSteps, rec: _Recorder, data: Dataset) -> None:
    """The step-0 snapshot (evaluation, histograms) runs on a second thread while this one traces
    and builds the training chunk: tracing is single-threaded Python and would leave the other
    core idle (measured: ~0.06 s less per run on 2 cores). The forward function is traced first,
    here, so that only one thread ever traces; the chunk is then built by a zero-step call."""
    compiled.trace_evaluation()

    def first_snapshot():
        rec.snapshot(*compiled.evaluate(data.x_train[:TRAIN_EVAL_SIZE], data.y_train[:TRAIN_EVAL_SIZE])[:2],
                     validate(compiled, data))

    snapshot = rec.pool.submit(first_snapshot)
    compiled.chunk(tf.zeros([len(data.y_train)], tf.int32), tf.constant(0), tf.constant(0))  # zero steps: no move
    snapshot.result()


def _step_ok(row: np.ndarray, record: StepRecord) -> bool:
    """The step's loss, global norm and every kernel's gradient norm are finite."""
    return bool(np.isfinite(row[record.LOSS]) and np.isfinite(row[record.NORM_PRE])
                and np.isfinite(row[record.grad_norms]).all())


def _next_chunk(current: int, done: int, seconds: float) -> int:
    """Steps for the next chunk, so that chunks take about CHUNK_SECONDS (no retrace: s0/s1 are tensors)."""
    if done < current or seconds <= 0:
        return current
    return int(np.clip(done * CHUNK_SECONDS / seconds, MIN_CHUNK, MAX_CHUNK))


def _diverged(rec, compiled, model, data, perm, epoch_rows, bad_in_epoch) -> RunResult:
    """Stop at the first non-finite step: locate the layer, snapshot the last finite weights."""
    batch = rec.config.batch_size
    idx = np.asarray(perm[bad_in_epoch * batch:(bad_in_epoch + 1) * batch])
    bad_norms = epoch_rows[-1][-1, rec.record.grad_norms]
    layer, origin = _locate_divergence(model, data.x_train[idx], bad_norms)
    rec.snapshot(*_epoch_means(epoch_rows, batch), validate(compiled, data))
    return rec.result(diverged_at_step=rec.steps_done - 1, first_bad_layer=layer, divergence_origin=origin)
