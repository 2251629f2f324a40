"""The results store: round trip, corrupt and stale entries, precompute, and the app reading it."""

import re

import numpy as np
from streamlit.testing.v1 import AppTest

from gradviz import cli
from gradviz.config import RunConfig
from gradviz.result import RunResult
from gradviz.serving.results import COORDINATOR
from gradviz.serving.store import ResultStore
from gradviz.training.train import train
from support.apptest import headline_text
from support.helpers import ROOT

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
    # exploding-linear diverges: its fix search's trials are stored beside it
    tried = [int(n) for n in re.findall(r"fix search +(\d+) change\(s\) tried", out)]
    assert tried and tried[0] >= 1 and re.search(r"verified fix: (?!none)", out)
    assert len(list(store.glob("*.npz"))) == 2 + sum(tried)
    assert cli.main(["precompute", "--presets", "exploding-linear", "--grid", str(grid), "--out", str(store)]) == 0
    again = capsys.readouterr().out
    assert "stored already" in again and " trained " not in again  # second time: nothing retrained

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


WRITER = """
import sys
from gradviz.result import RunResult
from gradviz.result import RunResult
from gradviz.serving.store import ResultStore
result = RunResult.from_bytes(open(sys.argv[2], "rb").read())
store = ResultStore(sys.argv[1])
for _ in range(int(sys.argv[3])):
    store.put(result)
"""


def test_two_processes_writing_the_same_key_at_once_never_show_half_a_result(tmp_path, tiny_data):
    """Two writer processes put two versions of one run 150 times each into a file:// store while
    this process reads it: every read is nothing yet or one whole version, never a broken one."""
    import subprocess
    import sys

    first = train(CONFIG, tiny_data)
    second = RunResult.from_bytes(first.to_bytes())
    second.seconds = first.seconds + 1000.0  # the same run, told apart by its timing
    versions = {round(first.seconds, 6), round(second.seconds, 6)}
    paths = []
    for name, result in (("first", first), ("second", second)):
        paths.append(tmp_path / f"{name}.bin")
        paths[-1].write_bytes(result.to_bytes())
    root = f"file://{tmp_path / 'shared'}"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, root, str(path), "150"], cwd=ROOT) for path in paths]
    store, reads = ResultStore(root), 0
    while any(w.poll() is None for w in writers):
        found = store.get(CONFIG, tiny_data.info())  # None for an entry that cannot be read
        if reads:
            assert found is not None, "a reader met a half-written entry"
        if found is not None:
            assert round(found.seconds, 6) in versions
            reads += 1
    assert [w.returncode for w in writers] == [0, 0] and reads > 0
    assert round(store.get(CONFIG, tiny_data.info()).seconds, 6) in versions
    assert not list((tmp_path / "shared").glob("*partial*"))  # every temporary name was renamed into place
