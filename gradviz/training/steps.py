"""The traced training chunk and evaluation, shared by every run whose graph has the same shape."""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from gradviz.config import RunConfig
from gradviz.serving.cost import eval_batch, traced_graph_bytes
from gradviz.serving.lru import BoundedLRU
from gradviz.training.models import (
    activation_layers,
    model_inputs,
    submodel,
    tracked_kernels,
)
from gradviz.training.optim import apply_update, optimizer_state
from gradviz.training.tf_setup import keras, tf

LOG = logging.getLogger("gradviz")
MIN_TOWER_ROWS, TOWER_WIDTHS = 64, (128, 256)  # where splitting a batch in two paid (see tower_sizes)
# Fields whose value reaches the graphs only as an argument (learning rate, clip threshold) or
# as the variables' starting values (seed, initializer): runs that differ only in these share
# one trace. Every other field, including any added later, is part of the graphs' key.
VALUE_FIELDS = ("learning_rate", "seed", "epochs", "train_size", "initializer", "init_std", "init_gain",
                "recurrent_initializer", "recurrent_std")
PIXELS = tf.TensorSpec([None, 28, 28], tf.float32)
LABELS = INDICES = tf.TensorSpec([None], tf.int32)
SCALAR = tf.TensorSpec([], tf.int32)
# Lanczos steps in the traced sharpness, one Hessian-vector product each: 8 (on default MLPs within
# 0.4 % of 200 power iterations, -7 % on a 10 x 256 sigmoid MLP whose top eigenvalues cluster).
# The init view and training take the same number, so a run's λ at step 0 is the number the view
# measured for the same starting point, reused rather than measured twice.
SHARPNESS_STEPS = 8


class UnreachedWeights(RuntimeError):
    """A traced graph in which the loss does not depend on some weight: a bug, never a user's error."""


@dataclass(frozen=True)
class StepRecord:
    """One training step's row, its columns named once: the compiled step writes it (pack), and
    train.py and the tests read it by these names.

    loss | correct count | global norm before / after clipping | each kernel's gradient norm
    (before clipping) | each kernel's update/weight ratio | recurrent: |dL/dh_t| per time step
    """

    n_kernels: int
    time_steps: int = 0
    LOSS: ClassVar[int] = 0
    CORRECT: ClassVar[int] = 1
    NORM_PRE: ClassVar[int] = 2
    NORM_POST: ClassVar[int] = 3
    FIXED: ClassVar[int] = 4  # the columns before the per-kernel ones

    @property
    def width(self) -> int:
        return self.FIXED + 2 * self.n_kernels + self.time_steps

    @property
    def grad_norms(self) -> slice:
        return slice(self.FIXED, self.FIXED + self.n_kernels)

    @property
    def update_ratios(self) -> slice:
        return slice(self.FIXED + self.n_kernels, self.FIXED + 2 * self.n_kernels)

    @property
    def time_grads(self) -> slice:
        return slice(self.FIXED + 2 * self.n_kernels, self.width)

    @staticmethod
    def pack(loss, correct, norm_pre, norm_post, grad_norms, update_ratios, time_grads=()) -> tf.Tensor:
        """The row, in graph: scalars and per-kernel vectors in the order above."""
        return tf.concat([tf.stack([loss, correct, norm_pre, norm_post]), grad_norms, update_ratios, *time_grads], 0)


class RunState(NamedTuple):
    """One run's numbers, passed to the shared graphs on every call (never captured by them)."""

    trainable: list  # tf.Variables, in the model's trainable_variables order
    non_trainable: list  # batch norm's moving statistics
    slots: list  # the optimizer's per-variable state: a list of tf.Variables per slot
    iterations: tf.Variable
    hyper: tf.Tensor  # [learning rate, clip threshold (1 when no clipping)]


def hyperparameters(config: RunConfig) -> tf.Tensor:
    """RunState.hyper for `config`."""
    return tf.constant([config.learning_rate, config.clipping[1] if config.clipping else 1.0], tf.float32)


