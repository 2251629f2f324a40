"""The loss's sharpness at initialization: power iteration with Hessian-vector products against the
full Hessian's eigenvalues (an independent jacobian of the gradient), and the stability bounds."""

import numpy as np
import pytest

from gradviz.config import RunConfig
from gradviz.signal.sharpness import measure_sharpness, stable_lr
from gradviz.training.models import build_model, model_inputs
from gradviz.training.optim import MOMENTUM
from gradviz.training.tf_setup import keras, tf
from support.helpers import make_dataset


def full_hessian_eigenvalues(config: RunConfig, x, y) -> np.ndarray:
    model = build_model(config)
    weights = model.trainable_variables
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            logits = model(model_inputs(model, tf.constant(x)), training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        grad = tf.concat([tf.reshape(g, [-1]) for g in inner.gradient(loss, weights)], 0)
    blocks = outer.jacobian(grad, weights)
    hessian = np.concatenate([np.reshape(b, (grad.shape[0], -1)) for b in blocks], 1)
    return np.linalg.eigvalsh((hessian + hessian.T) / 2)


@pytest.mark.parametrize("config", [RunConfig(architecture="cnn", depth=1, width=8, activation="tanh"),
                                    RunConfig(architecture="cnn", depth=1, width=8, batch_norm=True, seed=3)],
                         ids=["cnn-tanh", "cnn-bn"])  # with batch norm a negative eigenvalue is the largest in size
def test_power_iteration_finds_the_top_eigenvalue_of_the_full_hessian(config):
    data = make_dataset(n_train=16, n_val=16)
    eigenvalues = full_hessian_eigenvalues(config, data.x_val, data.y_val)
    found = measure_sharpness(config, data.x_val, data.y_val, iterations=300, tolerance=1e-8)
    np.testing.assert_allclose(found.lambda_max, eigenvalues[-1], rtol=1e-3)
    assert found.batch == 16 and found.iterations <= 300


def test_the_stability_bounds_follow_the_optimizer():
    assert stable_lr(40.0, "sgd") == pytest.approx(0.05)
    assert stable_lr(40.0, "momentum") == pytest.approx(2 * (1 + MOMENTUM) / 40.0)
    assert stable_lr(40.0, "adam") is None and stable_lr(40.0, "rmsprop") is None
    assert stable_lr(-3.0, "sgd") is None and stable_lr(0.0, "sgd") is None


def test_the_json_names_the_bound_for_the_run_and_sgds_for_reference():
    data = make_dataset(n_train=16, n_val=32)
    found = measure_sharpness(RunConfig(depth=2, width=16, optimizer="momentum"), data.x_val, data.y_val)
    report = found.to_json()
    assert report["lambda_max"] > 0 and report["optimizer"] == "momentum" and report["batch"] == 32
    assert report["stable_lr"] == pytest.approx(1.9 * report["sgd_lr"]) and report["sgd_lr"] == 2 / report["lambda_max"]


def test_the_init_views_sharpness_is_cached_per_starting_point_not_per_step():
    """λ does not depend on the optimizer or the learning rate: moving those reuses the measurement,
    and the bound follows the optimizer now chosen."""
    from gradviz.signal import sharpness

    data = make_dataset()
    x, y = data.x_val[:32], data.y_val[:32]
    config = RunConfig(depth=2, width=16, seed=11)
    first = sharpness.sharpness_for_view(config, x, y)
    size = len(sharpness._VIEW_CACHE)
    adam = sharpness.sharpness_for_view(config.replace(optimizer="adam", learning_rate=0.3), x, y)
    momentum = sharpness.sharpness_for_view(config.replace(optimizer="momentum"), x, y)
    assert len(sharpness._VIEW_CACHE) == size and adam.lambda_max == momentum.lambda_max == first.lambda_max
    assert adam.stable_lr is None and momentum.stable_lr == pytest.approx(2 * (1 + MOMENTUM) / first.lambda_max)
    oracle = measure_sharpness(config, x, y, iterations=80, tolerance=1e-7)
    assert first.lambda_max == pytest.approx(oracle.lambda_max, rel=0.05)
    sharpness.sharpness_for_view(config.replace(seed=12), x, y)  # another starting point: measured anew
    assert len(sharpness._VIEW_CACHE) == size + 1


def test_the_step_law_sentence_names_the_bound_or_why_there_is_none():
    from gradviz.signal.sharpness import Sharpness
    from gradviz.ui.init_view import step_law_text

    sgd = step_law_text(Sharpness(20.0, "sgd", 64, 10, 0.1), 0.5)
    assert "2/λ = 0.1" in sgd and "past it (5×)" in sgd
    assert "inside it (0.1×)" in step_law_text(Sharpness(20.0, "sgd", 64, 10, 0.1), 0.01)
    adam = step_law_text(Sharpness(20.0, "adam", 64, 10, 0.1), 0.001)
    assert "no bound" in adam and "2/λ = 0.1" in adam
    assert "no step bound" in step_law_text(Sharpness(-3.0, "sgd", 64, 10, 0.1), 0.01)


@pytest.mark.parametrize("shift", [0.0, -30.0], ids=["positive-top", "negative-largest-in-size"])
def test_lanczos_finds_the_top_eigenvalue_of_an_explicit_symmetric_matrix(shift):
    """With as many steps as dimensions the Krylov space is the whole space: the top Ritz value is
    the top eigenvalue (numpy's eigvalsh the oracle), the algebraic one even when a negative one is larger in size."""
    from gradviz.training import lanczos

    rng = np.random.default_rng(4)
    a = rng.standard_normal((12, 12)).astype(np.float32)
    matrix = (a + a.T) / 2 + shift * np.diag(np.r_[np.zeros(11), 1.0]).astype(np.float32)
    top = tf.function(lambda v: lanczos.top_eigenvalue(lambda u: [tf.linalg.matvec(matrix, u[0])], [v], 12))
    value, previous = top(tf.constant(rng.standard_normal(12).astype(np.float32)))
    assert float(value) == pytest.approx(np.linalg.eigvalsh(matrix.astype(np.float64))[-1], rel=1e-4)
    assert float(previous) <= float(value) + 1e-4  # Ritz values rise towards the top eigenvalue step by step


@pytest.mark.parametrize("config", [RunConfig(depth=1, width=8, optimizer="sgd", batch_norm=True, seed=3)],
                         ids=["mlp-bn"])  # without batch norm: test_a_shared_sharpness_graph_measures_...
def test_the_traced_sharpness_matches_the_full_hessian(config):
    """The traced Lanczos graph against the full Hessian; the batch-norm case's top eigenvalues
    cluster (eager power iteration needs 225 steps there), which is why training's 8 steps are
    checked on a default-size MLP below and this takes 20."""
    from gradviz.training.steps import CompiledSteps

    data = make_dataset(n_train=16, n_val=16)
    top = full_hessian_eigenvalues(config, data.x_val, data.y_val)[-1]
    compiled = CompiledSteps(build_model(config), config, data.x_train, data.y_train)
    for seed in (0, 1):
        assert compiled.sharpness(data.x_val, data.y_val, seed=seed, steps=20) == pytest.approx(top, rel=1e-3)


SHARED_VIEW = RunConfig(depth=1, width=8, optimizer="adam", seed=21)
SHARED_RUNS = [SHARED_VIEW.replace(optimizer="momentum", clipnorm=1.0, batch_size=32, seed=22,
                                   initializer="glorot_uniform"),
               SHARED_VIEW.replace(optimizer="sgd", learning_rate=0.5, batch_size=64, seed=23)]


def traced_by_the_view(data):
    from gradviz.signal.sharpness import forget_view_sharpness, sharpness_for_view
    from gradviz.training.steps import clear_step_graphs

    clear_step_graphs()
    forget_view_sharpness()  # else an earlier test's number for this start is reused and nothing traces
    sharpness_for_view(SHARED_VIEW, data.x_val, data.y_val)


def test_one_sharpness_graph_serves_every_way_of_training_a_network():
    """The view traces the network's graph; an SGD, momentum or clipped run at another batch size
    of the same network finds it traced; a wider network or one with batch norm is another graph."""
    from gradviz.training.sharpness_graph import SHARPNESS_GRAPHS, sharpness_traced

    traced_by_the_view(make_dataset(n_train=16, n_val=16))
    assert all(sharpness_traced(run) for run in SHARED_RUNS) and len(SHARPNESS_GRAPHS.values_by_recency()) == 1
    assert not sharpness_traced(SHARED_VIEW.replace(width=16))
    assert not sharpness_traced(SHARED_VIEW.replace(batch_norm=True))


def test_a_sharpness_graph_larger_than_its_budget_is_not_kept_but_a_run_traces_it_once(monkeypatch):
    from gradviz.training.sharpness_graph import SHARPNESS_GRAPHS, sharpness_traced
    from gradviz.training.steps import CompiledSteps, clear_step_graphs

    monkeypatch.setenv("GRADVIZ_CACHE_MB", "1")  # half a MB for sharpness graphs: none fits
    clear_step_graphs()
    data = make_dataset(n_train=16, n_val=16)
    run = SHARED_RUNS[1]
    compiled = CompiledSteps(build_model(run), run, data.x_train, data.y_train)
    first = compiled.sharpness(data.x_val, data.y_val, seed=0)
    graph = compiled._sharpness_graph
    assert compiled.sharpness(data.x_val, data.y_val, seed=0) == first and compiled._sharpness_graph is graph
    assert graph.traced and not sharpness_traced(run) and SHARPNESS_GRAPHS.values_by_recency() == []


def test_the_view_measures_eagerly_where_the_graph_could_not_be_kept_and_a_run_measures_its_own(monkeypatch):
    from gradviz.serving.lru import cache_sizes
    from gradviz.signal import sharpness
    from gradviz.training.sharpness_graph import sharpness_traced

    data = make_dataset(n_train=16, n_val=16)
    traced_by_the_view(data)
    assert cache_sizes()["sharpness graphs"] > 0  # the server log's line counts them
    monkeypatch.setenv("GRADVIZ_CACHE_MB", "1")
    bigger = SHARED_VIEW.replace(width=12, seed=41)
    found = sharpness.sharpness_for_view(bigger, data.x_val, data.y_val)
    assert not found.by_graph and not sharpness_traced(bigger)
    assert sharpness.view_lambda(bigger, data.x_val, data.y_val) is None  # not the run's computation
    oracle = measure_sharpness(bigger, data.x_val, data.y_val, iterations=80, tolerance=1e-7)
    assert found.lambda_max == pytest.approx(oracle.lambda_max, rel=0.05)


def test_a_shared_sharpness_graph_measures_each_runs_own_starting_weights():
    """Traced from the view's model, called by a run of another seed and initializer: it gets its
    own weights' top eigenvalue (the full Hessian the oracle; the batch-norm case is below), and
    no second graph is traced."""
    from gradviz.training.sharpness_graph import SHARPNESS_GRAPHS
    from gradviz.training.steps import CompiledSteps

    data = make_dataset(n_train=16, n_val=16)
    traced_by_the_view(data)
    run = SHARED_RUNS[0]
    compiled = CompiledSteps(build_model(run), run, data.x_train, data.y_train)
    top = full_hessian_eigenvalues(run, data.x_val, data.y_val)[-1]
    for seed in (0, 1):  # two Lanczos starts
        assert compiled.sharpness(data.x_val, data.y_val, seed=seed, steps=20) == pytest.approx(top, rel=1e-3)
    assert len(SHARPNESS_GRAPHS.values_by_recency()) == 1


def test_trainings_eight_lanczos_steps_agree_with_long_power_iteration_on_a_default_mlp(real_data_or_skip):
    from gradviz.data import PROBE_IMAGES, probe_batch
    from gradviz.training.steps import SHARPNESS_STEPS, CompiledSteps

    x, y, _ = probe_batch(PROBE_IMAGES)
    # A Ritz value never exceeds the top eigenvalue; with batch norm the top ones cluster and 8
    # steps fall short by ~5 %.
    cases = ((RunConfig(optimizer="sgd"), 0.01), (RunConfig(optimizer="sgd", batch_norm=True, seed=2), 0.1))
    for config, shortfall in cases:
        oracle = measure_sharpness(config, x, y, iterations=200, tolerance=1e-6).lambda_max
        compiled = CompiledSteps(build_model(config), config, x, y)
        found = compiled.sharpness(x, y, config.seed, steps=SHARPNESS_STEPS)
        assert (1 - shortfall) * oracle <= found <= oracle * 1.001


def test_the_initial_weights_snapshot_does_not_move_when_training_does():
    """Step 0's λ is measured on a second thread while training runs: on a snapshot of the weights."""
    from gradviz.training.steps import CompiledSteps

    data = make_dataset(n_train=64, n_val=16)
    config = RunConfig(depth=2, width=16, optimizer="sgd", learning_rate=0.5, batch_norm=True, batch_size=16)
    compiled = CompiledSteps(build_model(config), config, data.x_train, data.y_train)
    trainable, moving = compiled.weights_now()
    before = [w.numpy().copy() for w in trainable + moving]
    compiled.chunk(tf.range(64), tf.constant(0), tf.constant(4)).numpy()
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, trainable + moving))
    assert not any(np.array_equal(b, v.numpy()) for b, v in zip(before, compiled.state.trainable))


