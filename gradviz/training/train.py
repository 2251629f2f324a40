"""Instrumented, graph-compiled training: per-layer gradient norms recorded inside the compiled step."""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import numpy as np

from gradviz.config import RunConfig
from gradviz.data import Dataset
from gradviz.result import Progress, RunResult
from gradviz.serving.cost import SNAPSHOT_IMAGES
from gradviz.serving.limits import check_memory
from gradviz.training.models import (
    build_model,
    kernel_layers,
    model_inputs,
    submodel,
    tracked_kernels,
)
from gradviz.training.snapshots import Snapshots
from gradviz.training.steplog import DEFAULT_CAPACITY, StepLog
from gradviz.training.steps import CompiledSteps, StepRecord
from gradviz.training.tf_setup import keras, tf

SHARPNESS_IMAGES = 64  # λ_max on the probe's batch: the first validation images
LOG = logging.getLogger("gradviz")
TRAIN_EVAL_SIZE = 1000  # train subset scored at step 0, before there is an epoch mean (one eval batch)
CHUNK_SECONDS = 0.4  # aim for a progress callback this often, so a UI can stream
MIN_CHUNK, MAX_CHUNK = 4, 512
FIRST_CHUNK = 8  # small, so the first numbers appear soon after tracing
STEP_LOG_CAPACITY = DEFAULT_CAPACITY  # rows kept per run, however long it trains


def validate(compiled: CompiledSteps, data: Dataset) -> tuple[float, float, list[np.ndarray]]:
    """Validation loss and accuracy, with the snapshot images' activations."""
    return compiled.evaluate(data.x_val, data.y_val, keep=SNAPSHOT_IMAGES)