def clip_gradients(grads: list[tf.Tensor], squares: tf.Tensor, config: RunConfig, threshold: tf.Tensor,
                   ok: tf.Tensor) -> tuple[list, tf.Tensor]:
    """Keras' clipping rule (at most one of the three is set, at `threshold`), and the global
    norm after it.

    `squares` holds each gradient's sum of squares, already computed for the recorded norms, so
    the norm after clipping needs no further pass over the gradients except for clipvalue. When
    `ok` is false every gradient comes back as exact zeros (NaN and Inf included), so that the
    optimizer, given a zero learning rate too, leaves the weights as they were.
    """
    norms = tf.sqrt(squares)
    pre = tf.sqrt(tf.reduce_sum(squares))
    post = pre
    scales = tf.ones_like(squares)
    c = threshold
    if config.clipnorm is not None:  # == tf.clip_by_norm per tensor: g * c / max(|g|, c)
        scales = c / tf.maximum(norms, c)
        post = tf.sqrt(tf.reduce_sum(tf.square(tf.minimum(norms, c))))
    elif config.global_clipnorm is not None:  # == tf.clip_by_global_norm
        scales = tf.fill(tf.shape(squares), c / tf.maximum(pre, c))
        post = tf.minimum(pre, c)
    scales = tf.where(ok, scales, tf.zeros_like(scales))
    # multiply_no_nan: 0 * NaN is 0 here, so a skipped step's gradients are clean zeros.
    clipped = [tf.math.multiply_no_nan(g, scale) for g, scale in zip(grads, tf.unstack(scales))]
    if config.clipvalue is not None:
        clipped = [tf.clip_by_value(g, -c, c) for g in clipped]
        post = tf.sqrt(tf.reduce_sum(sums_of_squares(clipped)))
    return clipped, post


def sums_of_squares(tensors: list[tf.Tensor]) -> tf.Tensor:
    """[n] sum of squares of each tensor. L2Loss (sum / 2) is one graph node where
    reduce_sum(square) is three, and graph size is what tracing and graph optimisation scale with."""
    return 2.0 * tf.stack([tf.nn.l2_loss(t) for t in tensors])


