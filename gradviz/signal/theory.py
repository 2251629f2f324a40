"""Mean-field signal propagation at initialization (Poole et al. 2016; Schoenholz et al. 2017).

The rule, for a plain MLP whose weights have fan_in x Var(w) = sigma_w^2 and zero biases: a layer's
pre-activations are Gaussian with variance q, and

    q_1     = sigma_w1^2 * E[x_i^2]                       (the input's mean squared pixel)
    q_(l+1) = sigma_w^2 * E_(z~N(0, q_l))[phi(z)^2]        (forward: the signal's variance)
    chi_l   = sigma_w(l+1)^2 * E_(z~N(0, q_l))[phi'(z)^2]  (backward: the squared gradient's factor)

Backpropagation multiplies the squared gradient reaching layer l by chi_l, so the gradient norm
changes by sqrt(chi) per layer: below 1 it vanishes, above 1 it explodes, at 1 (criticality) it
stays. Expectations over the Gaussian are computed by quadrature (see gaussian_mean). Pure
numpy: no TensorFlow.

Where it stops applying: it describes infinitely wide layers at initialization. Finite width adds
fluctuations of order 1/sqrt(width); training moves the weights away from their random start;
batch norm (statistics of the batch), residual additions, convolutions and recurrence are
outside the recursion above (`not_covered` says why for each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradviz.architecture import CLASSES, INPUT_PIXELS
from gradviz.config import RunConfig

_LEGENDRE_NODES, _LEGENDRE_WEIGHTS = np.polynomial.legendre.leggauss(16)
_erf = np.vectorize(math.erf)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
LEAKY_SLOPE = 0.2  # Keras 3's default negative_slope for "leaky_relu"


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow


def _gelu(z):
    return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))


def _gelu_slope(z):
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0))) + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


# activation -> (phi, phi'), numpy, elementwise; the same functions Keras applies.
ACTIVATIONS = {
    "linear": (lambda z: z, lambda z: np.ones_like(z)),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z > 0, z, LEAKY_SLOPE * z), lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE)),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
            lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0)))),
    "selu": (lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0.0))),
             lambda z: SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0.0)))),
    "gelu": (_gelu, _gelu_slope),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "softsign": (lambda z: z / (1.0 + np.abs(z)), lambda z: 1.0 / (1.0 + np.abs(z)) ** 2),
}


def gaussian_mean(f, q: float) -> float:
    """E[f(z)] for z ~ N(0, q) (q = 0: f(0)), by Gauss-Legendre quadrature on panels.

    Panel edges sit at 0 (ReLU's kink, SELU's jump in slope) and double outwards from
    min(0.25, sqrt(q)/4) to 12 sqrt(q), 16 nodes each: both the activation's features at |z| ~ 1
    and the Gaussian's width sqrt(q) are resolved. Plain Gauss-Hermite quadrature, the textbook
    choice, spaces its nodes ~0.28 sqrt(q) apart near 0 and stepped over them: tanh'^2 at q = 256
    came out 4x too small and softsign'^2 at q = 0.9 4 % off (it agrees with this rule to 1e-9
    on smooth activations at q <= 1; tests/test_theory.py checks this rule against it, against
    closed forms and against Monte Carlo)."""
    if q <= 0:
        return float(np.asarray(f(np.zeros(1)))[0])
    z, w = _panel_rule(math.sqrt(q))
    density = np.exp(-z * z / (2.0 * q)) / math.sqrt(2.0 * math.pi * q)
    return float(np.dot(w * density, f(z)))


def _panel_rule(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights on [-12 scale, 12 scale] (see gaussian_mean)."""
    edges = [0.0, min(0.25, scale / 4.0)]
    while edges[-1] < 12.0 * scale:
        edges.append(2.0 * edges[-1])
    edges = np.asarray(edges)
    left, right = edges[:-1], edges[1:]
    half, middle = (right - left) / 2.0, (right + left) / 2.0
    z = (middle[:, None] + half[:, None] * _LEGENDRE_NODES[None, :]).ravel()
    w = (half[:, None] * _LEGENDRE_WEIGHTS[None, :]).ravel()
    return np.concatenate([-z[::-1], z]), np.concatenate([w[::-1], w])


