"""The init-time probe: its numbers against Keras' own model and an independent GradientTape, the
mean-field prediction against it on wide random MLPs, and its cache."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradviz.config import RunConfig
from gradviz.signal import probe as signal
from gradviz.signal import theory
from gradviz.training.models import build_model, model_inputs, tracked_kernels
from support.helpers import make_dataset

DATA = make_dataset(n_train=16, n_val=32, seed=3)
X, Y = DATA.x_val, DATA.y_val


def tape_oracle(config: RunConfig, x, y):
    """Forward and backward through gradviz's own Keras model, read layer by layer, with a
    separate GradientTape: (pre-activation RMS, activation RMS, batch grad norms, per-example RMS)."""
    model = build_model(config)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    acts = {layer.name: layer for layer in model.layers if layer.name.endswith("_act")}
    outputs = [layer.output for layer in dense] + [acts[f"{d.name}_act"].output for d in dense[:-1]]
    probe_model = keras.Model(model.input, outputs)
    values = probe_model(x, training=True)
    rms = [float(np.sqrt(np.mean(np.square(v)))) for v in values]
    kernels = [k for _, k in tracked_kernels(model)]

    def grads(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, model(xb, training=True),
                                                                               from_logits=True))
        return [float(tf.norm(g)) for g in tape.gradient(loss, kernels)]

    per_example = np.sqrt(np.mean([np.square(grads(x[i:i + 1], y[i:i + 1])) for i in range(len(y))], axis=0))
    n = len(dense)
    return rms[:n], rms[n:] + [rms[n - 1]], grads(x, y), per_example


@pytest.mark.parametrize("config", [
    RunConfig(depth=3, width=32),
    RunConfig(depth=4, width=24, activation="tanh", initializer="random_normal", init_std=0.3),
    RunConfig(depth=3, width=16, activation="sigmoid", initializer="glorot_uniform"),
    RunConfig(depth=3, width=16, activation="selu", initializer="orthogonal", init_gain=1.2),
    RunConfig(depth=2, width=16, activation="gelu", initializer="lecun_normal"),
], ids=["relu-he", "tanh-normal", "sigmoid-glorot", "selu-orthogonal", "gelu-lecun"])
def test_the_fast_mlp_path_matches_kerass_model_and_a_separate_tape(config):
    probe = signal.measure(config, X[:12], Y[:12])
    pre, post, grads, per_example = tape_oracle(config, X[:12], Y[:12])
    assert signal.fast_path(config)
    assert probe.layers == [name for name, _ in tracked_kernels(build_model(config))]
    np.testing.assert_allclose(probe.preact_rms, pre, rtol=1e-5)
    np.testing.assert_allclose(probe.forward_rms, post, rtol=1e-5)
    np.testing.assert_allclose(probe.grad_norm, grads, rtol=1e-4)
    np.testing.assert_allclose(probe.grad_norm_per_example, per_example, rtol=1e-4)


@pytest.mark.parametrize("config", [
    RunConfig(depth=4, width=16, batch_norm=True, residual=True),
    RunConfig(architecture="cnn", depth=2, width=8, batch_norm=True, residual=True),
    RunConfig(architecture="gru", width=8, step_pixels=7),
], ids=["mlp-bn-residual", "cnn", "gru-traced"])
def test_the_keras_path_matches_a_separate_tape(config):
    probe = signal.measure(config, X[:8], Y[:8])
    model = build_model(config)
    inputs = model_inputs(model, X[:8])
    with tf.GradientTape() as tape:
        if config.time_steps:
            tape.watch(inputs[1])
        logits = model(inputs, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(Y[:8], logits, from_logits=True))
    watched = [k for _, k in tracked_kernels(model)] + ([inputs[1]] if config.time_steps else [])
    grads = tape.gradient(loss, watched)
    if config.time_steps:
        through_time = np.sqrt(np.sum(np.square(grads.pop().numpy().astype(np.float64)), axis=(0, 2)))
        np.testing.assert_allclose(probe.time_grad, through_time, rtol=1e-4)
    np.testing.assert_allclose(probe.grad_norm, [float(tf.norm(g)) for g in grads], rtol=1e-4)
    assert probe.forward_rms[-1] == pytest.approx(float(np.sqrt(np.mean(np.square(logits)))), rel=1e-5)
    assert probe.prediction is None and "does not" not in probe.law  # no line drawn; the law says why
    assert theory.not_covered(config) in probe.law


def test_zero_weights_give_hidden_kernels_no_gradient_and_measurements_repeat():
    zeros = signal.measure(RunConfig(depth=3, width=16, activation="tanh", initializer="zeros"), X, Y)
    assert zeros.grad_norm[:-1] == [0.0, 0.0, 0.0] and zeros.forward_rms[:-1] == [0.0, 0.0, 0.0]
    config = RunConfig(depth=3, width=32, activation="elu", initializer="glorot_normal", seed=5)
    first, second = signal.measure(config, X, Y), signal.measure(config, X, Y)
    assert (first.preact_rms, first.grad_norm) == (second.preact_rms, second.grad_norm)


WIDE = [RunConfig(depth=10, width=1024, activation=a, initializer=i, init_std=s) for a, i, s in (
    ("relu", "he_normal", 0.05), ("relu", "glorot_uniform", 0.05), ("tanh", "glorot_uniform", 0.05),
    ("tanh", "random_normal", 0.1), ("sigmoid", "glorot_uniform", 0.05), ("linear", "random_normal", 0.035),
    ("selu", "lecun_normal", 0.05), ("gelu", "he_normal", 0.05), ("softsign", "glorot_uniform", 0.05),
    ("tanh", "orthogonal", 0.05))]


@pytest.mark.parametrize("config", WIDE, ids=[f"{c.activation}-{c.initializer}" for c in WIDE])
def test_the_theory_predicts_wide_random_mlps(config, real_data_or_skip):
    """Width 1024, depth 10, 256 real MNIST images. Stated tolerance: each hidden layer's
    pre-activation RMS within 20 % of sqrt(q) (finite width drifts with depth: seen up to 15 %);
    each kernel's per-example gradient, relative to the output kernel's, within 15 %."""
    from gradviz.data import probe_batch

    real_data_or_skip(100)
    x, y, _ = probe_batch(256)
    probe = signal.measure(config, x, y)
    prediction = probe.prediction
    np.testing.assert_allclose(probe.preact_rms[:-1], np.sqrt(prediction.preact_var[:-1]), rtol=0.2)
    measured = np.asarray(probe.grad_norm_per_example) / probe.grad_norm_per_example[-1]
    np.testing.assert_allclose(measured, prediction.grad_norm_relative, rtol=0.15)
    assert math.log10(probe.ratio_first_last_per_example / prediction.ratio_first_last) == pytest.approx(0, abs=0.07)


def test_a_probe_is_cached_by_what_decides_it(real_data_or_skip):
    real_data_or_skip(100)
    config = RunConfig(depth=3, width=48, seed=913)
    first = signal.probe(config)
    other_training = config.replace(learning_rate=0.1, optimizer="sgd", epochs=9)
    again = signal.probe(other_training)
    assert again.config == other_training and again.grad_norm == first.grad_norm and again.seconds == first.seconds
    assert signal.probe(config.replace(seed=914)).grad_norm != first.grad_norm  # other weights: measured anew
