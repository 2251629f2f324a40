"""The examples run as a user runs them (a fresh process, real MNIST) and say what they claim."""

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_your_model_example_finds_the_vanishing_gradient_and_writes_run_files(tmp_path, real_data_or_skip):
    real_data_or_skip(2000)  # skips, saying why, where no MNIST is reachable
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "your_model.py"), "--images", "2000",
                           "--epochs", "2", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    sigmoid, relu = done.stdout.split("deep_relu:")
    assert "vanishing" in sigmoid and "`hidden_0`" in sigmoid and "he_normal" in sigmoid
    assert "vanishing" not in relu
    from gradviz import load

    runs = {name: load(tmp_path / f"{name}.gradviz") for name in ("deep_sigmoid", "deep_relu")}
    assert all(r.layers[0] == "hidden_0/kernel" and np.isfinite(r.grad_norm).all() for r in runs.values())
    assert runs["deep_relu"].val_accuracy[-1] > runs["deep_sigmoid"].val_accuracy[-1] + 0.3
