"""Where a training runs: in this process (the default), or as a Dask task on the scheduler named by
GRADVIZ_CLUSTER=tcp://HOST:PORT. Dask is imported only when that is set.

The rules on a cluster:
- The task's key is the config's cache key, so one config asked for by many sessions or servers
  trains once; every client holds the same task.
- Each task asks for the worker resource `train=1`: start workers with `--resources train=1` and
  each trains one model at a time. TensorFlow is imported once per worker process.
- The worker publishes its progress (a snapshot of the run so far) in a Dask Variable named after
  the task; every waiting page reads the latest one.
- A client that stops waiting releases its future: when no client holds the task any more the
  scheduler cancels it, and the worker's training stops at its next chunk.
- A worker that dies mid-training loses its task to the scheduler, which runs it again on another
  worker: waiting clients simply see progress start over.
- The worker writes the finished run to the shared results store (GRADVIZ_STORE_DIR), so a run
  trained anywhere is found by every server.
- An unreachable or dying scheduler: the caller is told why (on_note) and the run trains here.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from contextlib import nullcontext
from typing import Callable, ContextManager

from gradviz.config import RunConfig
from gradviz.data import available_train_images
from gradviz.result import Progress, RunResult
from gradviz.serving.limits import MemoryLimit, check_memory

LOG = logging.getLogger("gradviz")
CLUSTER_ENV = "GRADVIZ_CLUSTER"
CONNECT_SECONDS = 5
RETRY_AFTER_SECONDS = 30  # after a failed connection, train here for this long before trying again
PROGRESS_SECONDS = 0.8  # how often a worker publishes a snapshot
POLL_SECONDS = 0.5
RESOURCES = {"train": 1}

_lock = threading.Lock()
_client = None
_failed = {"at": -1e9, "why": ""}


class ClusterLost(RuntimeError):
    """The scheduler stopped answering while a run waited on it."""


def address() -> str | None:
    return os.environ.get(CLUSTER_ENV, "").strip() or None


def task_key(config: RunConfig) -> str:
    return f"gradviz-train-{config.cache_key()}"


def client():
    """This process's Dask client, or None: no cluster set, or it could not be reached (why: problem())."""
    global _client
    where = address()
    if where is None:
        return None
    with _lock:
        if _client is not None and _client.status == "running" and _client.scheduler.address == where:
            return _client
        if time.monotonic() - _failed["at"] < RETRY_AFTER_SECONDS:
            return None
        try:
            from distributed import Client

            _client = Client(where, timeout=CONNECT_SECONDS, set_as_default=False)
            return _client
        except Exception as error:  # noqa: BLE001 - any failure to connect means: train here
            _failed.update(at=time.monotonic(), why=f"{type(error).__name__}: {str(error)[:200]}")
            LOG.warning("cluster %s unreachable: %s", where, _failed["why"])
            return None


def close() -> None:
    """Let the client go (tests, and a CLI run that is done with the cluster)."""
    global _client
    with _lock:
        if _client is not None:
            try:
                _client.close(timeout=5)
            except Exception:  # noqa: BLE001 - a scheduler already gone
                pass
        _client = None
        _failed.update(at=-1e9, why="")


def problem() -> str:
    """Why the configured cluster is not being used, for the page and the CLI."""
    return (f"The cluster at {address()} could not be reached ({_failed['why']}); training here, in this "
            f"process, instead.")


def train(config: RunConfig, load_data: Callable, on_progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] | None = None, on_note: Callable[[str], None] | None = None,
          local_guard: Callable[[], ContextManager] = nullcontext) -> RunResult | None:
    """Train `config` on the cluster if one is configured and reachable, else here. None if the
    caller stopped waiting (should_stop) before a cluster run finished. MemoryLimit if the config
    is over this process's memory cap (or a worker's), before anything is sent or built.
    `local_guard()` is entered around a training here (a server passes its gates: a lost cluster
    must not send every waiting session's training into this process at once)."""
    check_memory(config, "training", images=available_train_images())
    note = on_note or (lambda message: LOG.warning(message))
    dask = client()
    if dask is not None:
        try:
            return _on_cluster(dask, config, on_progress, should_stop)
        except ClusterLost as lost:
            _failed.update(at=time.monotonic(), why=str(lost))
            note(f"The cluster at {address()} stopped answering ({lost}); training here, in this process, instead.")
    elif address() is not None:
        note(problem())
    from gradviz.training.train import train as train_here

    with local_guard():
        return train_here(config, load_data(config), on_progress=on_progress, should_stop=should_stop)


