"""Plain helpers for tests: where things are, tiny generated datasets, what Markdown shows, a
verdict read off findings."""

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


def verdict_from_findings(expect: str, findings) -> str:
    """The verdict the documented rule gives (docs/diagnosis.md), read off the findings here rather
    than through gradviz.presets.verdict: a problem preset is reproduced when its kind is found at
    warning or worse; a healthy one when nothing is at warning or worse and `healthy` is there."""
    problems = [f for f in findings if f.severity != "info"]
    if expect == "healthy":
        if not problems and any(f.kind == "healthy" for f in findings):
            return "reproduced"
        return "partly" if not problems else "not reproduced"
    if any(f.kind == expect for f in problems):
        return "reproduced"
    return "partly" if any(f.kind == expect for f in findings) else "not reproduced"