class StepGraphs:
    """The training chunk and the evaluation, traced once per graph shape and called by every run
    of that shape with its own variables, data and hyperparameters (a RunState).

    One chunk call runs steps [s0, s1) of an epoch's permutation entirely in the graph and returns a
    [n, StepRecord.width] float32 matrix, one StepRecord row per step. A non-finite loss or gradient stops the chunk at
    that step without applying its update; its row (NaN included) is the last one returned.

    The graphs are traced from a template model (the first run's) inside keras.StatelessScope, so
    its layers compute with the values read from the variables passed in; the template's own
    variables are never read (tests/test_steps.py checks). Once both graphs are traced the template
    is let go: the cache holds graphs, not a model.
    """

    def __init__(self, model: keras.Model, config: RunConfig):
        self.model, self.config = model, config
        self.trainable, self.non_trainable = model.trainable_variables, model.non_trainable_variables
        position = {v.path: i for i, v in enumerate(self.trainable)}
        self.kernel_index = [position[v.path] for _, v in tracked_kernels(model)]
        self.time_steps = config.time_steps
        self.tower_sizes = tower_sizes(config)
        if len(self.tower_sizes) > 1 and self.non_trainable:
            raise ValueError("a batch split across towers would give batch norm per-slice statistics")
        # autograph=False: the loop is written as a tf.while_loop already, and skipping
        # autograph's source conversion of the whole Keras call tree saves tracing time.
        # Split, every slice calls one tower function, traced once. Unsplit, the tower is traced
        # inline: as a nested function it made the CNN's step loop slower to build (0.65 s -> 0.9 s).
        self.split_tower = None if len(self.tower_sizes) == 1 else tf.function(
            lambda xb, yb, weights: self._tower(xb, yb, weights, [])[:3], autograph=False,
            input_signature=[PIXELS, LABELS, [tf.TensorSpec(v.shape, v.dtype) for v in self.trainable]])
        self._chunk = tf.function(self._chunk_graph, autograph=False)
        # One forward function serves both evaluation and the snapshots: the snapshot images are
        # the first validation images, so they are not pushed through the model (or traced) twice.
        acts = activation_layers(model)
        self.act_names = [layer.name for layer in acts]
        self.forward_model = submodel(model, [model.output] + [layer.output for layer in acts])
        self._evaluate = tf.function(self._evaluate_graph, autograph=False)
        self._chunk_concrete = self._evaluate_concrete = None
        # One lock per graph, so that a first run's snapshot thread can evaluate while the chunk traces.
        self._chunk_lock, self._evaluate_lock = threading.Lock(), threading.Lock()

    # --- called per run ----------------------------------------------------------------------

    def chunk(self, perm, s0, s1, x, y, state: RunState) -> tf.Tensor:
        return self.chunk_function(state)(perm, s0, s1, x, y, state)

    def evaluate_batch(self, x, y, keep, state: RunState):
        return self.evaluate_function(state)(x, y, keep, state.trainable, state.non_trainable)

    def chunk_function(self, state: RunState):
        """The chunk's concrete function, traced on first use for any number of examples: later
        runs with another train_size, and so other tensor shapes, reuse it. `state` gives the
        structure (every run's has the same); its variables are not kept."""
        with self._chunk_lock:
            if self._chunk_concrete is None:
                self._chunk_concrete = self._trace_chunk(state)
                self._release_template()
            return self._chunk_concrete

    def _trace_chunk(self, state: RunState):
        """The chunk's concrete function; traced a second time, from scratch, if the first trace came
        out with a weight the loss does not reach. Seen twice in ~1,000 soak trainings under
        concurrent page loads (a zero-initialised MLP both times) and never reproduced alone: a
        second trace has given a correct graph; a second failure is raised (docs/hosting.md)."""
        try:
            return self._chunk.get_concrete_function(INDICES, SCALAR, SCALAR, PIXELS, LABELS, state)
        except UnreachedWeights as error:
            LOG.warning("retracing the training step: %s", error)
            self._chunk = tf.function(self._chunk_graph, autograph=False)
            return self._chunk.get_concrete_function(INDICES, SCALAR, SCALAR, PIXELS, LABELS, state)

    def evaluate_function(self, state: RunState):
        with self._evaluate_lock:
            if self._evaluate_concrete is None:
                self._evaluate_concrete = self._evaluate.get_concrete_function(
                    PIXELS, LABELS, SCALAR, state.trainable, state.non_trainable)
                self._release_template()
            return self._evaluate_concrete

    def _release_template(self) -> None:
        """Once both graphs are traced, drop what only tracing needed: the template model and the
        Python functions that reach it, so that the first run's model can be freed."""
        if self._chunk_concrete is not None and self._evaluate_concrete is not None:
            self.model = self.forward_model = self.trainable = self.non_trainable = None
            self._chunk = self._evaluate = self.split_tower = None

    # --- traced --------------------------------------------------------------------------------

    def _call(self, model, inputs, weights, moving, training: bool):
        """`model` (the template or a submodel of it) on the given weights: (outputs, batch norm's
        moving statistics after the call)."""
        trainable, non_trainable = self.trainable, self.non_trainable
        mapping = list(zip(trainable, weights)) + list(zip(non_trainable, moving))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = model(inputs, training=training)
        return outputs, [scope.get_current_value(v) for v in non_trainable]

    def _tower(self, xb, yb, weights, moving):
        """Forward and backward pass on a slice of the batch: its share of the batch-mean loss,
        its correct count, and its share of every gradient (plus the state tap's, through time),
        with batch norm's updated moving statistics."""
        inputs = model_inputs(self.model, xb)
        with tf.GradientTape() as tape:
            tape.watch(weights)
            if self.time_steps:
                tape.watch(inputs[1])  # the zero state tap: its gradient is dloss/dh_t
            logits, moved = self._call(self.model, inputs, weights, moving, training=True)
            losses = keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)
            loss = tf.reduce_sum(losses) / self.config.batch_size  # this slice's share of the batch mean
        grads = tape.gradient(loss, list(weights) + ([inputs[1]] if self.time_steps else []))
        unreached = [v.path for v, g in zip(self.trainable, grads) if g is None]
        if unreached:  # traced only: a graph in which the loss does not depend on a weight is a bug
            raise UnreachedWeights(f"the traced loss does not reach {unreached} ({self.config.to_strings(True)})")
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), yb), tf.float32))
        return loss, correct, grads, moved

    def _gradients(self, xb, yb, weights, moving):
        """Batch-mean loss, correct count, gradients (the state tap's last, for recurrent
        models) and moving statistics, from one tower call per slice of the batch. Only MLPs
        without batch norm are ever split (see tower_sizes), so every gradient here is a sum over
        the slices and there are no moving statistics."""
        if len(self.tower_sizes) == 1:
            return self._tower(xb, yb, weights, moving)
        parts = [self.split_tower(x, y, weights) for x, y in zip(tf.split(xb, self.tower_sizes),
                                                                  tf.split(yb, self.tower_sizes))]
        losses, corrects, grads = zip(*parts)
        return tf.add_n(losses), tf.add_n(corrects), [tf.add_n(list(g)) for g in zip(*grads)], []

    def _step(self, xb, yb, state: RunState):
        weights = [v.value() for v in state.trainable]
        loss, correct, grads, moved = self._gradients(xb, yb, weights, [v.value() for v in state.non_trainable])
        grads = list(grads)
        through_time = []
        if self.time_steps:
            probe_grad = grads.pop()
            through_time = [tf.sqrt(tf.reduce_sum(tf.square(probe_grad), axis=[0, 2]))]  # [T]
        squares = sums_of_squares(grads)
        norms = tf.sqrt(tf.gather(squares, self.kernel_index))
        pre = tf.sqrt(tf.reduce_sum(squares))
        ok = tf.math.is_finite(loss) & tf.math.is_finite(pre) & tf.reduce_all(tf.math.is_finite(norms))
        # A non-finite step is recorded but never applied. Not with tf.cond: its two branch graphs
        # and their captures made up a third of the chunk's tracing time. Instead the update runs
        # with zeroed gradients and a zero learning rate, which leaves every weight unchanged (the
        # run stops at this step, so the optimizer's moment estimates no longer matter).
        clipped, post = clip_gradients(grads, squares, self.config, state.hyper[1], ok)
        update = apply_update(self.config.optimizer, state.trainable, state.slots, state.iterations, clipped,
                              lr=state.hyper[0], live=tf.cast(ok, tf.float32))
        statistics = [v.assign(value) for v, value in zip(state.non_trainable, moved)]
        before = [weights[i] for i in self.kernel_index]
        with tf.control_dependencies([update, *statistics]):
            moved_by = sums_of_squares([state.trainable[i].value() - b for i, b in zip(self.kernel_index, before)])
        ratios = tf.sqrt(moved_by / (sums_of_squares(before) + 1e-24))
        post, ratios = tf.where(ok, post, math.nan), tf.where(ok, ratios, math.nan)
        return ok, StepRecord.pack(loss, correct, pre, post, norms, ratios, through_time)

    def _chunk_graph(self, perm, s0, s1, x, y, state: RunState):
        batch = self.config.batch_size

        def running(i, ok, rows):
            return (i < s1) & ok

        def one_step(i, ok, rows):
            idx = perm[i * batch:(i + 1) * batch]
            ok, row = self._step(tf.gather(x, idx), tf.gather(y, idx), state)
            return i + 1, ok, rows.write(i - s0, row)

        width = StepRecord(len(self.kernel_index), self.time_steps).width
        rows = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[width])
        _, _, rows = tf.while_loop(running, one_step, (s0, tf.constant(True), rows))
        return rows.stack()

    def _evaluate_graph(self, x, y, keep, trainable, non_trainable):
        weights, moving = [v.value() for v in trainable], [v.value() for v in non_trainable]
        outputs, _ = self._call(self.forward_model, model_inputs(self.model, x), weights, moving, training=False)
        logits, *acts = outputs if isinstance(outputs, (list, tuple)) else [outputs]  # a one-output model: a tensor
        losses = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return tf.reduce_sum(losses), correct, [a[:keep] for a in acts]


