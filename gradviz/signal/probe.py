"""Init-time probe: the untrained model's forward signal (RMS of each kernel layer's
pre-activations and activations) and backward signal (each kernel's gradient norm) on a fixed
probe batch, with the mean-field prediction (gradviz.signal.theory) beside it. No training, no Streamlit.

Plain MLPs, where the theory applies and sweeps need many points, are measured on a fast path:
the same seeded Keras initializers draw the same kernels as gradviz's model (their unit draws kept
by gradviz.training.init_draws, so a change of σ or activation does not draw again), the forward pass is a
few eager matmuls, and each kernel's gradient norm comes from the pre-activation gradients through
||H^T D||_F^2 = sum((H H^T) * (D D^T)), which never forms a (fan_in x fan_out) gradient. Every other
model is built with Keras and measured with a GradientTape. Both run eagerly: tracing a graph for
a shape seen once cost more than the eager pass it would speed up (docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from gradviz.architecture import ACT_SUFFIX, CLASSES, INPUT_PIXELS, mlp_kernel_names
from gradviz.config import RunConfig
from gradviz.result import finite_or_none
from gradviz.serving.cost import TRACE_FROM_STEPS
from gradviz.serving.limits import check_memory
from gradviz.serving.lru import BoundedLRU
from gradviz.signal import theory
from gradviz.training.init_draws import initial_kernel
from gradviz.training.models import build_model, model_inputs, submodel, tracked_kernels
from gradviz.training.tf_setup import keras, tf

# Fields an initialization-time measurement does not read: how the model would be trained.
TRAINING_FIELDS = ("optimizer", "learning_rate", "clipnorm", "global_clipnorm", "clipvalue", "batch_size", "epochs",
                   "train_size")


@dataclass(frozen=True)
class LayerSignals:
    """What one measurement found, per kernel layer (input -> output): every producer (the plain-MLP
    fast path, the Keras path, gradviz.signal.family) builds it by these names."""

    layers: list[str]
    preact_rms: list[float | None]  # None where a layer has no pre-activation of its own (recurrent)
    forward_rms: list[float]
    grad_norm: list[float]  # ||dL/dW|| of the batch-mean loss: what a training step sees
    grad_norm_per_example: list[float] | None = None  # RMS over examples of each one's own gradient norm
    time_grad: list[float] = field(default_factory=list)  # recurrent: |dL/dh_t| per time step
    delta_rms: list[float] | None = None  # plain MLPs: RMS over examples of |dL/dz| per layer (z: pre-activation)


@dataclass(frozen=True)
class SignalProbe(LayerSignals):
    """One untrained model's signals per kernel layer (LayerSignals), where they were measured,
    and the theory's view of the same model."""

    config: RunConfig = field(default_factory=RunConfig)
    input_second_moment: float = 0.0
    seconds: float = 0.0
    data: dict = field(default_factory=dict)

    @property
    def ratio_first_last(self) -> float | None:
        last = self.grad_norm[-1]
        return self.grad_norm[0] / last if last > 0 and math.isfinite(last) else None

    @property
    def ratio_first_last_per_example(self) -> float | None:
        values = self.grad_norm_per_example
        return values[0] / values[-1] if values and values[-1] > 0 else None

    @property
    def delta_ratio_first_last(self) -> float | None:
        """The gradient reaching the first hidden layer's pre-activations over the last one's:
        backpropagation's product of per-layer factors (what chi predicts), per example."""
        if not self.delta_rms:
            return None
        last = self.delta_rms[self.config.depth - 1]
        return self.delta_rms[0] / last if last > 0 else None

    @property
    def prediction(self) -> theory.Prediction | None:
        return theory.predict(self.config, self.input_second_moment)

    @property
    def law(self) -> str:
        return theory.law(self.config, self.prediction)

    def to_json(self) -> dict:
        """The `python -m gradviz probe --json` object (the contract: docs/cli.md)."""
        p = self.prediction
        predicted = None if p is None else {
            "preact_var": [finite_or_none(v) for v in p.preact_var],
            "grad_factor_per_layer": finite_or_none(p.grad_factor_per_layer),
            "ratio_first_last": finite_or_none(p.ratio_first_last),
            "grad_norm_relative": [finite_or_none(v) for v in p.grad_norm_relative],
            "chi": [finite_or_none(v) for v in p.chi],
            "delta_ratio_first_last": finite_or_none(p.delta_ratio_first_last),
        }
        out = {"config": self.config.to_dict(), "layers": list(self.layers),
               "preact_rms": [finite_or_none(v) for v in self.preact_rms],
               "forward_rms": [finite_or_none(v) for v in self.forward_rms],
               "grad_norm": [finite_or_none(v) for v in self.grad_norm],
               "ratio_first_last": finite_or_none(self.ratio_first_last),
               "grad_norm_per_example": None if self.grad_norm_per_example is None
               else [finite_or_none(v) for v in self.grad_norm_per_example],
               "ratio_first_last_per_example": finite_or_none(self.ratio_first_last_per_example),
               "delta_ratio_first_last": finite_or_none(self.delta_ratio_first_last),
               "predicted": predicted, "law": self.law, "not_covered": theory.not_covered(self.config),
               "input_second_moment": self.input_second_moment, "data": self.data, "seconds": round(self.seconds, 4)}
        if self.time_grad:
            out["time_grad"] = [finite_or_none(v) for v in self.time_grad]
        return out



