"""Trainings on a real Dask cluster (a scheduler and two workers on loopback): the default stays
in-process, a run trains once on a worker however many ask, streams its progress, lands in the
shared store, survives a worker killed mid-training, stops when nobody waits, and an unreachable or
dying scheduler falls back to training here."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from gradviz.config import RunConfig
from gradviz.serving import cluster
from gradviz.serving.store import ResultStore
from gradviz.training.train import train
from support.dask_cluster import dask_cluster
from support.helpers import ROOT

SMALL = RunConfig(depth=3, width=32, train_size=1000, epochs=1)
LONG = RunConfig(depth=6, width=256, train_size=8000, epochs=8, seed=123)  # ~10 s on one worker thread


@pytest.fixture(scope="module")
def dask(tmp_path_factory, real_data_or_skip):
    real_data_or_skip(100)
    store = tmp_path_factory.mktemp("shared-store")
    env = {"GRADVIZ_DATA_DIR": os.environ.get("GRADVIZ_DATA_DIR", ""), "GRADVIZ_STORE_DIR": f"file://{store}"}
    with dask_cluster(2, env, name="test-cluster") as running:
        running.store = store
        yield running
    cluster.close()


@pytest.fixture
def on_cluster(dask, monkeypatch):
    monkeypatch.setenv("GRADVIZ_CLUSTER", dask.address)
    monkeypatch.setenv("GRADVIZ_STORE_DIR", f"file://{dask.store}")
    yield dask
    cluster.close()


def test_without_a_cluster_training_stays_here_and_dask_is_never_imported(tmp_path):
    script = ("import json, sys; from gradviz import cli; "
              "code = cli.main(['run', '--set', 'depth=2', '--set', 'width=16', '--set', 'train_size=500', "
              "'--set', 'epochs=1', '--json']); print(json.dumps({'distributed': 'distributed' in sys.modules, "
              "'dask': 'dask' in sys.modules}), file=sys.stderr); sys.exit(code)")
    env = {k: v for k, v in os.environ.items() if k != cluster.CLUSTER_ENV}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["timing"]["where"] == "in-process"
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"distributed": False, "dask": False}


def test_a_run_trains_once_on_a_worker_streams_and_lands_in_the_shared_store(on_cluster, real_data_or_skip):
    before = sum(on_cluster.worker_lines().values())
    seen, results = [], []

    def session():
        results.append(cluster.train(SMALL, lambda c: None, on_progress=seen.append, on_note=pytest.fail))

    threads = [threading.Thread(target=session) for _ in range(3)]  # three sessions ask at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert len(results) == 3 and all(r is not None and r.meta["where"].startswith("tcp://") for r in results)
    assert sum(on_cluster.worker_lines().values()) == before + 1  # one task for the three of them
    assert seen and seen[0].where.startswith("tcp://") and seen[0].snapshot().steps_done == seen[0].step
    here = train(SMALL, real_data_or_skip(SMALL.train_size))  # the same numbers as training here
    np.testing.assert_allclose(results[0].grad_norm, here.grad_norm, rtol=1e-5)
    stored = ResultStore(f"file://{on_cluster.store}").get(SMALL, here.data)
    assert stored is not None and stored.meta["where"] == results[0].meta["where"]


def test_the_page_trains_on_the_cluster_and_says_where(on_cluster):
    from gradviz.serving.results import COORDINATOR
    from support.apptest import headline_text, no_exception, open_app

    at = open_app({"depth": "2", "width": "24", "train_size": "600", "epochs": "1", "seed": "41"})
    no_exception(at)
    assert headline_text(at).startswith("###")
    assert any("on the cluster's worker tcp" in c.value.replace("\\", "") for c in at.caption)
    assert COORDINATOR.cache.get(RunConfig(depth=2, width=24, train_size=600, epochs=1, seed=41).cache_key())


def test_the_page_names_an_unreachable_cluster_and_trains_here(monkeypatch):
    from support.apptest import headline_text, no_exception, open_app
    from support.helpers import displayed

    monkeypatch.setenv(cluster.CLUSTER_ENV, "tcp://127.0.0.1:9")
    cluster.close()
    at = open_app({"depth": "2", "width": "24", "train_size": "600", "epochs": "1", "seed": "42"})
    no_exception(at)
    assert any("The cluster at tcp://127.0.0.1:9 could not be reached" in displayed(w.value) for w in at.warning)
    assert headline_text(at).startswith("###") and not any("cluster's worker" in c.value for c in at.caption)
    cluster.close()


def test_a_run_nobody_waits_for_any_more_is_cancelled_on_its_worker(on_cluster):
    config = LONG.replace(seed=7)
    before = on_cluster.worker_lines("stopped")
    started = []
    result = cluster.train(config, lambda c: None, on_progress=started.append,
                           should_stop=lambda: len(started) > 0)  # the tab closes once training has begun
    assert result is None
    deadline = time.monotonic() + 60
    while sum(on_cluster.worker_lines("stopped").values()) == sum(before.values()):
        assert time.monotonic() < deadline, "the worker kept training a run nobody waited for"
        time.sleep(0.5)
    assert not ResultStore(f"file://{on_cluster.store}").has(config)  # a stopped run is not stored


def test_a_worker_killed_mid_training_is_survived(on_cluster):
    """The task runs again on the other worker and the waiting caller still gets its result."""
    progress = []
    outcome = {}

    def wait():
        outcome["result"] = cluster.train(LONG, lambda c: None, on_progress=progress.append, on_note=pytest.fail)

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 120
    while not progress:
        assert time.monotonic() < deadline, "the training never started"
        time.sleep(0.2)
    first = progress[0].where
    from distributed import Client

    with Client(on_cluster.address, set_as_default=False) as client:
        names = {address: info["name"] for address, info in client.scheduler_info(n_workers=-1)["workers"].items()}
    index = int(str(names[first]).removeprefix("w"))
    on_cluster.kill(on_cluster.workers[index])
    waiter.join(300)
    result = outcome["result"]
    assert result is not None and not result.stopped and result.steps_done == result.total_steps
    assert result.meta["where"] != first  # finished on the worker that was left
    on_cluster.workers[index] = on_cluster.start_worker(index)  # back to two, for whoever comes next
    on_cluster.wait_for_workers(2)


def test_an_unreachable_cluster_is_named_and_training_happens_here(tmp_path):
    env = {**os.environ, cluster.CLUSTER_ENV: "tcp://127.0.0.1:9"}  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "gradviz", "run", "--set", "depth=2", "--set", "width=16", "--set",
                           "train_size=500", "--set", "epochs=1", "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "The cluster at tcp://127.0.0.1:9 could not be reached" in done.stderr
    assert json.loads(done.stdout)["timing"]["where"] == "in-process"


def test_a_scheduler_that_dies_mid_run_is_named_and_the_run_finishes_here(tmp_path, real_data_or_skip, monkeypatch):
    real_data_or_skip(100)
    env = {"GRADVIZ_DATA_DIR": os.environ.get("GRADVIZ_DATA_DIR", ""), "GRADVIZ_STORE_DIR": str(tmp_path)}
    with dask_cluster(1, env, name="dying-cluster") as dying:
        monkeypatch.setenv(cluster.CLUSTER_ENV, dying.address)
        notes, progress, outcome = [], [], {}
        config = LONG.replace(seed=8, epochs=3)
        waiter = threading.Thread(target=lambda: outcome.update(result=cluster.train(
            config, lambda c: real_data_or_skip(c.train_size), on_progress=progress.append, on_note=notes.append)))
        waiter.start()
        deadline = time.monotonic() + 120
        while not progress:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        dying.kill(dying.scheduler)
        waiter.join(300)
    cluster.close()
    assert notes and "stopped answering" in notes[0]
    result = outcome["result"]
    assert result is not None and result.meta.get("where", "in-process") == "in-process" and not result.stopped
