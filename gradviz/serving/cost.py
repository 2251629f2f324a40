"""What a config costs before anything is built: its parameter count and an estimate of the peak
memory (RSS above a process that has TensorFlow loaded) of training it or probing it. Pure
arithmetic: no TensorFlow, no Keras.

The rule: peak = a fixed start-up cost + the model's numbers (weights, gradients, optimizer
slots, the copies of the kernels the step and the snapshots take) + the largest of what one
training step keeps for backprop (every layer's activations at the batch size) and what an
evaluation keeps (the activation layers' outputs at EVAL_IMAGES) + the run's images (held as
numpy and as a tensor) + the bounded step record. Each term is an element count times 4 bytes
(float32) times a factor measured on this codebase (tests/test_cost.py checks the estimate
against the measured peak of real trainings and probes, subprocess by subprocess, from the
smallest config to the largest one allowed). Work that runs side by side adds up; work that runs
one after another costs its largest part (`peak_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradviz.architecture import CLASSES, INPUT_PIXELS, downsample_blocks, hidden_name
from gradviz.config import RECURRENT, RunConfig
from gradviz.data import PROBE_IMAGES, VAL_SIZE
from gradviz.training.steplog import DEFAULT_CAPACITY as STEP_LOG_ROWS

MB = 2**20
FLOAT = 4  # bytes: every tensor here is float32
EVAL_IMAGES = 1000  # images per evaluation call, at most (see eval_batch)
EVAL_MIN_IMAGES = 50
EVAL_BUDGET_MB = 32
SNAPSHOT_IMAGES = 512  # validation images whose activations each snapshot keeps (gradviz.training.train)
# Measured factors (see the module's docstring and tests/test_cost.py).
TRAIN_FIXED_MB = {"mlp": 30, "cnn": 90, "recurrent": 30}  # a first training: tracing, thread pools, oneDNN's
# convolution primitives (a 3-block CNN's traced graphs alone kept 49 MB) ...
PER_KERNEL_MB = {"mlp": 1.0, "cnn": 3.0, "recurrent": 0.0}  # ... and per kernel layer (a 50-block CNN: +310 MB)
PROBE_FIXED_MB = 12
# Copies of the trainable numbers alive at a training's peak, besides the optimizer's slots: the
# weights, their gradients, the step's "before" read of each kernel (for the update/weight ratio)
# and the snapshot's numpy copy.
MODEL_COPIES = 4.0
SLOTS = {"sgd": 0, "momentum": 1, "rmsprop": 2, "adam": 2}  # per-variable optimizer state
ACTIVATION_FACTOR = {"mlp": 1.0, "cnn": 1.0, "recurrent": 1.0}
EVAL_FACTOR = 1.5
DATA_COPIES = 2.0  # the images as numpy float32 and as a TensorFlow constant
TRACE_FROM_STEPS = 100  # recurrent probes this long are traced, not run eagerly (gradviz.signal.probe)
TRACING_MB = 25  # what tracing one of them costs
EAGER_RECURRENT_FACTOR = 4.0  # run eagerly, a recurrent cell keeps every op's output of every step for the tape
EAGER_NORM_FACTOR = 1.6  # and batch norm in training mode keeps its statistics' intermediates
PROBE_MODEL_COPIES = 3.0  # probe: weights, gradients, the initializer's draw
FAST_PROBE_COPIES = 2.0  # plain-MLP probe: the kept unit draw and the scaled kernel


@dataclass(frozen=True)
class Layer:
    """One kernel layer: its parameters and the floats per example that its forward pass keeps
    for backprop (`saved`) and that come out of its activation layer (`shown`, evaluated)."""

    name: str
    params: int
    saved: int
    shown: int = 0


def _mlp(config: RunConfig) -> list[Layer]:
    width, norm = config.width, config.batch_norm
    per_unit = 2 + (2 if norm else 0)  # pre-activation and activation; batch norm's x-hat and output
    layers = []
    for i in range(1, config.depth + 1):
        fan_in = INPUT_PIXELS if i == 1 else width
        params = fan_in * width + (2 * width if norm else width)
        layers.append(Layer(hidden_name(i), params, per_unit * width, width))
    if config.residual:  # each block's sum is one more tensor of the layer's width
        layers = [Layer(layer.name, layer.params, layer.saved + width, layer.shown) for layer in layers]
    return layers


def _cnn(config: RunConfig) -> list[Layer]:
    """Stem (stride 2: 14x14), then `depth` blocks; the resolution halves and the filters double
    at the downsampling blocks (gradviz.architecture.downsample_blocks)."""
    norm, residual = config.batch_norm, config.residual
    per_map = 3 + (1 if norm else 0)  # measured: a conv's output, its activation and backprop's buffers

    def conv(name, size, c_in, c_out, side):
        params = size * size * c_in * c_out + (2 * c_out if norm else c_out)
        return Layer(name, params, per_map * side * side * c_out, side * side * c_out)

    side, filters = 14, config.width
    layers = [conv("stem", 3, 1, filters, side)]
    down = downsample_blocks(config.depth)
    for k in range(1, config.depth + 1):
        c_in = filters
        if k in down:
            filters, side = filters * 2, math.ceil(side / 2)
        layers += [conv(f"block_{k:02d}_conv1", 3, c_in, filters, side),
                   conv(f"block_{k:02d}_conv2", 3, filters, filters, side)]
        if residual and k in down:
            layers.append(conv(f"block_{k:02d}_proj", 1, c_in, filters, side))
    return layers


GATES = {"rnn": 1, "lstm": 4, "gru": 3}
STEP_TENSORS = {"rnn": 4, "lstm": 14, "gru": 10}  # per unit and time step, kept for backprop through time


def _recurrent(config: RunConfig) -> list[Layer]:
    """One recurrent layer over time_steps chunks of step_pixels, with the state tap input."""
    units, gates, steps = config.width, GATES[config.architecture], config.time_steps
    bias = gates * units * (2 if config.architecture == "gru" else 1)  # Keras' GRU: reset_after, two biases
    params = config.step_pixels * gates * units + units * gates * units + bias
    saved = steps * (config.step_pixels + units * (2 + STEP_TENSORS[config.architecture]))
    return [Layer("recurrent", params, saved)]


def kernel_layers(config: RunConfig) -> list[Layer]:
    """The config's kernel layers, input to output, the output layer last (it reads the width, or
    the CNN's last filters after global average pooling)."""
    body = {"mlp": _mlp, "cnn": _cnn}.get(config.architecture, _recurrent)(config)
    features = config.width
    if config.architecture == "cnn":
        features *= 2 ** len(downsample_blocks(config.depth))
    return body + [Layer("output", features * CLASSES + CLASSES, 2 * CLASSES)]


