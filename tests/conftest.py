"""Shared fixtures: where MNIST is, tiny generated datasets, and one TensorFlow import per process."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from gradviz.data import Dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"

# On this project's machines there is no internet: point the loader at the offline copy of the
# MNIST test split. On a user's machine without it, the loader's own order (Keras cache, download)
# applies, and tests that need real data skip if none is reachable.
if SHARED_MNIST.is_dir() and not os.environ.get("GRADVIZ_DATA_DIR"):
    os.environ["GRADVIZ_DATA_DIR"] = str(SHARED_MNIST)


def displayed(markdown: str) -> str:
    """What a reader sees of Markdown source whose punctuation was backslash-escaped (gradviz.ui.text.literal)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def make_dataset(n_train: int = 256, n_val: int = 128, seed: int = 0) -> Dataset:
    """Tiny learnable data: the label is the brightest of ten 28-pixel bands, plus noise."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = rng.integers(0, 10, n).astype(np.int32)
        x = rng.random((n, 28, 28), dtype=np.float32) * 0.3
        for i, label in enumerate(y):
            x[i, label * 2:label * 2 + 3, :] += 0.7
        return np.clip(x, 0, 1), y

    x_train, y_train = draw(n_train)
    x_val, y_val = draw(n_val)
    return Dataset(x_train, y_train, x_val, y_val, "generated", "test", "test", n_train)


@pytest.fixture
def tiny_data() -> Dataset:
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
    from gradviz.train import train

    def run(config):
        key = config.cache_key()
        if key not in _TRAINED:
            _TRAINED[key] = train(config, real_data_or_skip(config.train_size))
        return _TRAINED[key]

    return run