def epoch_order(n: int, seed: int, epoch: int) -> tf.Tensor:
    # Stateless: the shuffle depends only on (seed, epoch), never on what else the process did.
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=[seed, epoch])


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

    def __init__(self, config, dataset, layers, snapshots: Snapshots, steps_per_epoch, started):
        self.config, self.dataset, self.layers, self.snapshots = config, dataset, layers, snapshots
        self.steps_per_epoch, self.started = steps_per_epoch, started
        self.record = StepRecord(len(layers), config.time_steps)
        self.log = StepLog(self.record.width, STEP_LOG_CAPACITY)
        self.taken: list[dict] = []  # one per snapshot, its summary computed on the pool
        self.sharpness: list[tuple[int, float]] = []  # (step, λ_max) where measured
        self.initial_sharpness = None  # a Future: λ at step 0, measured on a snapshot of the initial weights
        self.sharpness_pool: ThreadPoolExecutor | None = None  # λ's own thread, where it is measured
        self.steps_done = 0
        # Histograms and activation statistics are numpy work on copies: a second thread does them
        # while this one goes on training (~25 ms less per 3-epoch 10x256 run), and it computes the
        # step-0 snapshot while this thread traces the step loop.
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="gradviz-snapshot")

    def add_steps(self, rows: np.ndarray) -> None:
        self.log.append(self.steps_done, rows)
        self.steps_done += len(rows)

    def snapshot(self, train_loss: float, train_accuracy: float, val: tuple[float, float, list]) -> None:
        """`val`: (loss, accuracy, snapshot activations) from CompiledSteps.evaluate on the validation set.
        At most one summary is pending: the previous one is finished first, so the activations kept
        for it (what the cost model counts once) are never held twice."""
        if self.taken:
            self.taken[-1]["summary"].result()
        summary = self.pool.submit(self.snapshots.summarise, self.snapshots.weights_now(), val[2])
        self.taken.append({
            "epoch": self.steps_done / self.steps_per_epoch, "epoch_step": self.steps_done,
            "train_loss": train_loss, "train_accuracy": train_accuracy,
            "val_loss": val[0], "val_accuracy": val[1], "summary": summary,
        })

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self.sharpness_pool is not None:
            self.sharpness_pool.shutdown(wait=True)  # never leave its thread tracing after the run

    def _sharpness(self, partial: bool) -> list[tuple[int, float]]:
        """λ where measured; step 0's once its thread is done (a partial result does not wait for it)."""
        future = self.initial_sharpness
        if future is None or (partial and not future.done()) or future.result() is None:
            return self.sharpness
        return [(0, future.result()), *self.sharpness]

    def partial_result(self) -> RunResult:
        """The run so far, for a live view: never waits for anything still being measured."""
        return self.result(partial=True)

    def result(self, partial: bool = False, **extra) -> RunResult:
        steps, rows = self.log.arrays()
        n_layers, r = len(self.layers), self.record
        batch = self.config.batch_size
        snaps = [{**{k: v for k, v in s.items() if k != "summary"}, **s["summary"].result()} for s in self.taken]
        snap = {key: np.array([r[key] for r in snaps]) for key in snaps[0]}
        return RunResult(
            config=self.config, data=self.dataset.info(), layers=self.layers,
            act_layers=self.snapshots.act_names, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.steps_per_epoch * self.config.epochs,
            step=steps, loss=rows[:, r.LOSS], accuracy=rows[:, r.CORRECT] / batch,
            global_norm_pre=rows[:, r.NORM_PRE], global_norm_post=rows[:, r.NORM_POST],
            grad_norm=rows[:, r.grad_norms].reshape(-1, n_layers),
            update_ratio=rows[:, r.update_ratios].reshape(-1, n_layers),
            time_grad=rows[:, r.time_grads],
            weight_edges=self.snapshots.weight_edges, pooled_edges=self.snapshots.pooled_edges,
            act_edges=self.snapshots.act_edges,
            step_stride=self.log.stride, steps_done=self.steps_done,
            seconds=time.perf_counter() - self.started,
            sharpness=np.array(self._sharpness(partial), dtype=np.float64).reshape(-1, 2), **snap, **extra,
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
    """Train `config` on `data`, recording every step's gradient norms; never raises on NaN.

    Args:
        config: the run.
        data: its images (gradviz.data.load_dataset, or any Dataset).
        on_progress: called between compiled chunks with the run so far.
        should_stop: asked between chunks; True ends the run there (`stopped` is set).
    Returns:
        The RunResult: every step's gradient norms, the snapshots, where it diverged if it did,
        and where the learning-rate law applies (measures_sharpness) the loss's sharpness λ_max on
        the first 64 validation images before the first step and at the end.
    Raises:
        MemoryLimit: the cost model puts its peak memory over GRADVIZ_MAX_MEMORY_MB (nothing is built).
    """
    check_memory(config, "training", images=len(data.y_train))
    started = time.perf_counter()
    model = build_model(config)
    steps_per_epoch = len(data.y_train) // config.batch_size  # whole batches only: every step sees batch_size examples
    compiled = CompiledSteps(model, config, data.x_train, data.y_train)
    snapshots = Snapshots([k for _, k in tracked_kernels(model)], config.activation, compiled.act_names)
    rec = _Recorder(config, data, [name for name, _ in tracked_kernels(model)], snapshots, steps_per_epoch, started)
    try:
        _first_snapshot_while_tracing(compiled, rec, data)
        measure = _sharpness_meter(compiled, rec, data) if measures_sharpness(config) else None
        if measure is not None:
            rec.sharpness_pool = ThreadPoolExecutor(1, thread_name_prefix="gradviz-sharpness")
            rec.initial_sharpness = _initial_sharpness(compiled, data, config, rec.sharpness_pool)
        return _train_epochs(config, data, model, compiled, rec, on_progress, should_stop, measure)
    finally:
        rec.close()


def _initial_sharpness(compiled: CompiledSteps, data: Dataset, config: RunConfig, pool: ThreadPoolExecutor):
    """λ at step 0: the At-initialization view's number where it measured this starting point on
    these images (the same computation, gradviz.signal.sharpness.view_lambda), else measured on a
    snapshot of the initial weights on `pool`'s thread: a network's first measurement traces its
    graph (~0.5 s for a 6 x 128 MLP), single-threaded Python that would otherwise stop the
    training, which meanwhile runs in TensorFlow's own threads."""
    from gradviz.signal.sharpness import view_lambda

    x, y = data.x_val[:SHARPNESS_IMAGES], data.y_val[:SHARPNESS_IMAGES]
    known = view_lambda(config, x, y)
    if known is not None and math.isfinite(known):
        future: Future = Future()
        future.set_result(known)
        return future
    return pool.submit(_measured, compiled, x, y, config.seed, compiled.weights_now())


def measures_sharpness(config: RunConfig) -> bool:
    """Where the learning-rate law applies and λ is cheap: MLPs trained with SGD or momentum (Adam
    and RMSprop have no bound in the learning rate alone; a Hessian-vector product through a CNN or
    a recurrent layer costs 0.5-15 s here, see docs/performance.md). Fixed by the config, so a
    cached or stored run has it exactly when a fresh one would."""
    return config.architecture == "mlp" and config.optimizer in ("sgd", "momentum")


def _sharpness_meter(compiled: CompiledSteps, rec: _Recorder, data: Dataset) -> Callable[[], Future]:
    """Records (steps done, λ_max) on the weights now, on λ's thread, each time it is called (once
    the last step is taken: it runs beside the final validation, a forward chain that leaves a
    core free, rather than after it)."""
    x, y = data.x_val[:SHARPNESS_IMAGES], data.y_val[:SHARPNESS_IMAGES]

    def record(step: int) -> None:
        value = _measured(compiled, x, y, rec.config.seed)
        if value is not None:
            rec.sharpness.append((step, value))

    return lambda: rec.sharpness_pool.submit(record, rec.steps_done)


def _measured(compiled: CompiledSteps, x, y, seed: int, weights: tuple | None = None) -> float | None:
    """λ_max, or None if it is not a finite number or could not be measured (the run is whole without it)."""
    try:
        value = compiled.sharpness(x, y, seed, weights)
    except Exception:  # noqa: BLE001 - a measurement beside the run, never a reason to lose it
        LOG.exception("the sharpness could not be measured")
        return None
    return value if math.isfinite(value) else None


def _train_epochs(config, data, model, compiled, rec, on_progress, should_stop, measure=None) -> RunResult:
    """The epoch loop: compiled chunks, progress between them, a snapshot after each epoch."""
    n, steps_per_epoch = len(data.y_train), rec.steps_per_epoch
    chunk, measured = FIRST_CHUNK, None
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
                on_progress(Progress(rec.steps_done, steps_per_epoch * config.epochs, rec.steps_done / steps_per_epoch,
                                     float(rows[-1, StepRecord.LOSS]), rec.partial_result))
            if should_stop is not None and should_stop():
                rec.snapshot(*_epoch_means(epoch_rows, config.batch_size), validate(compiled, data))
                return rec.result(stopped=True)
        measured = measure() if measure is not None and epoch == config.epochs - 1 else None
        rec.snapshot(*_epoch_means(epoch_rows, config.batch_size), validate(compiled, data))
    if measured is not None:
        measured.result()
    return rec.result(halves=halves_used(compiled, data) if config.time_steps else np.zeros(0))


def halves_used(compiled: CompiledSteps, data: Dataset) -> np.ndarray:
    """Validation accuracy with the first half of the sequence blanked (the image's top 14 rows, read
    first whatever the step size), then with the second half blanked: whether the trained network
    uses what it read early, not only whether a gradient reached it."""
    accuracies = []
    for rows in (slice(0, 14), slice(14, 28)):
        blanked = data.x_val.copy()
        blanked[:, rows, :] = 0.0
        accuracies.append(compiled.evaluate(blanked, data.y_val)[1])
    return np.array(accuracies)


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
