"""The CLI at the server's limits: a config over the memory cap is refused in one line before
TensorFlow or the data load; the last line of defence turns a real out-of-memory error into one
line and exit 2; TensorFlow's start-up lines stay off stderr unless --verbose."""

import json
import os
import resource
import subprocess
import sys

import pytest

from gradviz.serving.settings import MAX_MEMORY_ENV
from support.helpers import ROOT

HUGE_CNN = ["--set", "architecture=cnn", "--set", "depth=50", "--set", "width=1024"]
# Runs the CLI and reports, on stdout, its exit code, peak RSS and whether TensorFlow was imported.
WRAPPER = """
import json, runpy, sys
sys.argv = ["gradviz", *sys.argv[1:]]
try:
    runpy.run_module("gradviz", run_name="__main__")
    code = 0
except SystemExit as exit:
    code = exit.code
# VmHWM, this process's own peak: ru_maxrss carries the forking parent's (pytest's) across exec on Linux.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"code": code, "peak_mb": hwm / 1024, "tensorflow": "tensorflow" in sys.modules}))
"""


def wrapped(*args, env=None, timeout=300):
    done = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.parametrize("command", ["probe", "run"])
def test_a_config_over_the_memory_cap_is_refused_in_one_line_before_tensorflow_loads(command):
    report, stderr = wrapped(command, *HUGE_CNN)
    assert report["code"] == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "needs about" in lines[0] and "800 MB" in lines[0] and MAX_MEMORY_ENV in lines[0]
    assert "The closest config that fits: " in lines[0]
    assert report["peak_mb"] < 1500 and not report["tensorflow"]  # TensorFlow alone takes ~500 MB


def test_the_cap_follows_the_environment():
    report, stderr = wrapped("probe", "--set", "depth=20", "--set", "width=256", env={MAX_MEMORY_ENV: "10"})
    assert report["code"] == 2 and "the cap here is 10 MB" in stderr


def test_a_sweep_with_a_point_over_the_cap_is_refused_before_it_starts():
    report, stderr = wrapped("sweep", "--x", "width=8,1024", "--set", "architecture=cnn", "--set", "depth=20")
    assert report["code"] == 2 and "needs about" in stderr and not report["tensorflow"]


def test_precompute_checks_every_job_before_training_any(tmp_path):
    grid = tmp_path / "grid.txt"
    grid.write_text("depth=2; width=16; train_size=200; epochs=1\narchitecture=cnn; depth=50; width=1024\n")
    report, stderr = wrapped("precompute", "--presets", "none", "--grid", str(grid), "--out", str(tmp_path / "store"))
    assert report["code"] == 2 and "grid.txt:2" in stderr and "needs about" in stderr
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").iterdir())  # nothing trained


def test_precompute_takes_none_for_no_presets(tmp_path):
    grid = tmp_path / "grid.txt"
    grid.write_text("depth=2; width=16; train_size=200; batch_size=100; epochs=1\n")
    done = subprocess.run([sys.executable, "-m", "gradviz", "precompute", "--presets", "none", "--grid", str(grid),
                           "--out", str(tmp_path / "store")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()  # the grid's run, then (it does not learn) its fix search's trials
    assert lines[0].startswith("grid.txt:1") and "trained" in lines[0]
    assert len(list((tmp_path / "store").glob("*.npz"))) == done.stdout.count(" trained ")


def test_tensorflow_start_up_lines_stay_off_stderr_unless_verbose():
    quiet = subprocess.run([sys.executable, "-m", "gradviz", "probe", "--set", "depth=2", "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    loud = subprocess.run([sys.executable, "-m", "gradviz", "probe", "--set", "depth=2", "--json", "--verbose"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == loud.returncode == 0
    assert json.loads(quiet.stdout)["layers"] == json.loads(loud.stdout)["layers"]
    assert quiet.stderr == ""
    assert "oneDNN" in loud.stderr or "cpu_feature_guard" in loud.stderr or "absl" in loud.stderr


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))


def test_a_real_out_of_memory_error_is_one_line_and_exit_2():
    """With the cap lifted, a config too big for the process (an address space of 4 GB here)
    meets TensorFlow's ResourceExhaustedError: the CLI still answers in one line."""
    env = {**os.environ, MAX_MEMORY_ENV: str(10**9)}
    done = subprocess.run([sys.executable, "-m", "gradviz", "probe", "--set", "architecture=cnn", "--set", "depth=6",
                           "--set", "width=1024"], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=_limit_address_space)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert done.stderr.startswith("error: out of memory (") and "Traceback" not in done.stderr
