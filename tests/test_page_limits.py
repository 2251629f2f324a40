"""The pages at the server's limits and on a newcomer's rough edges: a link over the memory cap is
refused with its numbers and a one-click closest config; an old run's fix is not applied to new
settings; without data every page says so once; a failed download is not retried on every rerun."""

import json
import os
import subprocess
import sys

from streamlit.testing.v1 import AppTest

from gradviz.serving import cost
from gradviz.serving.results import COORDINATOR
from gradviz.serving.settings import DEFAULT_MAX_MEMORY_MB
from gradviz.urlstate import parse_query
from support.apptest import SMALL, no_exception, open_app
from support.helpers import ROOT, displayed

HUGE_CNN = {"architecture": "cnn", "depth": "50", "width": "1024", **SMALL}


def test_a_link_over_the_memory_cap_is_refused_with_its_numbers_and_the_closest_config():
    before = COORDINATOR.trainings_started
    at = open_app(HUGE_CNN)
    no_exception(at)
    assert COORDINATOR.trainings_started == before  # nothing was built, nothing trained
    warning = next(displayed(w.value) for w in at.warning if "needs about" in w.value)
    assert f"{cost.training(parse_query(HUGE_CNN)[0].config).mb:,.0f} MB" in warning
    assert f"{DEFAULT_MAX_MEMORY_MB} MB" in warning and "GRADVIZ_MAX_MEMORY_MB" in warning
    assert any("Not measured" in c.value for c in at.caption)  # the init view draws the theory only
    assert at.radio(key="cfg_architecture").value == "cnn"  # the visitor's settings are kept
    offer = next(b for b in at.button if b.label.startswith("Use ") and "instead" in b.label)
    offer.click().run()
    no_exception(at)
    config = parse_query(at.query_params)[0].config
    assert config.architecture == "cnn" and cost.training(config).mb <= DEFAULT_MAX_MEMORY_MB
    assert not any("needs about" in w.value for w in at.warning)


def test_a_run_shown_under_changed_settings_keeps_its_findings_but_not_its_fix_button():
    at = open_app({"preset": "exploding-linear", **SMALL})
    no_exception(at)
    fix = next(b for b in at.button if b.label.startswith("Apply fix"))  # the fix search's, tried on this run
    assert not fix.disabled and fix.key == "verified_fix"
    at.selectbox(key="cfg_activation").set_value("tanh")
    at.selectbox(key="cfg_optimizer").set_value("sgd").run()
    no_exception(at)
    assert any("the previous run, with its own settings" in i.value for i in at.info)
    stale = next(b for b in at.button if b.label.startswith("Apply fix"))
    assert stale.disabled and "other settings" in stale.help
    assert at.selectbox(key="cfg_activation").value == "tanh"


PAGE = """
import json, sys, time
from streamlit.testing.v1 import AppTest
from gradviz.training.tf_setup import keras
calls = []
real = keras.datasets.mnist.load_data
keras.datasets.mnist.load_data = lambda *a, **k: calls.append(1) or real(*a, **k)  # each attempt to go online
found = {}
for page in ("pages/explorer.py", "pages/Seed_experiments.py", "pages/Through_time.py", "pages/Compare.py",
             "pages/Sweeps.py"):
    at = AppTest.from_file(sys.argv[1], default_timeout=300)
    at.query_params["b"] = "depth=3"
    at.switch_page(page)
    at.run()
    at.run()  # a rerun: nothing is tried again
    found[page] = {"errors": [e.value for e in at.error], "exceptions": [str(e.value) for e in at.exception],
                   "infos": [i.value for i in at.info], "markdown": [m.value for m in at.markdown]}
print(json.dumps({"pages": found, "downloads": len(calls)}))
"""


def test_without_data_every_page_says_so_once_and_the_download_is_not_retried(tmp_path):
    closed = "http://127.0.0.1:9"
    env = {k: v for k, v in os.environ.items() if k != "GRADVIZ_DATA_DIR"}
    env.update(KERAS_HOME=str(tmp_path / "keras"), GRADVIZ_STORE_DIR=str(tmp_path / "store"), HTTPS_PROXY=closed,
               HTTP_PROXY=closed, https_proxy=closed, http_proxy=closed, NO_PROXY="", no_proxy="")
    done = subprocess.run([sys.executable, "-c", PAGE, str(ROOT / "app.py")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for page, seen in report["pages"].items():
        assert seen["exceptions"] == [], page
        missing = [e for e in seen["errors"] if "MNIST is not available" in displayed(e)]
        assert len(missing) == 1, (page, seen["errors"])
        assert "\\n" not in missing[0]  # line breaks are breaks, not a literal backslash-n
        assert not any("press **Run**" in i for i in seen["infos"]), page  # nothing to run without data
    assert report["downloads"] == 1  # five pages, each run twice, asked for MNIST: the network was tried once


def test_the_sweeps_page_offers_to_leave_out_the_points_over_the_cap():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in {"x": "width=8,64,1024", "y": "depth=2,50", "mode": "trained", "architecture": "cnn",
                       "train_size": "512", "epochs": "1"}.items():
        at.query_params[key] = value
    at.switch_page("pages/Sweeps.py")
    at.run()
    no_exception(at)
    assert any("largest point is over" in displayed(w.value) for w in at.warning)
    offer = next(b for b in at.button if b.label.startswith("Leave out the"))
    before = COORDINATOR.trainings_started
    offer.click().run()
    no_exception(at)
    assert "1024" not in at.text_input(key="sweep_x").value or "50" not in at.text_input(key="sweep_y").value
    assert not any("largest point is over" in w.value for w in at.warning)
    assert COORDINATOR.trainings_started > before  # the link asked to train: the points that fit now do


def _two_findings_one_fix():
    from gradviz.diagnosis.evidence import Finding
    from gradviz.ui.components import findings_panel

    findings_panel([Finding("exploding", "warning", "grew", fix={"learning_rate": 0.001}),
                    Finding("dead_units", "warning", "dead", fix={"learning_rate": 0.001}),
                    Finding("saturation", "warning", "flat", fix={"activation": "relu"})])


def test_identical_fixes_are_offered_once():
    at = AppTest.from_function(_two_findings_one_fix).run()
    no_exception(at)
    assert [b.label for b in at.button] == ["Apply fix: learning_rate=0.001", "Apply fix: activation=relu"]
    assert any("same change as above" in c.value for c in at.caption)


def test_a_large_runs_fix_search_waits_for_a_click_on_a_shared_server(monkeypatch):
    """Up to 6 runs of its size: a run needing more than a quarter of the memory cap is searched
    only when the learner asks; then the table and its verified button appear."""
    monkeypatch.setenv("GRADVIZ_MAX_MEMORY_MB", "400")  # this run needs ~140 MB: over a quarter of 400
    at = open_app({"preset": "exploding-linear", **SMALL, "seed": "5"})
    no_exception(at)
    before = COORDINATOR.trainings_started
    assert not any(b.label.startswith("Apply fix") for b in at.button), [(b.key, b.label) for b in at.button]
    start = next(b for b in at.button if b.key == "start_fix_search")
    assert COORDINATOR.trainings_started == before
    start.click().run()
    no_exception(at)
    assert COORDINATOR.trainings_started > before
    assert any(c.value.startswith("Tried:") for c in at.caption)
    assert [b.key for b in at.button if b.label.startswith("Apply fix")] == ["verified_fix"]
