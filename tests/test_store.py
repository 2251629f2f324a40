"""The results store: round trip, corrupt and stale entries, precompute, and the app reading it."""

import numpy as np
from streamlit.testing.v1 import AppTest

from gradviz import cli
from gradviz.config import RunConfig
from gradviz.runs import COORDINATOR
from gradviz.store import ResultStore
from gradviz.train import train

from support.helpers import ROOT
from support.apptest import headline_text

CONFIG = RunConfig(depth=2, width=16, batch_size=32, train_size=256, epochs=1, seed=41)


def test_round_trip_and_misses(tmp_path, tiny_data):
    store = ResultStore(tmp_path)
    assert store.get(CONFIG, tiny_data.info()) is None
    result = train(CONFIG, tiny_data)
    store.put(result)
    loaded = store.get(CONFIG, tiny_data.info())
    np.testing.assert_array_equal(loaded.grad_norm, result.grad_norm)
    assert not list(tmp_path.glob("*partial*"))
    assert store.get(CONFIG.replace(seed=42), tiny_data.info()) is None  # another config: not there


def test_stale_and_corrupt_entries_are_never_shown(tmp_path, tiny_data):
    store = ResultStore(tmp_path)
    store.put(train(CONFIG, tiny_data))
    other_data = tiny_data.info() | {"split": "train", "train_size": 60000}
    assert store.get(CONFIG, other_data) is None  # trained on other data: stale
    base = tmp_path / CONFIG.cache_key()
    base.with_suffix(".npz").write_bytes(b"not a zip")
    assert store.get(CONFIG, tiny_data.info()) is None  # corrupt: treated as missing
    base.with_suffix(".json").write_text("{broken")
    assert store.get(CONFIG, tiny_data.info()) is None


def test_interrupted_runs_are_not_stored(tmp_path, tiny_data):
    result = train(CONFIG, tiny_data, should_stop=lambda: True)
    assert result.stopped and ResultStore(tmp_path).put(result) is None


def test_precompute_then_the_app_shows_it_without_training(tmp_path, capsys, monkeypatch, real_data_or_skip):
    real_data_or_skip(512)
    grid = tmp_path / "grid.txt"
    grid.write_text("# a tiny grid\ndepth=2; width=16; train_size=512; epochs=1; seed=77\n")
    store = tmp_path / "store"
    assert cli.main(["precompute", "--presets", "exploding-linear", "--grid", str(grid), "--out", str(store)]) == 0
    out = capsys.readouterr().out
    assert "exploding-linear" in out and "grid.txt:2" in out and "trained" in out
    assert len(list(store.glob("*.npz"))) == 2
    assert cli.main(["precompute", "--presets", "exploding-linear", "--grid", str(grid), "--out", str(store)]) == 0
    assert capsys.readouterr().out.count("stored already") == 2  # second time: nothing retrained

    monkeypatch.setenv("GRADVIZ_STORE_DIR", str(store))
    before = COORDINATOR.trainings_started
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in {"depth": "2", "width": "16", "train_size": "512", "epochs": "1", "seed": "77"}.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception and headline_text(at).startswith("### ")
    assert COORDINATOR.trainings_started == before  # shown from the store


def test_bad_grid_line_exits_2(tmp_path, capsys):
    grid = tmp_path / "grid.txt"
    grid.write_text("depth=2\ndepth=99\n")
    assert cli.main(["precompute", "--presets", "", "--grid", str(grid), "--out", str(tmp_path)]) == 2
    assert "line 2: depth='99' is not valid" in capsys.readouterr().err
