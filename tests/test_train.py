"""The trainer against an oracle: per-layer gradient norms, losses and updates recomputed with a
separate tf.GradientTape on the same batch and weights; clipping against Keras' own; divergence."""

import math

import numpy as np
import pytest
import tensorflow as tf

from gradviz.config import RunConfig
from gradviz.result import RunResult
from gradviz.training import train as train_module
from gradviz.training.models import build_model, kernel_layers
from gradviz.training.optim import keras_optimizer
from gradviz.training.snapshots import ACT_BINS, WEIGHT_BINS
from gradviz.training.steps import (
    CompiledSteps,
    StepRecord,
    available_cores,
    tower_sizes,
)
from gradviz.training.train import _locate_divergence, epoch_order, train

CONFIGS = {
    "mlp-tanh-sgd": RunConfig(depth=4, width=32, activation="tanh", initializer="glorot_uniform",
                              optimizer="sgd", learning_rate=0.1, batch_size=32, train_size=256, epochs=1, seed=5),
    "cnn-bn-residual": RunConfig(architecture="cnn", depth=2, width=8, activation="relu", initializer="he_normal",
                                 batch_norm=True, residual=True, optimizer="sgd", learning_rate=0.05,
                                 batch_size=32, train_size=256, epochs=1, seed=2),
    "mlp-sigmoid-residual-bn": RunConfig(depth=5, width=16, activation="sigmoid", residual=True, batch_norm=True,
                                         optimizer="sgd", learning_rate=0.5, batch_size=32, train_size=256,
                                         epochs=1, seed=9),
    # split in two towers (on 2+ cores): the gradients are the sum of both halves' shares
    "mlp-tanh-towers": RunConfig(depth=3, width=128, activation="tanh", optimizer="sgd", learning_rate=0.1,
                                 batch_size=128, train_size=256, epochs=1, seed=3),
}


def oracle_step(model, x, y):
    """Loss and per-variable gradients, computed eagerly and independently of gradviz.training.train."""
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    grads = tape.gradient(loss, model.trainable_variables)
    return float(loss), [g.numpy() for g in grads]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_recorded_norms_match_an_independent_gradient_tape(name, tiny_data):
    config = CONFIGS[name]
    if name.endswith("towers") and available_cores() >= 2:
        assert tower_sizes(config) == [64, 64]
    result = train(config, tiny_data)
    steps = min(3, len(tiny_data.y_train) // config.batch_size)
    assert result.step_stride == 1 and list(result.step[:steps]) == list(range(steps))

    oracle = build_model(config)  # seeded: the same initial weights the trainer started from
    kernels = [layer.kernel.path for layer in kernel_layers(oracle)]
    order = np.asarray(epoch_order(len(tiny_data.y_train), config.seed, 0))
    for step in range(steps):
        idx = order[step * config.batch_size:(step + 1) * config.batch_size]
        loss, grads = oracle_step(oracle, tiny_data.x_train[idx], tiny_data.y_train[idx])
        by_path = {v.path: g for v, g in zip(oracle.trainable_variables, grads)}
        expected = [np.linalg.norm(by_path[p]) for p in kernels]
        np.testing.assert_allclose(result.grad_norm[step], expected, rtol=2e-4)
        np.testing.assert_allclose(result.loss[step], loss, rtol=1e-5)
        global_norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
        np.testing.assert_allclose(result.global_norm_pre[step], global_norm, rtol=2e-4)
        np.testing.assert_allclose(result.global_norm_post[step], global_norm, rtol=2e-4)  # no clipping
        # plain SGD: the update is lr * grad, so the recorded update/weight ratio is predictable
        kernel_values = {v.path: v.numpy() for v in oracle.trainable_variables}
        expected_ratio = [config.learning_rate * np.linalg.norm(by_path[p]) / np.linalg.norm(kernel_values[p])
                          for p in kernels]
        np.testing.assert_allclose(result.update_ratio[step], expected_ratio, rtol=2e-3)
        for variable, grad in zip(oracle.trainable_variables, grads):
            variable.assign(variable.numpy() - config.learning_rate * grad)


@pytest.mark.parametrize("clip", [{}, {"clipnorm": 0.05}, {"global_clipnorm": 0.1}, {"clipvalue": 0.001}])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "momentum", "rmsprop"])
def test_updates_and_clipping_match_keras(clip, optimizer, tiny_data):
    """Steps with gradviz's fused optimizer and own clipping land on the same weights as Keras'
    optimizer with the same clip argument; the recorded post-clip norm is what Keras applied."""
    config = RunConfig(depth=2, width=16, optimizer=optimizer, learning_rate=0.01, batch_size=32,
                       train_size=256, **clip)
    x, y = tiny_data.x_train, tiny_data.y_train
    order = epoch_order(len(y), 0, 0)
    ours = build_model(config)
    rows = CompiledSteps(ours, config, x, y).chunk(order, tf.constant(0), tf.constant(4)).numpy()

    theirs = build_model(config)
    reference = keras_optimizer(config)
    order = np.asarray(order)
    for step in range(4):
        idx = order[step * 32:(step + 1) * 32]
        _, grads = oracle_step(theirs, x[idx], y[idx])
        clipped = reference._clip_gradients([tf.constant(g) for g in grads])
        post = math.sqrt(sum(float(tf.reduce_sum(tf.square(g))) for g in clipped))
        np.testing.assert_allclose(rows[step, StepRecord.NORM_POST], post, rtol=1e-4)
        assert rows[step, StepRecord.NORM_POST] <= rows[step, StepRecord.NORM_PRE] * (1 + 1e-6)
        reference.apply([tf.constant(g) for g in grads], theirs.trainable_variables)
    # Adam/RMSprop divide by sqrt(v) + 1e-7: where a gradient is ~1e-8, float rounding between
    # graph and eager moves that weight by a visible fraction of one step. A wrong rule would be off
    # by whole steps (lr = 1e-2), so 0.2 % of a step is a tight bound.
    for a, b in zip(ours.trainable_variables, theirs.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=2e-3 * config.learning_rate)