def probe_key(config: RunConfig) -> str:
    """What decides an init-time measurement: the config without its training fields."""
    return config.replace(**{f: getattr(RunConfig(), f) for f in TRAINING_FIELDS}).cache_key()


def fast_path(config: RunConfig) -> bool:
    """Plain MLPs (no batch norm, no skips) are measured without building a Keras model."""
    return config.architecture == "mlp" and not config.batch_norm and not config.residual


def measure(config: RunConfig, x: np.ndarray, y: np.ndarray, data: dict | None = None) -> SignalProbe:
    """Measure the untrained `config` on images `x` (n, 28, 28) in [0, 1] and labels `y`; raises
    MemoryLimit, before anything is built, if the cost model puts it over GRADVIZ_MAX_MEMORY_MB."""
    check_memory(config, "probe")
    started = time.perf_counter()
    x, y = tf.constant(x, tf.float32), tf.constant(y, tf.int32)
    signals = (_mlp_signals if fast_path(config) else _keras_signals)(config, x, y)
    return probe_from(config, x, signals, time.perf_counter() - started, data)


def probe_from(config: RunConfig, x: tf.Tensor, signals: LayerSignals, seconds: float,
               data: dict | None) -> SignalProbe:
    """The probe of `config` from its measured signals on the images `x`."""
    return SignalProbe(**vars(signals), config=config, input_second_moment=float(tf.reduce_mean(tf.square(x))),
                       seconds=seconds, data=dict(data or {}, probe_size=int(x.shape[0])))


def _rms(t: tf.Tensor) -> float:
    return float(tf.sqrt(tf.reduce_mean(tf.square(t))))


def _loss(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """The training loss: mean sparse categorical cross-entropy over the batch."""
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))


def _mlp_signals(config: RunConfig, x: tf.Tensor, y: tf.Tensor):
    """A plain MLP by hand, with the kernels gradviz's model would start from (same seeds, same
    order: hidden_01 ... hidden_NN, then output; biases start at 0 and are left out)."""
    depth = config.depth
    kernels = [initial_kernel(config, i, shape) for i, shape in enumerate(mlp_shapes(config), 1)]
    act = keras.activations.get(config.activation)
    h = tf.reshape(x, (x.shape[0], INPUT_PIXELS))
    inputs, preacts = [], []
    with tf.GradientTape() as tape:
        tape.watch(h)  # records everything downstream, so the gradient of each pre-activation is there
        for kernel in kernels[:-1]:
            inputs.append(h)
            preacts.append(tf.matmul(h, kernel))
            h = act(preacts[-1])
        inputs.append(h)
        preacts.append(tf.matmul(h, kernels[-1]))
        loss = _loss(preacts[-1], y)
    deltas = tape.gradient(loss, preacts)
    batch = float(x.shape[0])
    stats = tf.concat([kernel_stats(a, d[None], batch) for a, d in zip(inputs, deltas)], 0).numpy()
    pre = [_rms(z) for z in preacts]
    post = [_rms(v) for v in inputs[1:]] + [pre[-1]]
    return LayerSignals(mlp_kernel_names(depth), pre, post, grad_norm=stats[:, 0].tolist(),
                        grad_norm_per_example=stats[:, 1].tolist(), delta_rms=stats[:, 2].tolist())


def mlp_shapes(config: RunConfig) -> list[tuple[int, int]]:
    """A plain MLP's kernel shapes, input -> output."""
    return ([(INPUT_PIXELS, config.width)] + [(config.width, config.width)] * (config.depth - 1)
            + [(config.width, CLASSES)])


def kernel_stats(a: tf.Tensor, deltas: tf.Tensor, batch: float | tf.Tensor) -> tf.Tensor:
    """[n, 3] for a kernel with input `a` [B, in] in each of n stacked networks whose batch-mean
    loss sends it deltas [n, B, out] (dL/dz): the batch gradient's norm ||a^T d||, through the Gram
    matrices sum((a a^T) * (d d^T)) so the (in x out) gradient is never formed; the RMS over
    examples of each one's own gradient norm (an outer product's: |a_i| |d_i| x B, undoing the
    mean); and the RMS of each one's |dL/dz| x B. Mean-field theory describes the last two."""
    gram = tf.matmul(a, a, transpose_b=True)
    norms = tf.sqrt(tf.maximum(tf.reduce_sum(tf.matmul(deltas, deltas, transpose_b=True) * gram, [1, 2]), 0.0))
    squares = tf.reduce_sum(deltas * deltas, 2)
    per_example = tf.sqrt(tf.reduce_mean(tf.reduce_sum(a * a, 1)[None] * squares, 1)) * batch
    delta_rms = tf.sqrt(tf.reduce_mean(squares, 1)) * batch
    return tf.stack([norms, per_example, delta_rms], 1)


