"""gradviz.watch on the user's own Keras models: what it records equals an independent
tf.GradientTape on the same batch and weights; fit reaches the same weights with it as without;
a NaN step is reported (step, layer, origin, rows) and training stops with the last finite weights."""

import numpy as np
import pytest

import gradviz
from gradviz.training.tf_setup import keras, tf

L = keras.layers
BATCH, CHECKED = 32, (0, 3, 7)


def sequential_mlp():
    return keras.Sequential([keras.Input((28, 28)), L.Flatten(), L.Dense(32, activation="relu"),
                             L.Dense(32, activation="tanh"), L.Dense(10)])


def functional_skip():
    inputs = keras.Input((28, 28))
    first = L.Dense(32, activation="relu")(L.Flatten()(inputs))
    second = L.Dense(32, activation="relu")(first)
    return keras.Model(inputs, L.Dense(10)(L.Add()([first, second])))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.flatten, self.hidden, self.out = L.Flatten(), L.Dense(32, activation="sigmoid"), L.Dense(10)

    def call(self, x):
        return self.out(self.hidden(self.flatten(x)))


def conv():
    return keras.Sequential([keras.Input((28, 28)), L.Reshape((28, 28, 1)), L.Conv2D(4, 3, activation="relu"),
                             L.MaxPooling2D(4), L.Flatten(), L.Dense(10)])


def lstm():
    return keras.Sequential([keras.Input((28, 28)), L.LSTM(16), L.Dense(10)])


MODELS = {"sequential": sequential_mlp, "functional-skip": functional_skip, "subclassed": Subclassed,
          "conv": conv, "lstm": lstm}
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def mnist(real_data_or_skip):
    data = real_data_or_skip(1000)
    return data.x_train[:320], data.y_train[:320]


def compiled(build, optimizer=None, seed=0):
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), loss=LOSS)
    return model