def parameter_count(config: RunConfig) -> int:
    """Trainable parameters of gradviz's model for `config` (what Keras' count_params() says)."""
    return sum(layer.params for layer in kernel_layers(config))


def eval_floats_per_image(config: RunConfig, layers: list[Layer] | None = None) -> int:
    """Floats one image takes in an evaluation call: every activation layer's output (kept as the
    graph's outputs) and the largest layer's tensors; for a recurrent model its input sequence,
    the zero state tap and the state at every step."""
    layers = kernel_layers(config) if layers is None else layers
    if config.architecture in RECURRENT:
        return config.time_steps * (config.step_pixels + 3 * config.width)
    return INPUT_PIXELS + sum(layer.shown for layer in layers) + max(layer.saved for layer in layers)


def eval_batch(config: RunConfig) -> int:
    """Images per evaluation call: EVAL_IMAGES, or fewer where they would take more than EVAL_BUDGET_MB
    (a wide CNN's 1,000 images took ~700 MB), never fewer than EVAL_MIN_IMAGES."""
    fitting = EVAL_BUDGET_MB * MB // (FLOAT * eval_floats_per_image(config))
    return int(min(EVAL_IMAGES, max(EVAL_MIN_IMAGES, fitting)))


@dataclass(frozen=True)
class Estimate:
    """A peak-memory estimate in MB, with its named parts (what the page and the docs show)."""

    what: str  # "training", "probe", or what several together are
    parts: dict

    @property
    def mb(self) -> float:
        return sum(self.parts.values())

    def describe(self) -> str:
        biggest = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{name} {value:,.0f} MB" for name, value in biggest)