def _keras_signals(config: RunConfig, x: tf.Tensor, y: tf.Tensor):
    """Any architecture through gradviz's own Keras model, in training mode (batch norm uses the
    batch's statistics, as the first training step does). Eager, except for recurrent models:
    their time loop ran 1.2 s eagerly for a GRU over 112 steps and 0.46 s traced, trace included,
    where a CNN took 0.2 s eagerly and 0.64 s traced (docs/performance.md)."""
    model = build_model(config)
    named = {layer.name: layer for layer in model.layers}
    kernels = tracked_kernels(model)
    probed = [_probed_outputs(name, named) for name, _ in kernels]
    forward = submodel(model, [model.output] + [t for pair in probed for t in pair if t is not None])
    watched = [k for _, k in kernels]

    def signals(x, y):
        inputs = model_inputs(model, x)
        with tf.GradientTape() as tape:
            if config.time_steps:
                tape.watch(inputs[1])  # the zero state tap: its gradient is dL/dh_t (see TappedCell)
            values = forward(inputs, training=True)
            loss = _loss(values[0], y)
        grads = tape.gradient(loss, watched + ([inputs[1]] if config.time_steps else []))
        norms = [tf.norm(g) for g in grads[:len(watched)]]
        through_time = _norm_per_step(grads[-1]) if config.time_steps else tf.zeros(0)
        return [tf.sqrt(tf.reduce_mean(tf.square(v))) for v in values[1:]], norms, through_time

    traced = config.time_steps >= TRACE_FROM_STEPS
    rms, norms, through_time = (tf.function(signals, autograph=False) if traced else signals)(x, y)
    found = iter(rms)
    pre, post = [], []
    for pre_t, _ in probed:
        pre.append(float(next(found)) if pre_t is not None else None)
        post.append(float(next(found)))
    return LayerSignals([n for n, _ in kernels], pre, post, grad_norm=[float(n) for n in norms],
                        time_grad=through_time.numpy().tolist())


def _norm_per_step(grad: tf.Tensor) -> tf.Tensor:
    """||dL/dh_t|| per time step of a [batch, steps, units] gradient, scaled by its largest entry
    first: far back in a long sequence the entries are ~1e-21, whose squares fall below float32's
    normal range and are flushed to 0 in a traced graph."""
    largest = tf.reduce_max(tf.abs(grad), axis=[0, 2])
    scale = tf.where(largest > 0, largest, tf.ones_like(largest))
    return largest * tf.sqrt(tf.reduce_sum(tf.square(grad / scale[None, :, None]), axis=[0, 2]))


def _probed_outputs(name: str, named: dict) -> tuple:
    """(pre-activation, activation) tensors of a kernel layer: what its activation reads (after
    batch norm, if any) and what comes out of it; recurrent rows have only the final state."""
    if name in ("input_kernel", "recurrent_kernel"):
        return None, named["recurrent"].output
    pre = named.get(f"{name}_bn", named[name]).output
    for after in (f"{name}_add", f"{name}{ACT_SUFFIX}"):  # a residual block's output is its sum
        if after in named:
            return pre, named[after].output
    return pre, pre


class ProbeCache(BoundedLRU[SignalProbe]):
    """Probes by probe_key (numbers only), counted against the process's cache budget."""

    def __init__(self, **budget):
        super().__init__("probes", _probe_bytes, **budget)

    def get_for(self, config: RunConfig) -> SignalProbe | None:
        return self.get(probe_key(config))

    def keep(self, probe: SignalProbe) -> None:
        self.put(probe_key(probe.config), probe)


def _probe_bytes(probe: SignalProbe) -> int:
    """A probe's lists of Python floats, ~32 bytes each, and its small dicts."""
    return 2048 + 32 * (6 * len(probe.layers) + len(probe.time_grad))


PROBES = ProbeCache()


def probe(config: RunConfig, data_dir: str | None = None) -> SignalProbe:
    """The untrained model of `config`, measured on the fixed probe batch beside the theory.

    Args:
        config: the model (training fields such as the optimizer do not change the measurement).
        data_dir: a folder with MNIST (default: GRADVIZ_DATA_DIR, then the Keras cache).
    Returns:
        A SignalProbe: per kernel layer the forward RMS and gradient norms, the mean-field
        prediction where it applies (`prediction`, `law`), and `to_json()` (docs/cli.md).
        Cached per config in this process.
    Raises:
        MemoryLimit: the cost model puts the probe over GRADVIZ_MAX_MEMORY_MB (nothing is built).
        DataUnavailable: no MNIST here (the message says where to put it).
    """
    from gradviz.data import PROBE_IMAGES, probe_batch

    cached = PROBES.get_for(config)
    if cached is not None and cached.config == config:
        return cached
    if cached is not None:  # same numbers, another training setup: relabel, do not re-measure
        return dataclasses.replace(cached, config=config)
    x, y, where = probe_batch(PROBE_IMAGES, data_dir)
    measured = measure(config, x, y, where)
    PROBES.keep(measured)
    return measured
