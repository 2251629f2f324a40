"""Shared fixtures: where MNIST is, tiny generated datasets, and one TensorFlow import per process."""

import os

import pytest

from support.helpers import SHARED_MNIST, make_dataset

# On this project's machines there is no internet: point the loader at the offline copy of the
# MNIST test split. On a user's machine without it, the loader's own order (Keras cache, download)
# applies, and tests that need real data skip if none is reachable.
if SHARED_MNIST.is_dir() and not os.environ.get("GRADVIZ_DATA_DIR"):
    os.environ["GRADVIZ_DATA_DIR"] = str(SHARED_MNIST)


@pytest.fixture
def tiny_data():
    return make_dataset()


@pytest.fixture(scope="session")
def real_data_or_skip():
    """A loader for real MNIST; skips (saying why) if this machine has none."""
    from gradviz.data import DataUnavailable, load_dataset

    def load(train_size: int):
        try:
            return load_dataset(train_size)
        except DataUnavailable as error:
            pytest.skip(f"real MNIST not available here: {error}")

    return load


_TRAINED: dict = {}


@pytest.fixture(scope="session")
def trained(real_data_or_skip):
    """train(config) on real MNIST, once per config per test session (several tests read the same runs)."""
    from gradviz.training.train import train

    def run(config):
        key = config.cache_key()
        if key not in _TRAINED:
            _TRAINED[key] = train(config, real_data_or_skip(config.train_size))
        return _TRAINED[key]

    return run