def _mb(floats: float) -> float:
    return floats * FLOAT / MB


def training(config: RunConfig, images: int | None = None) -> Estimate:
    """Peak memory of training `config` on `images` training images (default: its train_size).

    Args:
        config: the run.
        images: training images the data holds, if fewer than config.train_size.
    Returns:
        The estimate, its parts named: start-up, weights (with gradients, copies and optimizer
        slots), the larger of one step's saved activations and one evaluation call's, the
        activations kept for the snapshot's histograms, the images and the step record.
    """
    layers = kernel_layers(config)
    params = sum(layer.params for layer in layers)
    images = config.train_size if images is None else min(images, config.train_size)
    family = config.architecture if config.architecture in ACTIVATION_FACTOR else "recurrent"
    factor = ACTIVATION_FACTOR[family]
    step = _mb(config.batch_size * (INPUT_PIXELS + sum(layer.saved for layer in layers)) * factor)
    evaluation = _mb(eval_batch(config) * eval_floats_per_image(config, layers) * EVAL_FACTOR)
    row = 4 + 2 * len(layers) + config.time_steps
    return Estimate("training", {
        "start-up": TRAIN_FIXED_MB[family] + PER_KERNEL_MB[family] * len(layers),
        "weights, gradients and optimizer": _mb(params * (MODEL_COPIES + SLOTS[config.optimizer])),
        "activations": max(step, evaluation),
        "kept activations": _mb(SNAPSHOT_IMAGES * sum(layer.shown for layer in layers)),
        "images": _mb((images + VAL_SIZE) * INPUT_PIXELS * DATA_COPIES),
        "step record": STEP_LOG_ROWS * row * 8 / MB,
    })


def probe(config: RunConfig) -> Estimate:
    """Peak memory of the init-time probe of `config` (PROBE_IMAGES images, no optimizer).

    Args:
        config: the untrained model.
    Returns:
        The estimate, its parts named: start-up, weights and gradients, activations.
    """
    layers = kernel_layers(config)
    params = sum(layer.params for layer in layers)
    plain = config.architecture == "mlp" and not config.batch_norm and not config.residual
    factor = ACTIVATION_FACTOR[config.architecture if config.architecture in ACTIVATION_FACTOR else "recurrent"]
    traced = 0 < config.time_steps and config.time_steps >= TRACE_FROM_STEPS
    if config.time_steps and not traced:
        factor = EAGER_RECURRENT_FACTOR
    elif config.architecture == "cnn" and config.batch_norm:
        factor = EAGER_NORM_FACTOR
    return Estimate("probe", {
        "start-up": PROBE_FIXED_MB + (TRACING_MB if traced else 0),
        "weights and gradients": _mb(params * (FAST_PROBE_COPIES if plain else PROBE_MODEL_COPIES)),
        "activations": _mb(PROBE_IMAGES * (INPUT_PIXELS + sum(layer.saved for layer in layers)) * factor),
    })


def traced_graph_bytes(config: RunConfig) -> int:
    """What keeping one shape's traced training and evaluation graphs costs a process: measured
    13-70 MB for MLPs, 49 MB for a 3-block CNN and 231 MB for a 12-block one with batch norm (RSS
    kept after the run, half of it given back when the graph is dropped). A network's sharpness graph
    is counted on its own (gradviz.training.sharpness_graph.sharpness_graph_bytes)."""
    kernels = len(kernel_layers(config))
    per_kernel = 6.0 * (1.25 if config.batch_norm else 1.0) if config.architecture == "cnn" else 2.0
    return int((8 + per_kernel * kernels) * MB)


def peak_of(estimates: list[Estimate], at_once: bool = False) -> Estimate:
    """Several pieces of work: side by side they add up; one after another the largest decides."""
    if not estimates:
        return Estimate("nothing", {})
    if at_once:
        total = {}
        for e in estimates:
            for name, value in e.parts.items():
                total[name] = total.get(name, 0.0) + value
        return Estimate(f"{len(estimates)} at once", total)
    return max(estimates, key=lambda e: e.mb)

