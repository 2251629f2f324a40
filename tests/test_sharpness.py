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