def submit(config: RunConfig):
    """The cluster's future for `config` (the same task for everyone asking), or None without a cluster."""
    dask = client()
    if dask is None:
        return None
    return dask.submit(run_task, config.to_dict(), key=task_key(config), resources=RESOURCES, pure=False)


def _on_cluster(dask, config: RunConfig, on_progress, should_stop) -> RunResult | None:
    from distributed import Variable

    try:
        future = submit(config)
        progress = Variable(f"{task_key(config)}-progress", client=dask)
    except Exception as error:  # noqa: BLE001 - a scheduler that went away
        raise ClusterLost(f"{type(error).__name__}: {error}") from None
    seen = -1
    try:
        while not future.done():
            if should_stop is not None and should_stop():
                return None  # finally releases our hold: the task is cancelled if nobody else waits
            if dask.status != "running":
                raise ClusterLost(f"client {dask.status}")
            seen = _relay(progress, seen, on_progress)
        if future.status != "finished":
            error = future.exception()
            if isinstance(error, MemoryLimit):  # a refusal, not a lost cluster: training here would not help
                raise error
            raise ClusterLost(f"the task ended with {type(error).__name__}: {error}")
        return future.result()
    except (ClusterLost, MemoryLimit):
        raise
    except Exception as error:  # noqa: BLE001 - lost connection, cancelled by the scheduler, ...
        raise ClusterLost(f"{type(error).__name__}: {str(error)[:200]}") from None
    finally:
        future.release()


def _relay(progress, seen: int, on_progress) -> int:
    """Wait up to POLL_SECONDS for the worker's latest progress; hand it on if it is new."""
    try:
        latest = progress.get(timeout=POLL_SECONDS)
    except Exception:  # noqa: BLE001 - not published yet (a timeout): keep waiting
        return seen
    if on_progress is None or latest["nonce"] == seen:
        time.sleep(POLL_SECONDS / 2)
        return seen
    snapshot = latest["snapshot"]
    on_progress(Progress(latest["step"], latest["total_steps"], latest["epoch"], latest["loss"],
                         lambda: pickle.loads(snapshot), latest["where"]))
    return latest["nonce"]


def run_task(values: dict) -> RunResult:
    """The Dask task: train on this worker, publish progress, store the result for every server."""
    from distributed import Variable, get_worker

    from gradviz.data import load_dataset
    from gradviz.serving.store import ResultStore
    from gradviz.training.train import train as train_here

    worker = get_worker()
    key = worker.get_current_task()
    config = RunConfig.from_dict(values)
    check_memory(config, "training", images=available_train_images())  # the worker's own cap, before anything
    progress = Variable(f"{key}-progress")
    last = [0.0]

    def publish(p: Progress) -> None:
        if time.monotonic() - last[0] < PROGRESS_SECONDS and p.step < p.total_steps:
            return
        last[0] = time.monotonic()
        progress.set({"nonce": int(time.time_ns() % 2**62), "step": p.step, "total_steps": p.total_steps,
                      "epoch": p.epoch, "loss": p.loss, "where": worker.address,
                      "snapshot": pickle.dumps(p.snapshot())})

    def abandoned() -> bool:  # released by every client: the scheduler cancelled the task
        task = worker.state.tasks.get(key)
        return task is None or task.state not in ("executing", "long-running")

    started = time.monotonic()
    dataset = load_dataset(config.train_size)
    stored = ResultStore().get(config, dataset.info())
    if stored is not None:  # finished by an earlier task of this key that everyone had let go of
        progress.delete()
        return stored
    try:
        result = train_here(config, dataset, on_progress=publish, should_stop=abandoned)
    finally:
        progress.delete()  # the scheduler keeps no snapshot of a run that is over
    result.meta["where"] = worker.address
    outcome = "stopped" if result.stopped else "trained"
    if not result.stopped:
        ResultStore().put(result)
    print(f"gradviz worker {worker.address} {outcome} {key} after {result.steps_done} steps, "
          f"{time.monotonic() - started:.1f} s", flush=True)
    return result