def test_batches_are_split_only_where_two_towers_paid():
    mlp = RunConfig(depth=10, width=256, batch_size=128)
    assert tower_sizes(mlp, cores=2) == [64, 64]
    assert tower_sizes(mlp.replace(batch_size=129), cores=8) == [65, 64]
    assert tower_sizes(mlp, cores=1) == [128]
    for unsplit in (mlp.replace(batch_norm=True), mlp.replace(width=512), mlp.replace(width=64),
                    mlp.replace(batch_size=64), mlp.replace(architecture="cnn", width=16),
                    mlp.replace(architecture="rnn", width=128)):
        assert tower_sizes(unsplit, cores=2) == [unsplit.batch_size]


EXPLODING = RunConfig(depth=12, width=64, activation="linear", initializer="random_normal", init_std=0.5,
                      optimizer="sgd", learning_rate=1.0, batch_size=32, train_size=256, epochs=2)


def test_divergence_stops_the_run_and_names_a_layer(tiny_data):
    result = train(EXPLODING, tiny_data)
    assert result.diverged and isinstance(result.diverged_at_step, int)
    assert result.steps_done == result.diverged_at_step + 1 < result.total_steps
    last = result.step == result.diverged_at_step
    assert not (np.isfinite(result.loss[last]).all() and np.isfinite(result.grad_norm[last]).all())
    assert np.isfinite(result.loss[~last]).all()  # every earlier step was finite
    assert result.first_bad_layer in result.layers
    assert result.divergence_origin in ("forward", "backward")
    # the bad update was not applied: the weights in the last snapshot are all finite numbers
    n_weights = sum(int(np.prod(build_model(EXPLODING).get_layer(n).kernel.shape)) for n in result.layers)
    assert result.weight_hist[-1].sum() == n_weights
    assert result.final()["train_loss"] is None  # the non-finite loss it hit, reported as null


@pytest.mark.parametrize("clip", [{}, {"clipnorm": 1.0}, {"global_clipnorm": 1.0}, {"clipvalue": 0.1}])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_a_non_finite_step_leaves_the_weights_unchanged(optimizer, clip, tiny_data):
    """Two finite steps (so momentum and moment estimates are non-zero), then a batch with an Inf
    pixel: its row is recorded as non-finite and no weight moves, for every optimizer and clip mode."""
    config = RunConfig(depth=2, width=16, optimizer=optimizer, learning_rate=0.01, batch_size=32,
                       train_size=256, **clip)
    x, y = tiny_data.x_train[:96].copy(), tiny_data.y_train[:96]
    x[70, 3, 3] = np.inf  # in the third batch of the identity order
    model = build_model(config)
    steps = CompiledSteps(model, config, x, y)
    order = tf.range(96, dtype=tf.int32)
    finite = steps.chunk(order, tf.constant(0), tf.constant(2)).numpy()
    record = StepRecord(n_kernels=3)
    assert finite.shape[1] == record.width
    assert np.isfinite(finite).all() and (finite[:, record.update_ratios] > 0).all()  # the updates did move weights
    before = [v.numpy() for v in model.trainable_variables]
    row = steps.chunk(order, tf.constant(2), tf.constant(3)).numpy()[-1]
    assert not np.isfinite(row[record.LOSS]) and np.isnan(row[record.NORM_POST])  # nothing applied
    for variable, value in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_locate_divergence_forward_and_backward():
    config = RunConfig(depth=3, width=8, activation="linear", initializer="glorot_uniform")
    model = build_model(config)
    x = np.ones((4, 28, 28), np.float32)
    finite = np.ones(4)
    assert _locate_divergence(model, x, np.array([np.nan, np.nan, np.inf, 1.0])) == ("hidden_03", "backward")
    model.get_layer("hidden_01").kernel.assign(np.ones((784, 8), np.float32))
    model.get_layer("hidden_02").kernel.assign(np.full((8, 8), 1e38, np.float32))
    assert _locate_divergence(model, x, finite * np.nan) == ("hidden_02", "forward")


