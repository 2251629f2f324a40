"""A real Dask scheduler and workers on loopback, as a host would start them (the `dask` command),
for the cluster tests and the load test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from support.live_server import ARTIFACTS, ROOT, free_port


class DaskCluster:
    """`dask scheduler` and N `dask worker ... --nworkers 1 --resources train=1` processes."""

    def __init__(self, workers: int, env: dict, threads: int = 1, name: str = "cluster", pin: bool = False):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.name, self.threads, self.pin = name, threads, pin
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                                   "--no-dashboard"])
        self.workers = [self.start_worker(i) for i in range(workers)]
        self.wait_for_workers(workers)

    def log(self, role: str) -> Path:
        return ARTIFACTS / f"{self.name}-{role}.log"

    def _start(self, role: str, args: list[str], cpu: int | None = None) -> subprocess.Popen:
        log = open(self.log(role), "w")
        pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []  # as if on a machine of its own
        return subprocess.Popen([*pinned, sys.executable, "-m", "dask", *args], cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self, index: int) -> subprocess.Popen:
        return self._start(f"worker-{index}", ["worker", self.address, "--nworkers", "1", "--nthreads",
                                               str(self.threads), "--resources", "train=1", "--no-dashboard",
                                               "--name", f"w{index}", "--host", "127.0.0.1"],
                           cpu=index % (os.cpu_count() or 1) if self.pin else None)

    def wait_for_workers(self, count: int, timeout: float = 90) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout=30, set_as_default=False) as client:
            while len(client.scheduler_info(n_workers=-1)["workers"]) < count:
                assert time.monotonic() < deadline, f"{count} workers did not join {self.address}"
                time.sleep(0.3)

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL a worker's whole process group (the nanny and the worker process under it)."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def worker_lines(self, word: str = "trained") -> dict[int, int]:
        """How many `gradviz worker ... <word> ...` lines each worker's log has."""
        return {i: sum(1 for line in self.log(f"worker-{i}").read_text().splitlines()
                       if line.startswith("gradviz worker") and f" {word} " in line) for i in range(len(self.workers))}


@contextmanager
def dask_cluster(workers: int, env: dict, name: str = "cluster", threads: int = 1,
                 pin: bool = False) -> Iterator[DaskCluster]:
    cluster = DaskCluster(workers, env, threads=threads, name=name, pin=pin)
    try:
        yield cluster
    finally:
        cluster.close()