def weight_scale(config: RunConfig, fan_in: int, fan_out: int) -> float:
    """sigma_w^2 = fan_in x Var(w) of one kernel under the config's initializer (Keras' rules)."""
    name = config.initializer
    if name == "zeros":
        return 0.0
    if name in ("random_normal", "random_uniform"):  # gradviz gives random_uniform the same std
        return fan_in * config.init_std ** 2
    if name == "orthogonal":  # orthonormal rows or columns, scaled by the gain
        return config.init_gain ** 2 * fan_in / max(fan_in, fan_out)
    if name.startswith("glorot"):
        return 2.0 * fan_in / (fan_in + fan_out)
    if name.startswith("he"):
        return 2.0
    if name == "lecun_normal":
        return 1.0
    raise ValueError(f"no variance rule for initializer {name!r}")


def not_covered(config: RunConfig) -> str | None:
    """Why the mean-field recursion does not describe this config, or None if it does."""
    if config.architecture == "cnn":
        return "the recursion here is for plain MLPs; convolutions share each kernel across positions"
    if config.architecture != "mlp":
        return "the recursion here is for plain MLPs; a recurrent cell applies one matrix at every time step"
    if config.batch_norm:
        return "batch norm rescales every layer by the batch's own statistics, which the recursion leaves out"
    if config.residual:
        return "residual additions mix each block's input into its output; this recursion is for plain layer stacks"
    if config.activation not in ACTIVATIONS:
        return f"no mean-field rule for the activation {config.activation!r}"
    return None


@dataclass(frozen=True)
class Prediction:
    """What the theory predicts for each kernel layer of a plain MLP (input -> output)."""

    preact_var: list[float]  # q per hidden layer, then the logits' variance
    act_second_moment: list[float]  # E[phi(z)^2] per hidden layer
    chi: list[float]  # per hidden layer l: the factor on the squared gradient from layer l+1 to l
    grad_norm_relative: list[float]  # per kernel, the output kernel's gradient norm = 1

    @property
    def hidden_chi(self) -> list[float]:
        """chi between hidden layers (the output kernel's own fan-out differs); all of it for depth 1."""
        return self.chi[:-1] or self.chi

    @property
    def grad_factor_per_layer(self) -> float:
        """sqrt(chi) as a geometric mean between hidden layers: the gradient's factor per layer."""
        chi = np.asarray(self.hidden_chi)
        if np.any(chi <= 0):
            return 0.0
        return float(np.exp(0.5 * np.mean(np.log(chi))))

    @property
    def delta_ratio_first_last(self) -> float:
        """Predicted |dL/dz| at the first hidden layer over the last: sqrt of chi's product between them."""
        return float(np.sqrt(np.prod(self.chi[:-1]))) if len(self.chi) > 1 else 1.0

    @property
    def ratio_first_last(self) -> float:
        """Predicted ||grad first kernel|| / ||grad output kernel||."""
        return self.grad_norm_relative[0]


