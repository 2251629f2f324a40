"""Instrumented, graph-compiled training: per-layer gradient norms recorded inside the compiled step."""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from gradviz.config import RunConfig
from gradviz.data import Dataset
from gradviz.models import activation_layers, build_model, kernel_layers, model_inputs, submodel, tracked_kernels
from gradviz.optim import FusedOptimizer
from gradviz.result import RunResult
from gradviz.steplog import DEFAULT_CAPACITY, StepLog

# Every run builds a new model and so new tf.functions, on purpose (a model per config, nothing
# shared between sessions); TensorFlow's "excessive retracing" warning would fire on every run.
tf.get_logger().setLevel(logging.ERROR)
# Grappler's graph optimisation runs once per compiled function and, on the models gradviz builds,
# cost more than it returned: measured on 2 CPU cores, the first call of the 10x256 training chunk
# took 0.18 s with it and 0.06 s without, at the same steps/s (CNN runs were faster without it).
# Runs here are a few hundred steps, so that one-off cost is a visible share of every run.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

WEIGHT_BINS = 60
ACT_BINS = 40
PROBE_SIZE = 512  # fixed validation images whose activations are summarised each epoch
TRAIN_EVAL_SIZE = 1000  # train subset scored at step 0, before there is an epoch mean (one eval batch)
EVAL_BATCH = 1000
CHUNK_SECONDS = 0.4  # aim for a progress callback this often, so a UI can stream
MIN_CHUNK, MAX_CHUNK = 4, 512
FIRST_CHUNK = 8  # small, so the first numbers appear soon after tracing
# Activation histograms use fixed ranges so runs can be compared; values outside land in the edge bins.
ACT_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 4.0)}
DEFAULT_ACT_RANGE = (-4.0, 4.0)
SATURATION = {"sigmoid": 0.02, "tanh": 0.02}  # within this of the asymptote: derivative ~< 0.04
STEP_LOG_CAPACITY = DEFAULT_CAPACITY  # rows kept per run, however long it trains
FIXED_ROWS = 4  # per-step record: loss, correct count, global norm pre, global norm post
MIN_TOWER_ROWS, TOWER_WIDTHS = 64, (128, 256)  # where splitting a batch in two paid (see tower_sizes)