class CompiledSteps:
    """One run's side of the shared, graph-compiled training chunk and evaluation (see
    gradviz.training.steps): this model's variables, its optimizer state, its data and hyperparameters,
    handed to the graphs on every call. Only the first run of a graph shape traces them."""

    def __init__(self, model: keras.Model, config: RunConfig, x: np.ndarray, y: np.ndarray):
        self.graphs, self.model, self.config = step_graphs(model, config), model, config
        self.act_names = self.graphs.act_names
        # A Keras variable's .value is the tf.Variable behind it: what the graphs take as arguments.
        self.state = RunState([v.value for v in model.trainable_variables],
                              [v.value for v in model.non_trainable_variables],
                              *optimizer_state(config, model.trainable_variables), hyperparameters(config))
        self.x, self.y = tf.constant(x), tf.constant(y)
        self.eval_batch = eval_batch(config)
        self._sharpness_graph = None  # the network's, once asked for: kept for the run even where the cache cannot

    def chunk(self, perm: tf.Tensor, s0: tf.Tensor, s1: tf.Tensor) -> tf.Tensor:
        """Steps [s0, s1) of the epoch order `perm`: one StepRecord row per step (see StepGraphs)."""
        return self.graphs.chunk(perm, s0, s1, self.x, self.y, self.state)

    def weights_now(self) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """The trainable and non-trainable weights as tensors: a snapshot that later updates leave
        as it is (TensorFlow copies a variable's buffer on write while a read of it is held)."""
        return [v.read_value() for v in self.state.trainable], [v.read_value() for v in self.state.non_trainable]

    def sharpness(self, x: np.ndarray, y: np.ndarray, seed: int, weights: tuple | None = None,
                  steps: int = SHARPNESS_STEPS) -> float:
        """λ_max, the top eigenvalue of the loss's Hessian on (x, y) at the weights now, or at
        `weights` (a weights_now() snapshot, e.g. the initial one), by `steps` Lanczos steps from a
        seeded start (gradviz.training.sharpness_graph, shared by every run of this network)."""
        from gradviz.training.sharpness_graph import sharpness_graph

        if self._sharpness_graph is None:
            self._sharpness_graph = sharpness_graph(self.model, self.config)
        trainable, non_trainable = weights or self.weights_now()
        return self._sharpness_graph(x, y, seed, steps, trainable, non_trainable)

    def trace_evaluation(self) -> None:
        self.graphs.evaluate_function(self.state)

    def evaluate(self, x: np.ndarray, y: np.ndarray, keep: int = 0) -> tuple[float, float, list[np.ndarray]]:
        """Mean loss and accuracy over (x, y), forward only, in inference mode, and each hidden
        activation layer's output for the first `keep` examples. Batches of `eval_batch` images:
        fewer for models whose activations per image are large (gradviz.serving.cost.eval_batch)."""
        total_loss = total_correct = 0.0
        kept: list[list[np.ndarray]] = []
        batch = self.eval_batch
        for start in range(0, len(y), batch):
            loss, correct, acts = self.graphs.evaluate_batch(
                tf.constant(x[start:start + batch]), tf.constant(y[start:start + batch]),
                tf.constant(max(0, min(batch, keep - start))), self.state)
            total_loss += float(loss)
            total_correct += float(correct)
            if start < keep or not kept:  # (with keep 0: every layer's, with no rows)
                kept.append([np.asarray(a) for a in acts])
        joined = [np.concatenate(parts) for parts in zip(*kept)] if kept else []
        return total_loss / len(y), total_correct / len(y), joined


