"""gradviz.probe_model(model, x, y): any Keras model at initialization, before a step is taken.

The rule: on the given batch, with the model in training mode, one forward pass records each
weighted layer's output RMS (Sequential and functional models), and one backward pass each
kernel's gradient norm for the batch-mean loss; the first PER_EXAMPLE examples are then taken
one at a time for each kernel's per-example gradient norm (a batch's averaged gradient can sit far
below one example's). Nothing is trained; batch norm's moving statistics, which training-mode
calls update, are put back. Mean-field theory's prediction is
added only where it applies: a plain stack of Dense layers of one width, one activation and one
initializer gradviz knows (gradviz.signal.theory); otherwise the probe says why not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gradviz.training.tf_setup import keras, tf
from gradviz.yourmodel import layers as model_layers

PER_EXAMPLE = 8  # examples whose gradients are taken one at a time
MAX_PROBE_ROWS = 512  # a larger batch is cut to its first rows


@dataclass
class ModelProbe:
    """A user's model at initialization: per-layer forward RMS, per-kernel gradient norms, findings' inputs."""

    model: str
    layers: list[str]  # kernels, input -> output (the user's names)
    grad_norm: list[float]  # the batch-mean loss's gradient norm per kernel
    per_example_rms: list[float]  # RMS over PER_EXAMPLE examples of one example's gradient norm per kernel
    kernel_std: list[float]
    kernel_spread: list[float]  # largest minus smallest weight (0: every weight equal)
    forward_layers: list[str] = field(default_factory=list)  # weighted layers whose outputs were read
    forward_rms: list[float] = field(default_factory=list)
    act_layers: list[str] = field(default_factory=list)
    act_stats: list[list[float]] = field(default_factory=list)  # mean, std, dead, saturated (gradviz.result.ACT_STATS)
    activations: dict = field(default_factory=dict)  # activation layer -> its activation's name
    loss: float = float("nan")
    theory: str = ""  # the mean-field prediction in words, or why it does not apply
    seconds: float = 0.0


def probe_model(model: keras.Model, x, y, loss=None, layers: list[str] | None = None) -> ModelProbe:
    """Measure `model` as it is now (call it before training).

    Args:
        model: any Keras model (Sequential, functional or subclassed), built or not.
        x, y: a batch of inputs and targets (at most MAX_PROBE_ROWS rows are used).
        loss: the loss (default: the one the model was compiled with).
        layers: activation layers to summarise (default: every hidden one with a nonlinearity).
    Returns:
        A ModelProbe; gradviz.diagnose_model(probe) names what it finds, gradviz.show(probe) draws it.
    Raises:
        ValueError: no loss given and the model is not compiled.
    """
    started = time.perf_counter()
    loss = loss or getattr(model, "loss", None)
    if loss is None:
        raise ValueError("probe_model needs a loss: pass loss=... or compile the model first")
    loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    x = tf.nest.map_structure(lambda a: np.asarray(a)[:MAX_PROBE_ROWS], x)
    y = np.asarray(y)[:MAX_PROBE_ROWS]
    moving = [np.array(v) for v in model.non_trainable_variables]  # batch norm's statistics: put back after
    batch_loss, grads = _gradients(model, loss_fn, x, y)
    kernels = model_layers.kernel_variables(model.trainable_variables)
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    per_example = _per_example_rms(model, loss_fn, x, y, [index[id(k)] for k in kernels])
    probe = ModelProbe(
        model=model.name, layers=[model_layers.kernel_name(k, model) for k in kernels],
        grad_norm=[float(np.linalg.norm(grads[index[id(k)]])) for k in kernels], per_example_rms=per_example,
        kernel_std=[float(np.std(np.asarray(k))) for k in kernels],
        kernel_spread=[float(np.ptp(np.asarray(k))) for k in kernels], loss=batch_loss)
    _forward(model, x, probe, layers)
    first = np.asarray(tf.nest.flatten(x)[0], dtype=np.float64)
    probe.theory = theory_note(model, float(np.mean(np.square(first))))
    for variable, value in zip(model.non_trainable_variables, moving):
        variable.assign(value)
    probe.seconds = time.perf_counter() - started
    return probe


def _gradients(model, loss_fn, x, y) -> tuple[float, list[np.ndarray]]:
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(loss_fn(y, model(x, training=True)))  # a loss function by name is per example
    grads = tape.gradient(value, model.trainable_variables)
    weights = model.trainable_variables
    return float(value), [np.zeros(v.shape) if g is None else np.asarray(g) for g, v in zip(grads, weights)]


def _per_example_rms(model, loss_fn, x, y, positions: list[int]) -> list[float]:
    squares = np.zeros(len(positions))
    count = min(PER_EXAMPLE, len(y))
    for i in range(count):
        one = tf.nest.map_structure(lambda a: a[i:i + 1], x)
        _, grads = _gradients(model, loss_fn, one, y[i:i + 1])
        squares += [float(np.sum(np.square(grads[p]))) for p in positions]
    return np.sqrt(squares / max(count, 1)).tolist()


def _forward(model, x, probe: ModelProbe, chosen: list[str] | None) -> None:
    """Each weighted layer's output RMS and the activation layers' statistics (graph models only)."""
    if not model_layers.is_graph_model(model):
        return
    from gradviz.training.snapshots import activation_stats

    weighted = [layer.name for layer in model.layers if layer.weights]
    acts = model_layers.activation_layers(model, chosen)
    names = weighted + [a.name for a in acts]
    outputs = model_layers.outputs_model(model, names)(model_layers.as_model_inputs(model, x), training=True)
    outputs = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    probe.forward_layers = weighted
    probe.forward_rms = [float(np.sqrt(np.mean(np.square(o, dtype=np.float64)))) for o in outputs[:len(weighted)]]
    probe.act_layers = [a.name for a in acts]
    probe.act_stats = [activation_stats(o, a.activation).tolist() for o, a in zip(outputs[len(weighted):], acts)]
    probe.activations = {a.name: a.activation for a in acts}


def theory_note(model: keras.Model, second_moment: float) -> str:
    """Mean-field theory's per-layer gradient factor where the model is a plain Dense stack of one
    width, activation and initializer that gradviz's theory covers (inputs of mean square
    `second_moment`); otherwise why it is not applied."""
    from gradviz.signal import theory

    config = _as_plain_mlp(model)
    if isinstance(config, str):
        return f"Mean-field theory is not applied here: {config}."
    prediction = theory.predict(config, second_moment)
    return (f"Mean-field theory (a plain stack of {config.depth} Dense layers of {config.width} {config.activation} "
            f"units, {config.initializer}): the gradient changes by a factor of about "
            f"{prediction.grad_factor_per_layer:.3g} per hidden layer going back, at infinite width (the first "
            "layer's fan-in is taken as 784 pixels); the measured norms are one batch at finite width.")


def _as_plain_mlp(model):
    """The RunConfig of an equivalent gradviz MLP, or the reason there is none."""
    from gradviz.config import RunConfig

    if not model_layers.is_graph_model(model):
        return "the model is subclassed, so its layers cannot be read as a stack"
    dense = [layer for layer in model.layers if layer.weights]
    hidden = dense[:-1]
    kinds = {type(layer).__name__ for layer in model.layers}
    if not hidden or not kinds <= {"InputLayer", "Flatten", "Dense"}:
        return ("it is not a plain stack of Dense layers (convolutions, recurrence, normalisation and skip "
                "connections change the law)")
    widths = {layer.units for layer in hidden}
    acts = {model_layers.activation_name(layer) or "linear" for layer in hidden}
    inits = {type(layer.kernel_initializer).__name__ for layer in hidden}
    if len(widths) > 1 or len(acts) > 1 or len(inits) > 1:
        return "its hidden layers differ in width, activation or initializer"
    names = {"GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal", "HeNormal": "he_normal",
             "HeUniform": "he_uniform", "LecunNormal": "lecun_normal", "Orthogonal": "orthogonal"}
    try:
        return RunConfig(depth=len(hidden), width=widths.pop(), activation=acts.pop(),
                         initializer=names[inits.pop()])
    except Exception:  # noqa: BLE001 - anything gradviz's theory does not cover
        return "its activation or initializer is not one gradviz's theory covers"
