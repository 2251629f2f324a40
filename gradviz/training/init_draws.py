"""Initial kernels as a kept unit draw times a scale, equal bit for bit to Keras' seeded initializers.

The rule: every initializer gradviz offers computes its kernel from a draw that depends only on
the seed and the shape — `z * stddev` (normal, truncated normal), `u * (max - min) + min`
(uniform), `gain * Q` (orthogonal). Drawing is what costs (0.7 s for the 52 M truncated-normal
weights of a 50 x 1024 MLP; the probe itself takes 0.25 s), so the unit draw is kept, least
recently used dropped past the process's cache budget, and a change of σ, gain, activation or initializer
within a family re-uses it. Numbers only: no model is kept.
"""

from __future__ import annotations

import math

import numpy as np

from gradviz.config import RunConfig
from gradviz.serving.lru import BoundedLRU
from gradviz.training.models import make_initializer
from gradviz.training.tf_setup import keras, tf


class DrawCache(BoundedLRU[tf.Tensor]):
    """Unit draws by (family, seed, shape), counted against the process's cache budget (the unit
    draws of a 50 x 1024 MLP take 210 MB); counts hits so tests can see re-use."""

    def __init__(self, **budget):
        super().__init__("initial draws", lambda t: t.shape.num_elements() * t.dtype.size, **budget)

    def get_or_draw(self, key: tuple, draw) -> tf.Tensor:
        """The kept draw, or draw() kept (drawn outside the lock: another session's probe need
        not wait for it)."""
        found = self.get(key)
        return found if found is not None else self.put(key, draw())


DRAWS = DrawCache()


def initial_kernel(config: RunConfig, index: int, shape: tuple[int, ...]) -> tf.Tensor:
    """What make_initializer(config, index)(shape, "float32") returns, from a kept unit draw."""
    init = make_initializer(config, index)
    if isinstance(init, keras.initializers.Orthogonal):
        unit = DRAWS.get_or_draw(("orthogonal", init.seed, shape),
                         lambda: keras.initializers.Orthogonal(gain=1.0, seed=init.seed)(shape, "float32"))
        return np.float32(init.gain) * unit
    if isinstance(init, keras.initializers.RandomNormal):
        return _normal("normal", init.seed, shape) * np.float32(init.stddev) + np.float32(init.mean)
    if isinstance(init, keras.initializers.RandomUniform):
        return _uniform(init.seed, shape, init.minval, init.maxval)
    if isinstance(init, keras.initializers.VarianceScaling):
        return _variance_scaling(init, shape)
    return init(shape, "float32")  # zeros: nothing to draw


def _variance_scaling(init: keras.initializers.VarianceScaling, shape: tuple[int, ...]) -> tf.Tensor:
    """Keras' VarianceScaling: scale / fan (fan_in, fan_out or their mean), as a truncated normal
    (whose std is restored by dividing by 0.8796...) or a uniform of that variance."""
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    fan_in, fan_out = (shape[-2] * receptive, shape[-1] * receptive) if len(shape) > 1 else (shape[0], shape[0])
    fan = {"fan_in": fan_in, "fan_out": fan_out}.get(init.mode, (fan_in + fan_out) / 2.0)
    scale = init.scale / max(1.0, fan)
    if init.distribution == "truncated_normal":
        return _normal("truncated_normal", init.seed, shape) * np.float32(math.sqrt(scale) / 0.87962566103423978)
    if init.distribution == "untruncated_normal":
        return _normal("normal", init.seed, shape) * np.float32(math.sqrt(scale))
    limit = math.sqrt(3.0 * scale)
    return _uniform(init.seed, shape, -limit, limit)


def _normal(family: str, seed: int, shape: tuple[int, ...]) -> tf.Tensor:
    sample = keras.random.truncated_normal if family == "truncated_normal" else keras.random.normal
    return DRAWS.get_or_draw((family, seed, shape), lambda: sample(shape, seed=seed, dtype="float32"))


def _uniform(seed: int, shape: tuple[int, ...], minval: float, maxval: float) -> tf.Tensor:
    unit = DRAWS.get_or_draw(("uniform", seed, shape), lambda: keras.random.uniform(shape, seed=seed, dtype="float32"))
    # as TensorFlow computes it, in float32
    return unit * (np.float32(maxval) - np.float32(minval)) + np.float32(minval)