@dataclass
class Progress:
    """Handed to on_progress between compiled chunks."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    snapshot: Callable[[], RunResult]  # the result so far (built only if asked for)

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 1.0


def clip_gradients(grads: list[tf.Tensor], squares: tf.Tensor, config: RunConfig,
                   ok: tf.Tensor) -> tuple[list, tf.Tensor]:
    """Keras' clipping rule (at most one of the three is set), and the global norm after it.

    `squares` holds each gradient's sum of squares, already computed for the recorded norms, so
    the norm after clipping needs no further pass over the gradients except for clipvalue. When
    `ok` is false every gradient comes back as exact zeros (NaN and Inf included), so that the
    optimizer, given a zero learning rate too, leaves the weights as they were.
    """
    norms = tf.sqrt(squares)
    pre = tf.sqrt(tf.reduce_sum(squares))
    post = pre
    scales = tf.ones_like(squares)
    if config.clipnorm is not None:  # == tf.clip_by_norm per tensor: g * c / max(|g|, c)
        c = config.clipnorm
        scales = c / tf.maximum(norms, c)
        post = tf.sqrt(tf.reduce_sum(tf.square(tf.minimum(norms, c))))
    elif config.global_clipnorm is not None:  # == tf.clip_by_global_norm
        c = config.global_clipnorm
        scales = tf.fill(tf.shape(squares), c / tf.maximum(pre, c))
        post = tf.minimum(pre, c)
    scales = tf.where(ok, scales, tf.zeros_like(scales))
    # multiply_no_nan: 0 * NaN is 0 here, so a skipped step's gradients are clean zeros.
    clipped = [tf.math.multiply_no_nan(g, scale) for g, scale in zip(grads, tf.unstack(scales))]
    if config.clipvalue is not None:
        clipped = [tf.clip_by_value(g, -config.clipvalue, config.clipvalue) for g in clipped]
        post = tf.sqrt(tf.reduce_sum(_sums_of_squares(clipped)))
    return clipped, post


def _sums_of_squares(tensors: list[tf.Tensor]) -> tf.Tensor:
    """[n] sum of squares of each tensor. L2Loss (sum / 2) is one graph node where
    reduce_sum(square) is three, and graph size is what tracing and graph optimisation scale with."""
    return 2.0 * tf.stack([tf.nn.l2_loss(t) for t in tensors])


class CompiledSteps:
    """The graph-compiled training chunk and evaluation for one model.

    One call runs steps [s0, s1) of an epoch's permutation entirely in the graph and returns a
    [n, 4 + 2L] float32 matrix: loss, correct, global norm pre/post clip, then per-kernel gradient
    norms (pre-clip) and update/weight ratios. A non-finite loss or gradient stops the chunk at
    that step without applying its update; its row (NaN included) is the last one returned.
    """

    def __init__(self, model: keras.Model, config: RunConfig, x: np.ndarray, y: np.ndarray):
        self.model, self.config = model, config
        self.variables = model.trainable_variables
        self.optimizer = FusedOptimizer(config, self.variables)
        position = {v.path: i for i, v in enumerate(self.variables)}
        self.kernel_index = [position[v.path] for _, v in tracked_kernels(model)]
        self.time_steps = config.time_steps
        self.tower_sizes = tower_sizes(config)
        self.x, self.y = tf.constant(x), tf.constant(y)
        n = len(y)
        # autograph=False: the loop is written as a tf.while_loop already, and
        # skipping autograph's source conversion of the whole Keras call tree saves tracing time.
        # Split, every slice calls one tower function, traced once. Unsplit, the tower is traced
        # inline: as a nested function it made the CNN's step loop slower to build (0.65 s -> 0.9 s).
        self.tower = self._tower if len(self.tower_sizes) == 1 else tf.function(
            self._tower, autograph=False,
            input_signature=[tf.TensorSpec([None, 28, 28], tf.float32), tf.TensorSpec([None], tf.int32)])
        self.chunk = tf.function(self._chunk, autograph=False, input_signature=[
            tf.TensorSpec([n], tf.int32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
        # One forward function serves both evaluation and the activation probe: the probe images are
        # the first validation images, so they are not pushed through the model (or traced) twice.
        acts = activation_layers(model)
        self.act_names = [layer.name for layer in acts]
        self.forward_model = submodel(model, [model.output] + [layer.output for layer in acts])
        self.evaluate_batch = tf.function(self._evaluate_batch, autograph=False, input_signature=[
            tf.TensorSpec([None, 28, 28], tf.float32), tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])

    def _tower(self, xb, yb):
        """Forward and backward pass on a slice of the batch: its share of the batch-mean loss,
        its correct count, and its share of every gradient (plus the state probe's, through time)."""
        inputs = model_inputs(self.model, xb)
        with tf.GradientTape() as tape:
            if self.time_steps:
                tape.watch(inputs[1])  # the zero state probe: its gradient is dloss/dh_t
            logits = self.model(inputs, training=True)
            losses = keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)
            loss = tf.reduce_sum(losses) / self.config.batch_size  # this slice's share of the batch mean
        grads = tape.gradient(loss, self.variables + ([inputs[1]] if self.time_steps else []))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), yb), tf.float32))
        return loss, correct, grads

    def _gradients(self, xb, yb):
        """Batch-mean loss, correct count and gradients (the state probe's last, for recurrent
        models), from one tower call per slice of the batch. Only MLPs are ever split (see
        tower_sizes), so every gradient here is a sum over the slices."""
        if len(self.tower_sizes) == 1:
            return self.tower(xb, yb)
        parts = [self.tower(x, y) for x, y in zip(tf.split(xb, self.tower_sizes), tf.split(yb, self.tower_sizes))]
        losses, corrects, grads = zip(*parts)
        return tf.add_n(losses), tf.add_n(corrects), [tf.add_n(list(g)) for g in zip(*grads)]

    def _step(self, xb, yb):
        loss, correct, grads = self._gradients(xb, yb)
        grads = list(grads)
        through_time = []
        if self.time_steps:
            probe_grad = grads.pop()
            through_time = [tf.sqrt(tf.reduce_sum(tf.square(probe_grad), axis=[0, 2]))]  # [T]
        squares = _sums_of_squares(grads)
        norms = tf.sqrt(tf.gather(squares, self.kernel_index))
        pre = tf.sqrt(tf.reduce_sum(squares))
        ok = tf.math.is_finite(loss) & tf.math.is_finite(pre) & tf.reduce_all(tf.math.is_finite(norms))
        kernels = [self.variables[i] for i in self.kernel_index]
        # A non-finite step is recorded but never applied. Not with tf.cond: its two branch graphs
        # and their captures made up a third of the chunk's tracing time. Instead the update runs
        # with zeroed gradients and a zero learning rate, which leaves every weight unchanged (the
        # run stops at this step, so the optimizer's moment estimates no longer matter).
        before = [tf.identity(k) for k in kernels]
        clipped, post = clip_gradients(grads, squares, self.config, ok)
        with tf.control_dependencies([self.optimizer.apply(clipped, live=tf.cast(ok, tf.float32))]):
            moved = _sums_of_squares([k.value - b for k, b in zip(kernels, before)])
        ratios = tf.sqrt(moved / (_sums_of_squares(before) + 1e-24))
        post, ratios = tf.where(ok, post, math.nan), tf.where(ok, ratios, math.nan)
        return ok, tf.concat([tf.stack([loss, correct, pre, post]), norms, ratios, *through_time], 0)

    def _chunk(self, perm, s0, s1):
        batch = self.config.batch_size

        def running(i, ok, rows):
            return (i < s1) & ok

        def one_step(i, ok, rows):
            idx = perm[i * batch:(i + 1) * batch]
            ok, row = self._step(tf.gather(self.x, idx), tf.gather(self.y, idx))
            return i + 1, ok, rows.write(i - s0, row)

        width = row_width(len(self.kernel_index), self.time_steps)
        rows = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[width])
        _, _, rows = tf.while_loop(running, one_step, (s0, tf.constant(True), rows))
        return rows.stack()

    def validate(self, data: Dataset) -> tuple[float, float, list[np.ndarray]]:
        """Validation loss and accuracy, with the probe batch's activations."""
        return self.evaluate(data.x_val, data.y_val, keep=PROBE_SIZE)

    def _evaluate_batch(self, x, y, keep):
        outputs = self.forward_model(model_inputs(self.model, x), training=False)
        logits, *acts = outputs if isinstance(outputs, (list, tuple)) else [outputs]  # a one-output model: a tensor
        losses = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return tf.reduce_sum(losses), correct, [a[:keep] for a in acts]

    def evaluate(self, x: np.ndarray, y: np.ndarray, keep: int = 0) -> tuple[float, float, list[np.ndarray]]:
        """Mean loss and accuracy over (x, y), forward only, in inference mode, and each hidden
        activation layer's output for the first `keep` (<= EVAL_BATCH) examples."""
        total_loss = total_correct = 0.0
        kept: list[np.ndarray] = []
        for start in range(0, len(y), EVAL_BATCH):
            loss, correct, acts = self.evaluate_batch(x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH],
                                                      tf.constant(keep if start == 0 else 0))
            total_loss += float(loss)
            total_correct += float(correct)
            kept = kept or [np.asarray(a) for a in acts]
        return total_loss / len(y), total_correct / len(y), kept