class WeightsAt(keras.callbacks.Callback):
    """The weights before each checked step (an independent copy, read outside gradviz)."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen, self.kept = steps, 0, {}

    def on_train_batch_begin(self, batch, logs=None):
        if self.seen in self.steps:
            self.kept[self.seen] = [v.numpy().copy() for v in self.model.trainable_variables]
        self.seen += 1


@pytest.mark.parametrize("name", MODELS)
def test_recorded_gradient_norms_and_ratios_equal_an_independent_gradient_tape(name, mnist):
    x, y = mnist
    model = compiled(MODELS[name])
    model(x[:1])  # built before fit, so the weights before step 0 can be read independently
    grab = WeightsAt(set(CHECKED) | {s + 1 for s in CHECKED})
    callback = gradviz.watch(model, x=x)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[grab, callback])
    result = callback.result
    kernels = [i for i, v in enumerate(model.trainable_variables) if len(v.shape) >= 2]
    assert len(result.layers) == len(kernels) and result.steps_done == len(y) // BATCH
    oracle = compiled(MODELS[name])
    oracle(x[:1])
    for step in CHECKED:
        oracle.set_weights(grab.kept[step])
        rows = slice(step * BATCH, (step + 1) * BATCH)
        with tf.GradientTape() as tape:
            loss = LOSS(y[rows], oracle(x[rows], training=True))
        grads = tape.gradient(loss, oracle.trainable_variables)
        expected = [float(np.linalg.norm(grads[i])) for i in kernels]
        np.testing.assert_allclose(result.grad_norm[step], expected, rtol=2e-5)
        np.testing.assert_allclose(result.loss[step], float(loss), rtol=2e-6)
        moved = [np.linalg.norm(grab.kept[step + 1][i] - grab.kept[step][i]) / np.linalg.norm(grab.kept[step][i])
                 for i in kernels]
        np.testing.assert_allclose(result.update_ratio[step], moved, rtol=1e-3)


def test_an_embeddings_sparse_gradient_is_recorded_as_its_dense_norm_with_repeated_rows_added(mnist):
    x, y = mnist
    tokens = (x.reshape(len(x), -1)[:, 200:600:25] * 15).astype("int32")  # 16 tokens of 16 values: many repeats
    build = lambda: keras.Sequential([keras.Input((16,), dtype="int32"), L.Embedding(16, 4), L.Flatten(),  # noqa: E731
                                      L.Dense(10)])
    model = compiled(build, keras.optimizers.SGD(0.1))
    model(tokens[:1])
    grab = WeightsAt({0, 1})
    callback = gradviz.watch(model)
    model.fit(tokens, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[grab, callback])
    oracle = compiled(build)
    oracle(tokens[:1])
    oracle.set_weights(grab.kept[0])
    with tf.GradientTape() as tape:
        loss = LOSS(y[:BATCH], oracle(tokens[:BATCH], training=True))
    grads = tape.gradient(loss, oracle.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)  # the case this test is about
    expected = [float(tf.norm(tf.convert_to_tensor(g))) for g, v in zip(grads, oracle.trainable_variables)
                if len(v.shape) >= 2]
    np.testing.assert_allclose(callback.result.grad_norm[0], expected, rtol=2e-5)
    all_squares = sum(float(tf.reduce_sum(tf.square(tf.convert_to_tensor(g)))) for g in grads)
    np.testing.assert_allclose(callback.result.global_norm_pre[0], np.sqrt(all_squares), rtol=2e-5)


@pytest.mark.parametrize("name", ["sequential", "subclassed", "conv"])
def test_fit_with_the_callback_reaches_the_same_weights_as_without(name, mnist):
    x, y = mnist
    plain, watched = compiled(MODELS[name]), compiled(MODELS[name])
    keras.utils.set_random_seed(7)
    plain.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    keras.utils.set_random_seed(7)
    callback = gradviz.watch(watched)
    watched.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[callback])
    for a, b in zip(plain.get_weights(), watched.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the subclassed model builds itself inside the first step: its kernels and step-0 weights are still recorded
    result = callback.result
    assert len(result.layers) == sum(len(w.shape) >= 2 for w in watched.trainable_variables)
    assert result.weight_hist.shape[:2] == (3, len(result.layers)) and result.epoch_step[0] == 0
    assert "compute_loss" not in vars(watched) and "apply" not in vars(watched.optimizer)  # wrappers removed


def test_a_nan_from_the_inputs_is_reported_forward_with_its_rows_and_training_stops(mnist):
    x, y = mnist
    x = x.copy()
    x[100, 3, 3] = np.inf  # row 100: batch 3 of the first epoch with batch size 32, unshuffled
    model = compiled(sequential_mlp)
    callback = gradviz.watch(model, x=x)
    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[callback])
    result, where = callback.result, callback.nan
    assert where["step"] == 3 and where["epoch"] == 1 and where["batch"] == 4  # epoch and batch as Keras counts
    assert where["origin"] == "forward" and where["inputs_not_finite"] and 100 in where["rows"]
    assert result.diverged_at_step == 3 and result.steps_done == 3 and result.step.max() == 3
    assert all(np.isfinite(w).all() for w in model.get_weights())  # put back to the weights before training
    finding = gradviz.diagnose_model(result)[0]
    assert finding.kind == "nan" and "step 3" in finding.message and "100" in finding.message
    assert "inputs" in finding.message and "nan_to_num" in finding.evidence["keras"]


def test_a_gradient_that_overflows_while_the_loss_is_finite_is_reported_backward(mnist):
    x, y = mnist
    # sqrt at 0 is finite forward and infinite backward: a ReLU unit that outputs exactly 0 overflows backprop
    root = L.Lambda(lambda t: keras.ops.sqrt(t))
    model = compiled(lambda: keras.Sequential([keras.Input((28, 28)), L.Flatten(),
                                               L.Dense(16, activation="relu", name="feeds_the_root"), root,
                                               L.Dense(10, name="logits")]))
    callback = gradviz.watch(model)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    where = callback.nan
    assert where["origin"] == "backward" and where["step"] == 0
    assert where["layer"].endswith("feeds_the_root/kernel") and where["rows"] is None  # no x given: no rows


def test_watch_refuses_an_uncompiled_model_and_an_unknown_layer():
    with pytest.raises(ValueError, match="compile"):
        gradviz.watch(sequential_mlp())
    model = compiled(sequential_mlp)
    with pytest.raises(ValueError, match="no_such_layer"):
        gradviz.watch(model, x=np.zeros((4, 28, 28), np.float32), layers=["no_such_layer"])


def test_a_fit_that_never_ended_leaves_nothing_behind_for_the_next(mnist):
    """An exception mid-fit skips on_train_end: the next watch takes the old wrappers off first."""
    x, y = mnist
    model = compiled(sequential_mlp)

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[gradviz.watch(model), Interrupt()])
    assert "compute_loss" in vars(model)  # left behind by the interrupted fit
    callback = gradviz.watch(model)
    assert "compute_loss" not in vars(model) and model.train_function is None
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[callback])
    assert callback.result.steps_done == len(y) // BATCH and np.isfinite(callback.result.grad_norm).all()


def test_a_step_record_equals_numpy_on_its_tensors_and_keeps_the_bad_batchs_rows_once():
    """The record's graph against numpy: norms, global norm, ratios, NaN for a kernel with no
    gradient or not handed to the optimizer; the status counts steps and keeps the first bad one;
    the fingerprint is the first bad batch's row sums and sums of squares, and is not replaced later."""
    from gradviz.yourmodel.step_record import FINGERPRINT_ROWS, Layout, step_record

    rng = np.random.default_rng(3)
    grads = [rng.normal(size=s).astype(np.float32) for s in [(5, 4), (4,), (4, 3), (3,)]]
    before = [rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)]
    after = [b + rng.normal(scale=0.1, size=b.shape).astype(np.float32) for b in before]
    # three kernels: the first and third have gradients (slots 0, 2), the second has none; the third
    # was not handed to the optimizer (no before/after: its ratio is NaN)
    layout = Layout(kernel_slots=(0, -1, 2), moved=(True, True, False), loss_known=True, fingerprinted=True)
    x = rng.normal(size=(7, 2, 3)).astype(np.float32)

    def record(loss, status, fingerprint):
        out = step_record(layout, tf.constant(loss), [tf.constant(g) for g in grads], [tf.constant(b) for b in before],
                          [tf.constant(a) for a in after], tf.constant(status, tf.int64), tf.constant(x),
                          tf.constant(fingerprint))
        return [np.asarray(t) for t in out]

    slot, row, status, fingerprint = record(1.5, [513, -1, 0], np.zeros((FINGERPRINT_ROWS, 2), np.float32))
    ratios = [np.linalg.norm(a - b) / np.linalg.norm(b) for b, a in zip(before, after)]
    expected = [1.5, np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads)), 1.0,
                np.linalg.norm(grads[0]), np.nan, np.linalg.norm(grads[2]), *ratios, np.nan]
    np.testing.assert_allclose(row[0], expected, rtol=1e-6)
    assert slot.tolist() == [[513 % 512]] and status.tolist() == [514, -1, 0] and not fingerprint.any()

    _, row, status, fingerprint = record(np.nan, [514, -1, 0], fingerprint)  # the first bad step
    flat = x.reshape(7, -1).astype(np.float64)
    assert row[0, 2] == 0.0 and status.tolist() == [515, 514, 7]
    np.testing.assert_allclose(fingerprint[:7], np.stack([flat.sum(1), (flat ** 2).sum(1)], 1), rtol=1e-5)
    assert not fingerprint[7:].any()

    x = x + 1  # a later bad step with other rows: the first one's are kept
    _, _, status, later = record(np.inf, [515, 514, 7], fingerprint)
    assert status.tolist() == [516, 514, 7]
    np.testing.assert_array_equal(later, fingerprint)


