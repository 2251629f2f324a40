"""Mean-field theory: the quadrature against closed forms and Monte Carlo, the weight variances
against Keras' own initializers, and the prediction against measurements on wide random MLPs."""

import math

import numpy as np
import pytest

from gradviz.config import ACTIVATIONS, INITIALIZERS, RunConfig
from gradviz.signal import theory
from gradviz.training.models import make_initializer


def moments(activation: str, q: float) -> tuple[float, float]:
    phi, slope = theory.ACTIVATIONS[activation]
    return theory.gaussian_mean(lambda z: phi(z) ** 2, q), theory.gaussian_mean(lambda z: slope(z) ** 2, q)


@pytest.mark.parametrize("q", [1e-6, 0.3, 1.0, 7.0, 1e4])
def test_quadrature_matches_closed_forms(q):
    assert moments("linear", q) == pytest.approx((q, 1.0), rel=1e-9)  # chi = sigma_w^2
    assert moments("relu", q) == pytest.approx((q / 2, 0.5), rel=1e-9)  # chi = sigma_w^2 / 2
    a = theory.LEAKY_SLOPE
    assert moments("leaky_relu", q) == pytest.approx(((1 + a * a) * q / 2, (1 + a * a) / 2), rel=1e-9)


def hermite_mean(f, q: float) -> float:
    """E[f(z)] for z ~ N(0, q) by plain Gauss-Hermite quadrature (accurate for smooth f, q <= 1)."""
    nodes, weights = np.polynomial.hermite.hermgauss(120)
    return float(np.dot(weights, f(math.sqrt(2.0 * q) * nodes)) / math.sqrt(math.pi))


def test_quadrature_matches_small_signal_limits_and_gauss_hermite():
    """Near q = 0 a smooth activation is its tangent: tanh' -> 1, sigmoid' -> 1/4, gelu' -> 1/2.
    On smooth activations at q <= 1 the panel rule agrees with plain Gauss-Hermite."""
    assert moments("tanh", 1e-8)[1] == pytest.approx(1.0, rel=1e-6)
    assert moments("sigmoid", 1e-8)[1] == pytest.approx(1 / 16, rel=1e-6)
    assert moments("gelu", 1e-8)[1] == pytest.approx(1 / 4, rel=1e-6)
    for name in ("tanh", "sigmoid", "gelu", "linear"):
        phi, slope = theory.ACTIVATIONS[name]
        for q in (0.01, 0.5, 1.0):
            for f in (lambda z: phi(z) ** 2, lambda z: slope(z) ** 2):
                assert theory.gaussian_mean(f, q) == pytest.approx(hermite_mean(f, q), rel=1e-8)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_quadrature_matches_monte_carlo_for_every_activation(activation):
    rng = np.random.default_rng(7)
    phi, slope = theory.ACTIVATIONS[activation]
    for q in (0.05, 0.8, 4.0, 60.0):
        z = rng.standard_normal(400_000) * math.sqrt(q)
        for f in (lambda z: phi(z) ** 2, lambda z: slope(z) ** 2):
            assert theory.gaussian_mean(f, q) == pytest.approx(np.mean(f(z)), rel=0.02), (activation, q)


@pytest.mark.parametrize("initializer", [i for i in INITIALIZERS])
def test_weight_scale_is_what_keras_initializers_draw(initializer):
    """sigma_w^2 = fan_in x Var(w), measured on kernels drawn by the same Keras initializers."""
    config = RunConfig(initializer=initializer, init_std=0.07, init_gain=1.3)
    for fan_in, fan_out in ((784, 256), (256, 256), (256, 1024), (256, 10)):
        kernel = np.asarray(make_initializer(config, 3)((fan_in, fan_out), "float32"), dtype=np.float64)
        measured = fan_in * float(np.mean(kernel ** 2))
        noise = 4 * math.sqrt(2 / kernel.size)  # four standard errors of a sample variance
        assert measured == pytest.approx(theory.weight_scale(config, fan_in, fan_out), rel=noise, abs=1e-12)


def test_critical_std_puts_chi_at_one():
    for activation, expected in (("relu", math.sqrt(2 / 256)), ("linear", 1 / 16)):
        config = RunConfig(depth=10, width=256, activation=activation)
        assert theory.critical_init_std(config, 0.1) == pytest.approx(expected, rel=1e-3)
    tanh = RunConfig(depth=10, width=256, activation="tanh")
    std = theory.critical_init_std(tanh, 0.1)
    predicted = theory.predict(tanh.replace(initializer="random_normal", init_std=std), 0.1)
    assert predicted.grad_factor_per_layer == pytest.approx(1.0, abs=0.01)


def test_where_the_theory_does_not_apply_it_says_so():
    for config in (RunConfig(batch_norm=True), RunConfig(residual=True), RunConfig(architecture="cnn"),
                   RunConfig(architecture="gru")):
        assert theory.predict(config, 0.1) is None
        reason = theory.not_covered(config)
        assert reason and reason in theory.law(config, None)


def test_the_law_compounds_the_factor_over_depth():
    config = RunConfig(depth=10, width=256, activation="sigmoid", initializer="glorot_uniform")
    prediction = theory.predict(config, 0.1)
    assert prediction.ratio_first_last < 1e-5  # sigmoid's slope <= 1/4, ten times over
    law = theory.law(config, prediction)
    assert f"×{prediction.grad_factor_per_layer:.2g}" in law and f"{prediction.ratio_first_last:.1e}" in law
    he_2015 = RunConfig(depth=30, width=256, activation="relu", initializer="glorot_uniform")
    assert "both fade" in theory.law(he_2015, theory.predict(he_2015, 0.1))
