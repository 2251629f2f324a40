"""Plain helpers for tests: where things are, tiny generated datasets, what Markdown shows."""

import re
from pathlib import Path

import numpy as np

from gradviz.data import Dataset

ROOT = Path(__file__).resolve().parents[2]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


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