def test_the_watch_bench_times_plain_and_watched_fits_of_both_models(real_data_or_skip):
    from gradviz.yourmodel import bench

    data = real_data_or_skip(1000)
    report = bench.run_watch_bench(data, repeats=1)
    assert set(report["models"]) == set(bench.MODELS) and report["repeats"] == 1
    for row in report["models"].values():
        assert row["fit_seconds"] > 0 and row["fit_with_watch_seconds"] > 0
        assert row["steps"] == -(-len(data.y_train) // bench.BATCH) * bench.EPOCHS
        for share in ("overhead", "cpu_overhead"):
            low, high = row[share + "_range"]
            assert low <= row[share] <= high  # the median pair lies within the pairs' range
        assert row["cpu_seconds"] > 0 and row["cpu_with_watch_seconds"] > 0


class FiveUpdatesABatch(keras.Model):
    """A custom train_step that applies the optimizer five times per batch."""

    def __init__(self):
        super().__init__()
        self.flatten, self.out = L.Flatten(), L.Dense(10)

    def call(self, x):
        return self.out(self.flatten(x))

    def train_step(self, data):
        x, y = data
        for _ in range(5):
            with tf.GradientTape() as tape:
                loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
        return {"loss": loss}


def test_every_step_is_kept_when_the_optimizer_runs_several_times_a_batch(mnist):
    """650 updates in 130 batches: more than the 512-row ring holds between reads made at
    Keras' batch count; the reads follow the rate seen instead."""
    x, y = mnist
    model = compiled(FiveUpdatesABatch, keras.optimizers.SGD(0.01))
    model(x[:1])
    callback = gradviz.watch(model)
    model.fit(x[:260], y[:260], batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    result = callback.result
    assert result.steps_done == 650
    np.testing.assert_array_equal(result.step, np.arange(650))
    assert np.isfinite(result.grad_norm).all() and np.isfinite(result.loss).all()