def test_progress_stream_and_stop(tiny_data):
    config = RunConfig(depth=2, width=16, batch_size=8, train_size=256, epochs=3)
    seen = []

    def on_progress(progress):
        seen.append((progress.step, progress.fraction))
        snap = progress.snapshot()
        assert isinstance(snap, RunResult) and snap.steps_done == progress.step
        assert len(snap.step) == progress.step  # one row per step so far

    result = train(config, tiny_data, on_progress=on_progress, should_stop=lambda: len(seen) >= 2)
    assert len(seen) == 2 and seen[0][0] < seen[1][0]
    assert result.stopped and not result.finished
    assert result.steps_done == seen[-1][0] < result.total_steps


def test_snapshots_and_epoch_metrics(tiny_data):
    config = RunConfig(depth=2, width=32, batch_size=16, train_size=256, epochs=3, learning_rate=3e-3)
    result = train(config, tiny_data)
    assert result.finished and result.total_steps == 3 * 16
    np.testing.assert_array_equal(result.epoch, [0, 1, 2, 3])
    np.testing.assert_array_equal(result.epoch_step, [0, 16, 32, 48])
    for epoch in (1, 2, 3):  # train metrics are the epoch's running means, as Keras reports them
        rows = (result.step >= (epoch - 1) * 16) & (result.step < epoch * 16)
        np.testing.assert_allclose(result.train_loss[epoch], result.loss[rows].mean(), rtol=1e-5)
        np.testing.assert_allclose(result.train_accuracy[epoch], result.accuracy[rows].mean(), rtol=1e-5)
    assert result.val_accuracy[-1] > 0.6  # the tiny task is learnable: the loop really trains
    assert result.weight_hist.shape == (4, 3, WEIGHT_BINS)
    assert (result.weight_hist.sum(axis=2) == [784 * 32, 32 * 32, 32 * 10]).all()
    assert (result.pooled_hist.sum(axis=1) == 784 * 32 + 32 * 32 + 32 * 10).all()
    # pooled at step 0 == the per-layer kernels binned on the pooled grid (initial weights are seeded)
    initial = build_model(config)
    expected = sum(np.histogram(initial.get_layer(n).kernel.numpy(), result.pooled_edges)[0] for n in result.layers)
    np.testing.assert_array_equal(result.pooled_hist[0], expected)
    assert result.act_hist.shape == (4, 2, ACT_BINS)
    # all 128 validation images (fewer than 512) are snapshot images
    assert (result.act_hist.sum(axis=2) == [[128 * 32, 128 * 32]] * 4).all()
    assert result.act_stats.shape == (4, 2, 4)
    assert np.isnan(result.act_stats[:, :, 3]).all()  # relu: no saturation figure
    assert ((result.act_stats[:, :, 2] >= 0) & (result.act_stats[:, :, 2] <= 1)).all()


def test_long_runs_keep_bounded_memory(tiny_data, monkeypatch):
    monkeypatch.setattr(train_module, "STEP_LOG_CAPACITY", 16)
    config = RunConfig(depth=1, width=8, batch_size=8, train_size=256, epochs=3)  # 96 steps
    result = train(config, tiny_data)
    assert result.steps_done == 96
    assert len(result.step) <= 16 and result.step_stride == 8
    np.testing.assert_array_equal(result.step, np.arange(0, 96, 8))


def test_same_config_same_numbers(tiny_data):
    config = RunConfig(depth=3, width=16, batch_size=32, train_size=256, epochs=2, seed=11)
    a, b = train(config, tiny_data), train(config, tiny_data)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)
    np.testing.assert_allclose(a.grad_norm, b.grad_norm, rtol=1e-6)
    c = train(config.replace(seed=12), tiny_data)
    assert not np.allclose(a.loss, c.loss)


