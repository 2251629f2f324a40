"""Offline talk mode: `prefetch` and the app with the network unreachable (a closed local proxy
port), each in a fresh process with its own Keras cache and results store."""

import json
import os
import subprocess
import sys

import numpy as np

from support.helpers import ROOT, displayed

CLOSED = "http://127.0.0.1:9"  # nothing listens there: every download is refused at once

PAGE = """
import json, sys
from streamlit.testing.v1 import AppTest
from gradviz.serving.results import COORDINATOR
at = AppTest.from_file(sys.argv[1], default_timeout=300)
for key, value in json.loads(sys.argv[2]).items():
    at.query_params[key] = value
at.run()
print(json.dumps({"exceptions": [str(e.value) for e in at.exception], "errors": [e.value for e in at.error],
                  "headings": [m.value for m in at.markdown], "charts": len(at.get("vega_lite_chart")),
                  "trainings": COORDINATOR.trainings_started}))
"""


def offline_env(tmp_path) -> dict:
    """No GRADVIZ_DATA_DIR, an empty Keras home and store of our own, no network."""
    env = {k: v for k, v in os.environ.items() if k != "GRADVIZ_DATA_DIR"}
    env.update(KERAS_HOME=str(tmp_path / "keras"), GRADVIZ_STORE_DIR=str(tmp_path / "store"),
               HTTPS_PROXY=CLOSED, HTTP_PROXY=CLOSED, https_proxy=CLOSED, http_proxy=CLOSED, NO_PROXY="", no_proxy="")
    return env


def gradviz_cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradviz", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def open_page(query: dict, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", PAGE, str(ROOT / "app.py"), json.dumps(query)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_prefetch_without_network_says_what_to_do_and_stores_nothing(tmp_path):
    done = gradviz_cli(["prefetch", "--presets", "exploding-linear"], offline_env(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the download failed" in done.stderr and "GRADVIZ_DATA_DIR" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()


def test_prefetch_checks_preset_names_before_downloading(tmp_path):
    done = gradviz_cli(["prefetch", "--presets", "no-such-preset"], offline_env(tmp_path))
    assert done.returncode == 2 and "preset='no-such-preset' is not valid" in done.stderr
    assert "download" not in done.stdout + done.stderr


def test_the_page_without_data_or_network_says_what_to_run(tmp_path):
    page = open_page({"preset": "exploding-linear"}, offline_env(tmp_path))
    assert page["exceptions"] == []
    assert any("MNIST is not available" in e and "python -m gradviz prefetch" in e
               for e in map(displayed, page["errors"]))
    assert page["trainings"] == 0


def test_after_prefetch_the_app_works_with_the_network_off(tmp_path, real_data_or_skip):
    """The Keras cache file is what a download leaves (all four arrays; here cut from whatever real
    MNIST this machine has); then prefetch and the page both run with every download refused."""
    real_data_or_skip(100)
    from gradviz.data import load_files

    files = load_files()
    x, y = files.train if files.train is not None else files.test
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    np.savez(tmp_path / "keras" / "datasets" / "mnist.npz", x_train=x[:8000], y_train=y[:8000],
             x_test=x[8000:10000], y_test=y[8000:10000])
    env = offline_env(tmp_path)

    done = gradviz_cli(["prefetch", "--presets", "exploding-linear"], env)
    assert done.returncode == 0, done.stderr
    assert "already in the Keras cache" in done.stdout and "Ready offline" in done.stdout
    assert len(list((tmp_path / "store").glob("*.npz"))) >= 2  # the run and its fix search's trials

    page = open_page({"preset": "exploding-linear"}, env)
    assert page["exceptions"] == []
    assert [e for e in page["errors"] if "diverged" not in e] == []  # the finding, and no data error
    assert page["trainings"] == 0  # shown from the store, not trained
    assert page["charts"] >= 2 and any(h.startswith("### Diverged") for h in page["headings"])
