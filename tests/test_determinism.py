"""Same config and seed -> the same numbers, in one process and across processes."""

import json
import subprocess
import sys

import numpy as np

from gradviz.config import RunConfig
from gradviz.training.train import train
from support.helpers import ROOT

TINY = ["--set", "depth=3", "--set", "width=32", "--set", "train_size=512", "--set", "epochs=2", "--set", "seed=5"]


def test_two_processes_give_identical_runs(tmp_path, real_data_or_skip):
    real_data_or_skip(512)
    results = []
    for i in range(2):
        done = subprocess.run([sys.executable, "-m", "gradviz", "run", *TINY, "--save", str(tmp_path / f"r{i}"),
                               "--json"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout))
    assert results[0]["final"] == results[1]["final"]
    from gradviz.result import RunResult

    a, b = RunResult.load(tmp_path / "r0"), RunResult.load(tmp_path / "r1")
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)
    np.testing.assert_allclose(a.grad_norm, b.grad_norm, rtol=1e-6)


def test_a_second_run_in_the_same_process_matches(tiny_data):
    config = RunConfig(architecture="lstm", width=8, batch_size=32, train_size=256, epochs=1, seed=2)
    a, b = train(config, tiny_data), train(config, tiny_data)
    np.testing.assert_allclose(a.time_grad, b.time_grad, rtol=1e-6)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)
