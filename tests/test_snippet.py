"""The exported Keras snippet rebuilds exactly gradviz's model (same layers, same initial weights)."""

import numpy as np
import pytest

from gradviz.config import RunConfig
from gradviz.models import build_model
from gradviz.snippet import keras_snippet

CONFIGS = [
    RunConfig(depth=3, width=16, activation="sigmoid", initializer="glorot_uniform"),
    RunConfig(depth=5, width=16, residual=True, batch_norm=True, optimizer="momentum", clipnorm=1.0, seed=4),
    RunConfig(depth=4, width=16, activation="linear", initializer="random_normal", init_std=0.08, optimizer="sgd"),
    RunConfig(depth=2, width=8, initializer="random_uniform", init_std=0.3, global_clipnorm=2.0, optimizer="rmsprop"),
    RunConfig(architecture="cnn", depth=3, width=8, batch_norm=True, residual=True, clipvalue=0.5),
    RunConfig(architecture="cnn", depth=2, width=8),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.architecture}-{c.depth}-{c.initializer}")
def test_snippet_rebuilds_the_same_model(config):
    namespace = {}
    exec(compile(keras_snippet(config), "snippet.py", "exec"), namespace)  # noqa: S102 - our own output
    theirs, ours = namespace["model"], build_model(config)
    assert theirs.count_params() == ours.count_params()
    for a, b in zip(theirs.weights, ours.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    optimizer = theirs.optimizer
    assert float(optimizer.learning_rate) == pytest.approx(config.learning_rate)
    for field in ("clipnorm", "global_clipnorm", "clipvalue"):
        assert getattr(optimizer, field) == getattr(config, field)
    x = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(theirs(x).numpy(), ours(x).numpy(), rtol=1e-5, atol=1e-6)
