"""gradviz.probe_model on user models at initialization: the numbers against an independent tape,
the cause named on broken models, theory only where it applies, and gradviz.show drawing both kinds."""

import numpy as np
import pytest

import gradviz
from gradviz.training.tf_setup import keras, tf

L = keras.layers
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def batch(real_data_or_skip):
    data = real_data_or_skip(1000)
    return data.x_val[:128], data.y_val[:128]


def stack(depth, activation, initializer="glorot_uniform", width=64):
    keras.utils.set_random_seed(0)
    hidden = [L.Dense(width, activation=activation, kernel_initializer=initializer, name=f"hidden_{i}")
              for i in range(depth)]
    return keras.Sequential([keras.Input((28, 28)), L.Flatten(), *hidden, L.Dense(10, name="logits")])


def test_probe_gradient_norms_equal_an_independent_tape_and_nothing_moves(batch):
    x, y = batch
    model = stack(3, "relu")
    before = [w.copy() for w in model.get_weights()]
    probe = gradviz.probe_model(model, x, y, loss=LOSS)
    with tf.GradientTape() as tape:
        loss = LOSS(y, model(x, training=True))
    grads = [g for g, v in zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
             if len(v.shape) >= 2]
    np.testing.assert_allclose(probe.grad_norm, [float(tf.norm(g)) for g in grads], rtol=1e-5)
    assert probe.layers[0].endswith("hidden_0/kernel") and probe.forward_layers[0] == "hidden_0"
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    squares = np.zeros(len(grads))
    for i in range(8):  # the per-example RMS, one tape per example
        with tf.GradientTape() as tape:
            one = LOSS(y[i:i + 1], model(x[i:i + 1], training=True))
        kernels = [g for g in tape.gradient(one, model.trainable_variables) if len(g.shape) >= 2]
        squares += [float(tf.reduce_sum(tf.square(g))) for g in kernels]
    np.testing.assert_allclose(probe.per_example_rms, np.sqrt(squares / 8), rtol=1e-5)


def test_twenty_sigmoid_layers_are_named_vanishing_with_a_keras_change(batch):
    x, y = batch
    found = gradviz.diagnose_model(gradviz.probe_model(stack(20, "sigmoid"), x, y, loss=LOSS))
    assert found[0].kind == "vanishing" and "`hidden_0`" in found[0].message
    assert "he_normal" in found[0].evidence["keras"]


def test_a_zero_initialized_model_is_named_symmetric_first(batch):
    x, y = batch
    found = gradviz.diagnose_model(gradviz.probe_model(stack(3, "relu", initializer="zeros"), x, y, loss=LOSS))
    assert [f.kind for f in found[:3]] == ["symmetric"] * 3 and "hidden_0" in found[0].message
    assert "kernel_initializer" in found[0].evidence["keras"]


def test_a_healthy_model_gets_no_finding_and_the_theory_where_it_applies(batch):
    x, y = batch
    probe = gradviz.probe_model(stack(4, "relu", initializer="he_normal"), x, y, loss=LOSS)
    assert gradviz.diagnose_model(probe) == [] and "Mean-field theory (a plain stack of 4 Dense" in probe.theory
    inputs = keras.Input((28, 28))
    first = L.Dense(32, activation="relu")(L.Flatten()(inputs))
    skip = keras.Model(inputs, L.Dense(10)(L.Add()([first, L.Dense(32, activation="relu")(first)])))
    assert "not applied" in gradviz.probe_model(skip, x, y, loss=LOSS).theory


def test_show_draws_a_probe_and_a_watched_run_and_lists_the_findings(batch, capsys):
    x, y = batch
    model = stack(20, "sigmoid")
    probe = gradviz.probe_model(model, x, y, loss=LOSS)
    spec = gradviz.show(probe).to_dict()
    assert "vconcat" in spec
    model.compile(optimizer="sgd", loss=LOSS)
    callback = gradviz.watch(model, x=x)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    spec = gradviz.show(callback.result).to_dict()
    titles = [str(part.get("title", "")) for part in spec["vconcat"]]
    assert any("Gradient norm per layer and step" in t for t in titles) and any("Loss" in t for t in titles)