def row_width(n_kernels: int, time_steps: int) -> int:
    """Columns of a step's record: the fixed ones, then per kernel its gradient norm and update
    ratio, then (recurrent models) the gradient norm at each time step."""
    return FIXED_ROWS + 2 * n_kernels + time_steps


def tower_sizes(config: RunConfig, cores: int | None = None) -> list[int]:
    """How to slice a training batch across cores (see CompiledSteps._gradients): in two, or not.

    TensorFlow runs each small matmul of these models on one core (letting oneDNN split one
    across both cores made steps slower), so an MLP's forward pass, a chain of them, leaves the
    second core idle; two towers give it an independent chain. Measured on 2 cores, each run
    against one tower, alternating in one process: 10x256 sigmoid at batch 128 -6 % time, at
    batch 256 -18 %; 20x256 linear -6 %; 10x128 -2 %. Outside the range split here it lost:
    10x64 +8 %, 4x512 +6 %, 2x1024 +10 % (oneDNN already spreads a matmul that large), 32 rows
    per tower +6 % to +9 %, the CNN +7 % and the RNN +13 % (their per-step graphs are larger
    and already run ops side by side). Batch norm couples the rows of a batch, so a model with
    it is never split: its statistics and moving averages must come from the whole batch.
    """
    cores = cores or available_cores()
    if (cores < 2 or config.architecture != "mlp" or config.batch_norm
            or config.batch_size < 2 * MIN_TOWER_ROWS or not TOWER_WIDTHS[0] <= config.width <= TOWER_WIDTHS[1]):
        return [config.batch_size]
    return [config.batch_size - config.batch_size // 2, config.batch_size // 2]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
        self.log = StepLog(row_width(len(layers), config.time_steps), STEP_LOG_CAPACITY)
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
        n_layers = len(self.layers)
        batch = self.config.batch_size
        snaps = [{**{k: v for k, v in s.items() if k != "summary"}, **s["summary"].result()} for s in self.snapshots]
        snap = {key: np.array([r[key] for r in snaps]) for key in snaps[0]}
        return RunResult(
            config=self.config, data=self.dataset.info(), layers=self.layers,
            act_layers=self.probe.act_names, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.steps_per_epoch * self.config.epochs,
            step=steps, loss=rows[:, 0], accuracy=rows[:, 1] / batch,
            global_norm_pre=rows[:, 2], global_norm_post=rows[:, 3],
            grad_norm=rows[:, FIXED_ROWS:FIXED_ROWS + n_layers].reshape(-1, n_layers),
            update_ratio=rows[:, FIXED_ROWS + n_layers:FIXED_ROWS + 2 * n_layers].reshape(-1, n_layers),
            time_grad=rows[:, FIXED_ROWS + 2 * n_layers:],
            weight_edges=self.probe.weight_edges, pooled_edges=self.probe.pooled_edges, act_edges=self.probe.act_edges,
            step_stride=self.log.stride, steps_done=self.steps_done,
            seconds=time.perf_counter() - self.started, **snap, **extra,
        )


def _epoch_means(rows: list[np.ndarray], batch: int) -> tuple[float, float]:
    """Mean loss and accuracy over an epoch's finite steps (Keras' running train metrics)."""
    stacked = np.concatenate(rows) if rows else np.empty((0, FIXED_ROWS))
    finite = stacked[np.isfinite(stacked[:, 0])]
    if not len(finite):
        return math.nan, math.nan
    return float(finite[:, 0].mean()), float(finite[:, 1].sum() / (batch * len(finite)))


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
            if not _step_ok(rows[-1], len(rec.layers)):
                return _diverged(rec, compiled, model, data, perm, epoch_rows, start - 1)
            if on_progress is not None:
                on_progress(Progress(rec.steps_done, steps_per_epoch * config.epochs,
                                     rec.steps_done / steps_per_epoch, float(rows[-1, 0]), rec.result))
            if should_stop is not None and should_stop():
                rec.snapshot(*_epoch_means(epoch_rows, config.batch_size), compiled.validate(data))
                return rec.result(stopped=True)
        rec.snapshot(*_epoch_means(epoch_rows, config.batch_size), compiled.validate(data))
    return rec.result()


def _first_snapshot_while_tracing(compiled: CompiledSteps, rec: _Recorder, data: Dataset) -> None:
    """The step-0 snapshot (evaluation, histograms) runs on a second thread while this one traces
    and builds the training chunk: tracing is single-threaded Python and would leave the other
    core idle (measured: ~0.06 s less per run on 2 cores). The forward function is traced first,
    here, so that only one thread ever traces; the chunk is then built by a zero-step call."""
    compiled.evaluate_batch.get_concrete_function()

    def first_snapshot():
        rec.snapshot(*compiled.evaluate(data.x_train[:TRAIN_EVAL_SIZE], data.y_train[:TRAIN_EVAL_SIZE])[:2],
                     compiled.validate(data))

    snapshot = rec.pool.submit(first_snapshot)
    compiled.chunk(tf.zeros([len(data.y_train)], tf.int32), tf.constant(0), tf.constant(0))  # zero steps: no move
    snapshot.result()


def _step_ok(row: np.ndarray, n_layers: int) -> bool:
    """The compiled step's own test: finite loss, global norm and per-kernel norms."""
    return bool(np.isfinite(row[0]) and np.isfinite(row[2]) and np.isfinite(row[FIXED_ROWS:FIXED_ROWS + n_layers]).all())


def _next_chunk(current: int, done: int, seconds: float) -> int:
    """Steps for the next chunk, so that chunks take about CHUNK_SECONDS (no retrace: s0/s1 are tensors)."""
    if done < current or seconds <= 0:
        return current
    return int(np.clip(done * CHUNK_SECONDS / seconds, MIN_CHUNK, MAX_CHUNK))


def _diverged(rec, compiled, model, data, perm, epoch_rows, bad_in_epoch) -> RunResult:
    """Stop at the first non-finite step: locate the layer, snapshot the last finite weights."""
    batch = rec.config.batch_size
    idx = np.asarray(perm[bad_in_epoch * batch:(bad_in_epoch + 1) * batch])
    n_layers = len(rec.layers)
    bad_norms = epoch_rows[-1][-1, FIXED_ROWS:FIXED_ROWS + n_layers]
    layer, origin = _locate_divergence(model, data.x_train[idx], bad_norms)
    rec.snapshot(*_epoch_means(epoch_rows, batch), compiled.validate(data))
    return rec.result(diverged_at_step=rec.steps_done - 1, first_bad_layer=layer, divergence_origin=origin)
