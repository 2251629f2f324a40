"""What gradviz reads in any Keras model: its kernels by the user's names, its activation layers,
and a model that returns their outputs (Sequential and functional models only).

The rules: a *kernel* is a trainable variable with two or more dimensions (Dense and Conv kernels,
recurrent kernels, embeddings); biases and batch norm's scales are left out, as on gradviz's own
heatmap. A kernel is listed input to output in the model's own variable order, and named by its
path inside the model (`dense_7/kernel`). An *activation layer* is a layer whose `activation` is
not linear, the model's output layer excepted (its logits or probabilities are not hidden units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradviz.training.tf_setup import keras

MAX_ACTIVATION_LAYERS = 24  # the per-epoch activation statistics cover at most this many layers (spread over depth)


def kernel_variables(variables) -> list:
    """The kernels among a model's trainable variables (rank >= 2), in their order: input to output."""
    return [v for v in variables if len(v.shape) >= 2]


def kernel_name(variable, model: keras.Model | None = None) -> str:
    """The user's name for a kernel: its Keras path without the model's own name
    (`sequential/dense_7/kernel` -> `dense_7/kernel`), or its name."""
    path = str(getattr(variable, "path", None) or variable.name)
    prefix = f"{model.name}/" if model is not None else ""
    return path[len(prefix):] if prefix and path.startswith(prefix) and path != prefix else path


@dataclass(frozen=True)
class ActivationLayer:
    """A hidden layer whose outputs the snapshots summarise, and its activation's name."""

    name: str
    activation: str


def activation_name(layer) -> str | None:
    """`relu`, `sigmoid`, ... for a layer with a nonlinearity; None for linear or none."""
    function = getattr(layer, "activation", None)
    if function is None:
        return None
    name = getattr(function, "__name__", None) or type(function).__name__
    return None if name == "linear" else name.lower()


def activation_layers(model: keras.Model, chosen: list[str] | None = None) -> list[ActivationLayer]:
    """The hidden activation layers of a Sequential or functional model (none for a subclassed
    one: its layers have no symbolic outputs to read), at most MAX_ACTIVATION_LAYERS spread evenly
    over depth, or the layers named in `chosen`."""
    if not is_graph_model(model):
        return []
    found = [ActivationLayer(layer.name, activation_name(layer)) for layer in model.layers[:-1]
             if activation_name(layer) is not None]
    if chosen is not None:
        known = {layer.name for layer in model.layers}
        unknown = sorted(set(chosen) - known)
        if unknown:
            raise ValueError(f"no layer named {', '.join(unknown)} in {model.name}")
        return [a for a in found if a.name in set(chosen)] or [
            ActivationLayer(name, activation_name(model.get_layer(name)) or "linear") for name in chosen]
    if len(found) > MAX_ACTIVATION_LAYERS:
        keep = np.unique(np.linspace(0, len(found) - 1, MAX_ACTIVATION_LAYERS).round().astype(int))
        found = [found[i] for i in keep]
    return found


def is_graph_model(model: keras.Model) -> bool:
    """A Sequential or functional model: one whose layers' outputs can be read by name."""
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):  # a subclassed model, or a Sequential one never built
        return False


def outputs_model(model: keras.Model, names: list[str]) -> keras.Model:
    """A model sharing `model`'s weights that returns the named layers' outputs (graph models only)."""
    return keras.Model(model.inputs, [model.get_layer(name).output for name in names])


def as_model_inputs(model: keras.Model, x):
    """`x` in the structure a graph model's call expects: a one-input model takes a list of one."""
    return [x] if len(model.inputs) == 1 and not isinstance(x, (list, tuple, dict)) else x