def graph_key(config: RunConfig) -> tuple:
    """What decides the traced graphs: the config with its VALUE_FIELDS set to the defaults and a
    clip threshold to 1 (which kind of clipping stays in), and how a batch is split."""
    default = RunConfig()
    neutral = {f: getattr(default, f) for f in VALUE_FIELDS}
    clip = {config.clipping[0]: 1.0} if config.clipping else {}
    return config.replace(**neutral, **clip), tuple(tower_sizes(config))


# Traced graphs by shape, counted against the process's cache budget at what keeping one costs
# (gradviz.serving.cost.traced_graph_bytes: 13-230 MB measured, a 12-block CNN's the largest).
GRAPHS: BoundedLRU[StepGraphs] = BoundedLRU("traced graphs", lambda graphs: traced_graph_bytes(graphs.config))


def step_graphs(model: keras.Model, config: RunConfig) -> StepGraphs:
    """The shared graphs for `config`'s shape; `model` (built from `config`) becomes the template
    when there are none yet. Least recently used ones are dropped (gradviz.serving.lru)."""
    key = graph_key(config)
    graphs = GRAPHS.get(key)
    return graphs if graphs is not None else GRAPHS.put(key, StepGraphs(model, config))


def clear_step_graphs() -> None:
    """Forget every traced graph: the next run of each shape traces again (the bench's cold runs)."""
    from gradviz.training.sharpness_graph import SHARPNESS_GRAPHS

    GRAPHS.clear()
    SHARPNESS_GRAPHS.clear()


def tower_sizes(config: RunConfig, cores: int | None = None) -> list[int]:
    """How to slice a training batch across cores (see StepGraphs._gradients): in two, or not.

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
