"""A configuration in words, for a slide's headline and a talk's buttons: "20 linear layers of 256,
random_normal σ 0.08, SGD at 0.01" says which network is on screen without reading the sidebar."""

from __future__ import annotations

from gradviz.config import RECURRENT, SCALED_INITIALIZERS, RunConfig, format_value

OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "SGD with momentum", "adam": "Adam", "rmsprop": "RMSprop"}
CELL_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def network_in_words(config: RunConfig) -> str:
    """The network, its initialization and its optimizer in one line a listener can follow.

    Args:
        config: any valid RunConfig.
    Returns:
        e.g. "20 linear layers of 256, random_normal σ 0.08, SGD at 0.01, clipnorm 1".
    """
    parts = [_body(config), _initialization(config)]
    extras = [name for name, on in (("batch norm", config.batch_norm), ("residual skips", config.residual)) if on]
    if extras and config.architecture not in RECURRENT:
        parts[0] += " with " + " and ".join(extras)
    parts.append(f"{OPTIMIZER_NAMES[config.optimizer]} at {format_value(config.learning_rate)}")
    if config.clipping:
        mode, value = config.clipping
        parts.append(f"{mode} {format_value(value)}")
    return ", ".join(parts)


def _body(config: RunConfig) -> str:
    if config.architecture in RECURRENT:
        steps = 784 // config.step_pixels
        cell = CELL_NAMES[config.architecture]
        activation = f"({config.activation})" if config.architecture == "rnn" else ""
        return f"{cell}{activation} of {config.width} reading {steps} steps of {config.step_pixels} pixels"
    if config.architecture == "cnn":
        blocks = "block" if config.depth == 1 else "blocks"
        return f"{config.activation} CNN of {config.depth} conv {blocks} ({config.width} base filters)"
    layers = "layer" if config.depth == 1 else "layers"
    return f"{config.depth} {config.activation} {layers} of {config.width}"


def _initialization(config: RunConfig) -> str:
    if config.architecture in RECURRENT:  # what decides the gradient through time: the recurrent matrix
        scale = f" σ {format_value(config.recurrent_std)}" if config.recurrent_initializer == "random_normal" else ""
        return f"recurrent {config.recurrent_initializer}{scale}"
    if config.initializer in SCALED_INITIALIZERS:
        return f"{config.initializer} σ {format_value(config.init_std)}"
    if config.initializer == "orthogonal":
        return f"orthogonal gain {format_value(config.init_gain)}"
    return config.initializer
