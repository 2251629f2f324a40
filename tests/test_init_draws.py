"""Kept unit draws: every kernel equals the Keras initializer's bit for bit, a change of scale
re-uses the draw, and the byte budget drops the least recently used."""

import numpy as np
import pytest

from gradviz.config import INITIALIZERS, RunConfig
from gradviz.serving.lru import CacheBudget
from gradviz.training.init_draws import DRAWS, DrawCache, initial_kernel
from gradviz.training.models import make_initializer
from gradviz.training.tf_setup import tf

SHAPES = [(784, 64), (64, 64), (64, 10), (10, 300), (3, 3, 1, 16)]


def scaled(name: str) -> RunConfig:
    """`name` with a σ and a gain that are not the defaults, so the scale really is applied."""
    return RunConfig(initializer=name, init_std=0.37, init_gain=1.3)


@pytest.mark.parametrize("name", INITIALIZERS)
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_equals_keras_initializer_bit_for_bit(name, shape):
    config = scaled(name)
    expected = np.asarray(make_initializer(config, 4)(shape, "float32"))
    for _ in range(2):  # drawn, then from the kept draw
        assert np.array_equal(np.asarray(initial_kernel(config, 4, shape)), expected)


def test_a_change_of_scale_reuses_the_draw():
    DRAWS.clear()
    kernels = [initial_kernel(RunConfig(initializer="random_normal", init_std=s), 2, (64, 64)) for s in (0.5, 1.0, 2.0)]
    assert (DRAWS.misses, DRAWS.hits) == (1, 2)
    np.testing.assert_allclose(np.asarray(kernels[2]), 4 * np.asarray(kernels[0]), rtol=1e-6)
    initial_kernel(RunConfig(initializer="he_normal"), 2, (64, 64))
    initial_kernel(RunConfig(initializer="glorot_normal"), 2, (64, 64))  # same truncated-normal draw
    assert (DRAWS.misses, DRAWS.hits) == (2, 3)


def test_another_seed_or_layer_draws_again():
    DRAWS.clear()
    a = initial_kernel(RunConfig(seed=1), 2, (32, 32))
    b = initial_kernel(RunConfig(seed=2), 2, (32, 32))
    c = initial_kernel(RunConfig(seed=1), 3, (32, 32))
    assert DRAWS.misses == 3
    assert not np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))


def test_budget_drops_least_recently_used():
    cache = DrawCache(budget=CacheBudget(2 * 16 * 16 * 4))  # two 16 x 16 float32 draws

    def draw():
        return tf.zeros((16, 16))

    for key in ("a", "b", "a", "c"):  # "a" used again, so "b" is the oldest when "c" arrives
        cache.get_or_draw(key, draw)
    assert (cache.misses, cache.hits) == (3, 1)
    cache.get_or_draw("a", draw)
    cache.get_or_draw("b", draw)
    assert (cache.misses, cache.hits) == (4, 2)


def test_draw_larger_than_budget_is_returned_not_kept():
    cache = DrawCache(budget=CacheBudget(100))
    assert cache.get_or_draw("big", lambda: tf.ones((10, 10))).shape == (10, 10)
    cache.get_or_draw("big", lambda: tf.ones((10, 10)))
    assert (cache.misses, cache.hits) == (2, 0)
