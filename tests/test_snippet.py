"""The exported Keras snippet rebuilds exactly gradviz's model for every architecture: the same
layer kinds in the same order, the same parameter count and the same initial weights."""

import keras
import numpy as np
import pytest

from gradviz.config import RunConfig
from gradviz.snippet import keras_snippet
from gradviz.training.models import build_model

CONFIGS = {
    "mlp": RunConfig(depth=3, width=16, activation="sigmoid", initializer="glorot_uniform"),
    "mlp-batchnorm": RunConfig(depth=3, width=16, batch_norm=True, optimizer="momentum", clipnorm=1.0, seed=4),
    "mlp-residual": RunConfig(depth=6, width=16, residual=True, initializer="orthogonal", init_gain=1.3),
    "mlp-residual-bn": RunConfig(depth=5, width=16, residual=True, batch_norm=True, optimizer="sgd"),
    "mlp-random-uniform": RunConfig(depth=2, width=8, initializer="random_uniform", init_std=0.3, global_clipnorm=2.0,
                                    optimizer="rmsprop"),
    "cnn": RunConfig(architecture="cnn", depth=2, width=8, activation="tanh"),
    "cnn-bn-residual": RunConfig(architecture="cnn", depth=3, width=8, batch_norm=True, residual=True, clipvalue=0.5),
    "rnn": RunConfig(architecture="rnn", width=8, activation="tanh", step_pixels=14,
                     recurrent_initializer="random_normal",
                     recurrent_std=0.2),
    "lstm": RunConfig(architecture="lstm", width=8, step_pixels=28, seed=9),
    "gru": RunConfig(architecture="gru", width=8, step_pixels=7, recurrent_initializer="glorot_uniform"),
}


def kinds(model: keras.Model) -> list[str]:
    """Layers with weights, in order; a recurrent layer by its cell (SimpleRNN == RNN(SimpleRNNCell))."""
    return [type(getattr(layer, "cell", layer)).__name__ for layer in model.layers if layer.weights]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_snippet_rebuilds_the_same_model(name):
    config = CONFIGS[name]
    code = keras_snippet(config)
    namespace = {}
    exec(compile(code, "snippet.py", "exec"), namespace)  # noqa: S102 - our own output
    theirs, ours = namespace["model"], build_model(config, tapped=False)
    assert kinds(theirs) == kinds(ours)
    assert theirs.count_params() == ours.count_params()
    assert len(theirs.weights) == len(ours.weights)
    for a, b in zip(theirs.weights, ours.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    optimizer = theirs.optimizer
    assert float(optimizer.learning_rate) == pytest.approx(config.learning_rate)
    for field in ("clipnorm", "global_clipnorm", "clipvalue"):
        assert getattr(optimizer, field) == getattr(config, field)
    x = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(theirs(x).numpy(), ours(x).numpy(), rtol=1e-5, atol=1e-6)


def test_the_snippet_writes_only_what_the_config_uses():
    plain = keras_snippet(CONFIGS["mlp"])
    assert "keras.Sequential" in plain and "BatchNormalization" not in plain and "Add()" not in plain
    assert "Conv2D" not in plain and "if False" not in plain
    assert "BatchNormalization" in keras_snippet(CONFIGS["mlp-batchnorm"])
    residual = keras_snippet(CONFIGS["mlp-residual"])
    assert "layers.Add()" in residual and "keras.Model(inputs, outputs)" in residual
    lstm = keras_snippet(CONFIGS["lstm"])
    assert "layers.LSTM(8" in lstm and "Dense(8" not in lstm and "Conv2D" not in lstm
    assert "layers.Add()" not in keras_snippet(CONFIGS["cnn"])