def predict(config: RunConfig, input_second_moment: float) -> Prediction | None:
    """The mean-field prediction for `config` (None where it does not apply, see not_covered).
    `input_second_moment` is the mean squared input pixel, E[x_i^2]."""
    if not_covered(config) is not None:
        return None
    phi, slope = ACTIVATIONS[config.activation]
    width, depth = config.width, config.depth
    fans = [(INPUT_PIXELS, width)] + [(width, width)] * (depth - 1) + [(width, CLASSES)]
    scales = [weight_scale(config, fan_in, fan_out) for fan_in, fan_out in fans]
    q, preacts, moments, chis = scales[0] * input_second_moment, [], [], []
    for layer in range(depth):
        preacts.append(q)
        moment = gaussian_mean(lambda z: phi(z) ** 2, q)
        moments.append(moment)
        chis.append(scales[layer + 1] * gaussian_mean(lambda z: slope(z) ** 2, q))
        q = scales[layer + 1] * moment
    preacts.append(q)  # the logits
    # ||dL/dW_l|| ~ ||h_(l-1)|| ||delta_l||; ||h||^2 = units x E[phi^2]; ||delta_l||^2 = chi_l ||delta_(l+1)||^2.
    inputs = [INPUT_PIXELS * input_second_moment] + [width * m for m in moments]
    backward = np.cumprod(np.asarray(chis)[::-1])[::-1].tolist() + [1.0]  # ||delta_l||^2 / ||delta_out||^2
    last = inputs[-1]
    relative = [math.sqrt(a / last * d) if last > 0 else 0.0 for a, d in zip(inputs, backward)]
    return Prediction(preacts, moments, chis, relative)


def law(config: RunConfig, prediction: Prediction | None) -> str:
    """One sentence a learner can read: what the theory says this network does to its signals."""
    reason = not_covered(config)
    if reason is not None:
        return f"No mean-field prediction here: {reason}. The measured points are still real."
    if config.initializer == "zeros":
        return ("All weights start at 0: every unit of a layer computes the same value and gets the same "
                "gradient (the hidden kernels get none at all), so nothing breaks the symmetry and the layers "
                "cannot learn different features.")
    factor, depth = prediction.grad_factor_per_layer, config.depth
    forward = forward_factor_per_layer(prediction)
    trend = "shrinks" if factor < 0.95 else "grows" if factor > 1.05 else "keeps its size"
    sentence = (f"χ = σ_w²·E[φ′(z)²] ≈ {np.mean(prediction.hidden_chi):.2g}: going back through a layer the gradient "
                f"{trend} (×{factor:.2g}), going forward the signal's size changes ×{forward:.2g} per layer. "
                f"A kernel's gradient is its input times the gradient reaching it: over {depth} "
                f"layer{'s' * (depth != 1)} the first kernel's is "
                f"predicted at {prediction.ratio_first_last:.1e} of the output kernel's")
    if factor < 0.9 and forward < 0.9:
        sentence += " - both fade, so that ratio looks fine while every layer's gradient is small"
    return sentence + "."


def forward_factor_per_layer(prediction: Prediction) -> float:
    """Predicted factor on the pre-activations' RMS per hidden layer (geometric mean)."""
    q = prediction.preact_var[:-1]
    if len(q) < 2 or q[0] <= 0:
        return 1.0 if len(q) < 2 else 0.0
    return float((q[-1] / q[0]) ** (0.5 / (len(q) - 1)))


def critical_init_std(config: RunConfig, input_second_moment: float) -> float | None:
    """The random_normal / random_uniform std that puts this activation, width and depth at
    criticality, chi = 1 (the predicted gradient factor per layer, as a geometric mean over the
    layers, is 1): bisection on log std. None if no std in range gets there (sigmoid, whose slope
    is at most 1/4, saturates before chi reaches 1)."""
    def log_factor(log_std: float) -> float:
        std = min(max(math.exp(log_std), 1e-4), 10.0)  # exp(log(10)) may round just past the range
        p = predict(config.replace(initializer="random_normal", init_std=std), input_second_moment)
        return math.log(max(p.grad_factor_per_layer, 1e-300))

    low, high = math.log(1e-4), math.log(10.0)
    if not_covered(config) is not None or log_factor(low) > 0 or log_factor(high) < 0:
        return None
    for _ in range(40):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if log_factor(middle) < 0 else (low, middle)
    found = math.exp(0.5 * (low + high))
    return found if abs(log_factor(math.log(found))) < 0.01 else None