def test_a_runs_lambda_at_step_0_is_the_views_number_for_the_same_start(real_data_or_skip, monkeypatch):
    """After the At-initialization view (the app's probe images) measured a starting point, an SGD
    run from it takes that number instead of measuring again; without the view the run measures
    the same value itself (same graph, weights, seed and steps)."""
    from gradviz.data import PROBE_IMAGES, probe_batch
    from gradviz.signal import sharpness
    from gradviz.training import train as training

    data = real_data_or_skip(512)
    config = RunConfig(depth=2, width=16, optimizer="sgd", learning_rate=0.05, train_size=512, epochs=1, seed=31)
    sharpness.forget_view_sharpness()
    measured_alone = training.train(config, data).sharpness
    x, y, _ = probe_batch(PROBE_IMAGES)
    view = sharpness.sharpness_for_view(config.replace(learning_rate=0.3), x, y)  # another step: same start
    calls = []
    real = training._measured
    monkeypatch.setattr(training, "_measured", lambda *args: calls.append(args) or real(*args))
    after_view = training.train(config, data).sharpness
    assert len(calls) == 1  # only the end of the run was measured
    assert after_view[0, 1] == view.lambda_max
    assert measured_alone[0, 1] == pytest.approx(view.lambda_max, rel=1e-5)
    np.testing.assert_allclose(after_view[1], measured_alone[1], rtol=1e-5)
