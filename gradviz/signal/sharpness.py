"""The loss's sharpness at initialization, measured eagerly (`probe`), and the step it allows.

The rule: λ, the top eigenvalue of the Hessian of the batch-mean loss with respect to every
trainable weight, is found by power iteration with Hessian-vector products (double
backpropagation; the Hessian itself is never formed) on the fixed probe batch, for the model a run
starts from. Power iteration finds the eigenvalue largest in size; when that one is negative (batch
norm's loss surface can curve down more than up at the start), a second pass on H - λ₋I finds the
top one. The bound it gives a learning rate is gradviz.signal.step_bound's. Training, and the
At-initialization view where the network's graph can be kept, measure λ instead by Lanczos steps
in a traced graph (gradviz.training.sharpness_graph): the top Ritz value, from below.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from gradviz.config import RunConfig
from gradviz.serving.limits import check_memory
from gradviz.signal.step_bound import stable_lr
from gradviz.training.models import build_model, model_inputs
from gradviz.training.tf_setup import keras, tf

ITERATIONS, TOLERANCE = 30, 1e-3  # power iteration stops when λ changes by less than this (relative)


@dataclass(frozen=True)
class Sharpness:
    """λ, the top Hessian eigenvalue of the loss at initialization, on `batch` images."""

    lambda_max: float
    optimizer: str
    batch: int
    iterations: int
    seconds: float
    by_graph: bool = False  # measured through the network's traced graph (a run's step-0 computation)

    @property
    def stable_lr(self) -> float | None:
        return stable_lr(self.lambda_max, self.optimizer)

    @property
    def sgd_lr(self) -> float | None:
        return stable_lr(self.lambda_max, "sgd")

    def to_json(self) -> dict:
        """The `sharpness` object of `python -m gradviz probe --json` (docs/cli.md)."""
        clean = (lambda v: None if v is None or not math.isfinite(v) else v)  # noqa: E731
        return {"lambda_max": clean(self.lambda_max), "stable_lr": clean(self.stable_lr),
                "sgd_lr": clean(self.sgd_lr), "optimizer": self.optimizer, "batch": self.batch,
                "iterations": self.iterations, "seconds": round(self.seconds, 4)}


def hessian_vector_product(model: keras.Model, x, y, vector: list[tf.Tensor]) -> list[tf.Tensor]:
    """H v for the batch-mean cross-entropy of `model` on (x, y), by double backpropagation."""
    weights = model.trainable_variables
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            logits = model(model_inputs(model, x), training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        grads = inner.gradient(loss, weights)
        dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vector)])
    return outer.gradient(dot, weights)


def measure_sharpness(config: RunConfig, x: np.ndarray, y: np.ndarray, iterations: int = ITERATIONS,
                      tolerance: float = TOLERANCE) -> Sharpness:
    """λ of `config`'s untrained model on images `x` and labels `y`.

    Args:
        config: the model (and its optimizer, for `stable_lr`).
        x, y: the batch (the probe batch: 64 fixed validation images).
        iterations: power-iteration steps at most.
        tolerance: stop once λ changes by less than this, relatively.
    Returns:
        A Sharpness: λ, the optimizer's stable learning rate (None for Adam and RMSprop), SGD's.
    Raises:
        MemoryLimit: over GRADVIZ_MAX_MEMORY_MB, before anything is built.
    """
    check_memory(config, "probe")
    started = time.perf_counter()
    model = build_model(config)
    x, y = tf.constant(x, tf.float32), tf.constant(y, tf.int32)
    rng = np.random.default_rng(config.seed)
    start = [tf.constant(rng.standard_normal(w.shape).astype(np.float32)) for w in model.trainable_variables]
    value, done = _power_iteration(lambda v: hessian_vector_product(model, x, y, v), start, iterations, tolerance)
    if value < 0:  # a negative eigenvalue was the largest in size: find the top one of H - value I
        shifted, more = _power_iteration(
            lambda v: [p - value * u for p, u in zip(hessian_vector_product(model, x, y, v), v)], start,
            iterations, tolerance)
        value, done = shifted + value, done + more
    return Sharpness(value, config.optimizer, int(x.shape[0]), done, time.perf_counter() - started)


def _power_iteration(multiply, start: list[tf.Tensor], iterations: int, tolerance: float) -> tuple[float, int]:
    """The eigenvalue of largest size of the operator `multiply`, by Rayleigh quotients, and the steps taken."""
    vector, value, done = _normalised(start), 0.0, 0
    for done in range(1, iterations + 1):
        product = multiply(vector)
        previous, value = value, float(tf.add_n([tf.reduce_sum(p * v) for p, v in zip(product, vector)]))
        vector = _normalised(product)
        if done > 1 and abs(value - previous) <= tolerance * abs(value):
            break
    return value, done


def _normalised(vector: list[tf.Tensor]) -> list[tf.Tensor]:
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(v * v) for v in vector]))
    return [v / norm for v in vector]


QUICK_TOLERANCE, QUICK_ITERATIONS = 1e-2, 15  # the view's eager measurement: a line of text, not a fit
_VIEW_CACHE: OrderedDict = OrderedDict()  # (starting point, images' digest) -> Sharpness; numbers only
_VIEW_CACHE_SIZE = 256
_VIEW_LOCK = threading.Lock()


def _view_start(config: RunConfig) -> RunConfig:
    """The starting point alone: the model and its initial weights, with how it is trained set to
    the defaults (an SGD run's)."""
    default = RunConfig()
    return config.replace(optimizer="sgd", learning_rate=0.01, clipnorm=None, global_clipnorm=None, clipvalue=None,
                          epochs=default.epochs, train_size=default.train_size, batch_size=default.batch_size)


def sharpness_for_view(config: RunConfig, x: np.ndarray, y: np.ndarray) -> Sharpness:
    """λ for the At-initialization view, cached per starting point: λ depends on the model and its
    initial weights, not on the optimizer or the learning rate, so moving those reuses it. Measured
    through the network's traced graph (gradviz.training.sharpness_graph), traced here if no run or
    earlier view traced it: 0.4-1 s once per network, about what one eager power iteration costs,
    and after it every starting point of that network, and its SGD runs' λ, cost a graph call.
    Where the graph could not be kept (graph_kept), eagerly."""
    start, key = _view_start(config), _view_key(config, x, y)
    with _VIEW_LOCK:
        found = _VIEW_CACHE.get(key)
        if found is not None:
            _VIEW_CACHE.move_to_end(key)
    if found is None:
        found = _graph_sharpness(start, x, y) if graph_kept(start) else \
            measure_sharpness(start, x, y, QUICK_ITERATIONS, QUICK_TOLERANCE)
        with _VIEW_LOCK:
            _VIEW_CACHE[key] = found
            while len(_VIEW_CACHE) > _VIEW_CACHE_SIZE:
                _VIEW_CACHE.popitem(last=False)
    return Sharpness(found.lambda_max, config.optimizer, found.batch, found.iterations, found.seconds, found.by_graph)


def graph_kept(config: RunConfig) -> bool:
    """The view measures through the network's graph where the graph can be kept; a larger one
    (past ~1.2 M parameters with the default cache) would be traced anew for every starting point,
    so it is measured eagerly there, as `probe` does."""
    from gradviz.training.sharpness_graph import kept

    return kept(config)


def view_trace_mb(config: RunConfig) -> float:
    """Memory the view's measurement adds to the probe's own where it traces the network's graph."""
    from gradviz.training.sharpness_graph import sharpness_graph_bytes, sharpness_traced

    return 0.0 if sharpness_traced(config) or not graph_kept(config) else sharpness_graph_bytes(config) / 2**20


def _view_key(config: RunConfig, x: np.ndarray, y: np.ndarray) -> tuple:
    digest = hashlib.sha1(np.ascontiguousarray(x))
    digest.update(np.ascontiguousarray(y).astype(np.int64))
    return _view_start(config).cache_key(), digest.hexdigest()


def view_lambda(config: RunConfig, x: np.ndarray, y: np.ndarray) -> float | None:
    """λ the view already measured through the graph for `config`'s starting point on (x, y), or
    None: the same graph, weights, seed and Lanczos steps a run measures at step 0, so the run
    takes this number (docs/diagnosis.md)."""
    with _VIEW_LOCK:
        found = _VIEW_CACHE.get(_view_key(config, x, y))
    return found.lambda_max if found is not None and found.by_graph else None


def forget_view_sharpness() -> None:
    """Empty the view's cache of measured λ (the bench's fresh starting points)."""
    with _VIEW_LOCK:
        _VIEW_CACHE.clear()


def warm_view_sharpness(x: np.ndarray, y: np.ndarray) -> None:
    """Trace the default MLP's sharpness graph, so the default At-initialization view's λ line
    costs a graph call (the server's warm-up does this once, after TensorFlow is loaded)."""
    _graph_sharpness(_view_start(RunConfig()), x, y)


def _graph_sharpness(start: RunConfig, x: np.ndarray, y: np.ndarray) -> Sharpness:
    """λ of `start`'s model by the traced graph's Lanczos steps (tracing it if it is not yet)."""
    from gradviz.training.sharpness_graph import sharpness_graph
    from gradviz.training.steps import SHARPNESS_STEPS

    check_memory(start, "probe")
    started = time.perf_counter()
    model = build_model(start)
    weights = [[tf.convert_to_tensor(v) for v in kind] for kind in (model.trainable_variables,
                                                                    model.non_trainable_variables)]
    value = sharpness_graph(model, start)(x, y, start.seed, SHARPNESS_STEPS, *weights)
    return Sharpness(value, start.optimizer, len(y), SHARPNESS_STEPS, time.perf_counter() - started, by_graph=True)
