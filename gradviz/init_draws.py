"""Initial kernels as a kept unit draw times a scale, equal bit for bit to Keras' seeded initializers.

The rule: every initializer gradviz offers computes its kernel from a draw that depends only on
the seed and the shape — `z * stddev` (normal, truncated normal), `u * (max - min) + min`
(uniform), `gain * Q` (orthogonal). Drawing is what costs (0.7 s for the 52 M truncated-normal
weights of a 50 x 1024 MLP; the probe itself takes 0.25 s), so the unit draw is kept, least
recently used dropped past a byte budget, and a change of σ, gain, activation or initializer
within a family re-uses it. Numbers only: no model is kept.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import keras
import numpy as np

from gradviz.config import RunConfig
from gradviz.models import make_initializer
from gradviz.tf_setup import tf

BUDGET_BYTES = 256 * 2**20  # the unit draws of one 50 x 1024 MLP (210 MB) fit


class DrawCache:
    """Unit draws by (family, seed, shape); thread-safe; counts hits so tests can see re-use."""

    def __init__(self, budget_bytes: int = BUDGET_BYTES):
        self.budget_bytes = budget_bytes
        self.hits = self.misses = 0
        self._items: OrderedDict[tuple, tf.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple, draw) -> tf.Tensor:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        value = draw()  # outside the lock: another session's probe need not wait for this draw
        size = value.shape.num_elements() * value.dtype.size
        with self._lock:
            if size <= self.budget_bytes and key not in self._items:
                self._items[key] = value
                self._bytes += size
                while self._bytes > self.budget_bytes:
                    _, dropped = self._items.popitem(last=False)
                    self._bytes -= dropped.shape.num_elements() * dropped.dtype.size
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = self.hits = self.misses = 0


DRAWS = DrawCache()


def initial_kernel(config: RunConfig, index: int, shape: tuple[int, ...]) -> tf.Tensor:
    """What make_initializer(config, index)(shape, "float32") returns, from a kept unit draw."""
    init = make_initializer(config, index)
    if isinstance(init, keras.initializers.Orthogonal):
        unit = DRAWS.get(("orthogonal", init.seed, shape),
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
    return DRAWS.get((family, seed, shape), lambda: sample(shape, seed=seed, dtype="float32"))


def _uniform(seed: int, shape: tuple[int, ...], minval: float, maxval: float) -> tf.Tensor:
    unit = DRAWS.get(("uniform", seed, shape), lambda: keras.random.uniform(shape, seed=seed, dtype="float32"))
    return unit * (np.float32(maxval) - np.float32(minval)) + np.float32(minval)  # as TensorFlow computes it, in float32
