"""Load test: N concurrent sessions against one `streamlit run app.py` on loopback.

    python tests/loadtest.py --sessions 20            # prints a table; --json for one JSON object
    python tests/loadtest.py --sessions 5 --browser   # real Chromium pages instead of websockets
    python tests/loadtest.py --cluster --sessions 20 [--workers 2] [--kill-worker]
    python tests/loadtest.py --soak --sessions 30 --minutes 15   # a class-length soak (tests/soak.py)

Each session opens a link to a different small config (so nothing is shared through the cache),
which the app trains at once. By default a session is a websocket client speaking Streamlit's own
protocol (what the browser sends: one rerun with the link's query string; then it reads the page
as it streams in). Real Chromium pages are also available, but twenty of them on the same two
cores as the server take most of the CPU themselves and measure the browser more than the app.
Reported: completed / queued (saw "Queued:" while waiting) / failed,
p50 and p95 seconds from opening the link to the finished result, and the server process's peak RSS
(VmHWM) — first with the N runs, then with them all cached plus one larger training in flight.
Bounded: at most 40 sessions, and every wait has a deadline. Loopback only: it starts its own
server with an empty results store, so every session really trains.

With --cluster it starts a Dask scheduler, N workers (one thread each, `--resources train=1`) and
two Streamlit servers sharing one results store, all on loopback. The sessions alternate between
the servers and every config is asked for by two sessions (one on each server when N is even), so
a training should run once for both: reported are the trainings run, how many requests were
deduplicated, and the trainings per worker. --kill-worker kills one worker while it trains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # gradviz itself, when run as a script
from support.dask_cluster import dask_cluster  # noqa: E402
from support.live_server import (  # noqa: E402
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    browser_missing,
    streamlit_server,
)

MAX_SESSIONS = 40
DONE = re.compile(r"Trained [\d,]+ steps in")
FAILURES = ("Training failed", "MNIST is not available")  # what the page says instead of a result
IN_FLIGHT_LINK = "?depth=8&width=256&train_size=8000&epochs=3&seed=999"  # larger than the sessions' runs


def session_link(i: int) -> str:
    """A small config per session, all different (depth, width and seed vary)."""
    return f"?depth={2 + i % 4}&width={(32, 64)[i % 2]}&train_size=2000&epochs=1&seed={1000 + i}"


def memory_kb(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak so far) of a process, in kB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def ws_session(url: str, link: str, timeout: float) -> dict:
    """A websocket session: the rerun a browser sends on opening `link`, then the streamed page."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    started, queued, first_chart = time.monotonic(), False, None
    try:
        async with connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                           max_size=None, open_timeout=timeout) as socket:
            hello = BackMsg()
            hello.rerun_script.query_string = link.lstrip("?")
            await socket.send(hello.SerializeToString())
            while (left := timeout - (time.monotonic() - started)) > 0:
                raw = await asyncio.wait_for(socket.recv(), left)
                queued = queued or b"Queued:" in raw
                if DONE.search(raw.decode("utf-8", "replace")):
                    return {"ok": True, "seconds": time.monotonic() - started, "queued": queued,
                            "first_chart_seconds": first_chart}
                message = ForwardMsg()
                message.ParseFromString(raw)
                if first_chart is None and _is_chart(message):  # the first thing worth looking at
                    first_chart = time.monotonic() - started
                failure = next((marker for marker in FAILURES if marker.encode() in raw), None)
                if failure or _is_exception(message):
                    return {"ok": False, "why": f"error on the page: {failure or 'exception'}", "queued": queued}
    except Exception as error:  # noqa: BLE001 - a failed session is a figure, not a crash
        return {"ok": False, "why": f"{type(error).__name__}: {error}"[:200], "queued": queued}
    return {"ok": False, "why": f"no result after {timeout:.0f} s", "queued": queued}


def _is_chart(message) -> bool:
    return (message.WhichOneof("type") == "delta" and message.delta.WhichOneof("type") == "new_element"
            and message.delta.new_element.WhichOneof("type") == "vega_lite_chart")


def _is_exception(message) -> bool:
    return (message.WhichOneof("type") == "delta" and message.delta.WhichOneof("type") == "new_element"
            and message.delta.new_element.WhichOneof("type") == "exception")


async def browser_session(browser, url: str, link: str, timeout: float) -> dict:
    """A Chromium page: open the link, wait for the result; note whether it ever said queued."""
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    started = time.monotonic()
    queued = False
    try:
        await page.goto(url + "/" + link, timeout=timeout * 1000)
        while time.monotonic() - started < timeout:
            text = await page.inner_text("body")
            queued = queued or "Queued:" in text
            if DONE.search(text):
                return {"ok": True, "seconds": time.monotonic() - started, "queued": queued}
            failure = next((marker for marker in FAILURES if marker in text), None)
            if failure or await page.get_by_test_id("stException").count():
                return {"ok": False, "why": f"error on the page: {failure or 'exception'}", "queued": queued}
            await asyncio.sleep(0.25)
        return {"ok": False, "why": f"no result after {timeout:.0f} s", "queued": queued}
    except Exception as error:  # noqa: BLE001 - a failed session is a figure, not a crash
        return {"ok": False, "why": f"{type(error).__name__}: {error}"[:200], "queued": queued}
    finally:
        await context.close()


async def drive(url: str, links: list[str], timeout: float, browser: bool) -> list[dict]:
    """All links at once: websocket sessions, or one Chromium context each."""
    if not browser:
        return list(await asyncio.gather(*(ws_session(url, link, timeout) for link in links)))
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return list(await asyncio.gather(*(browser_session(chromium, url, link, timeout) for link in links)))
        finally:
            await chromium.close()


class PeakSampler:
    """Samples a process's RSS every 0.1 s; VmHWM is the kernel's exact peak, this is a check."""

    def __init__(self, pid: int):
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, memory_kb(self.pid, "VmRSS"))
            time.sleep(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(sessions: int, timeout: float, in_flight: bool = True, warm: bool = True, browser: bool = False) -> dict:
    """Start a server, run the sessions (then one larger training over the cached runs), report."""
    with tempfile.TemporaryDirectory() as store:
        log = ARTIFACTS / f"loadtest-{sessions}.log"
        # An empty store: every session trains. The cache holds 32 runs, so N <= 32 stay cached.
        with streamlit_server(log, env={"GRADVIZ_STORE_DIR": store}) as (url, pid):
            idle_kb = memory_kb(pid, "VmRSS")
            # As before a class: the host has opened the app once (TensorFlow imported, the first
            # preset trained), so the wave below meets a warm server. Reported separately.
            first = asyncio.run(drive(url, [""], timeout, browser))[0] if warm else None
            warm_kb = memory_kb(pid, "VmRSS")
            wall = time.monotonic()
            results = asyncio.run(drive(url, [session_link(i) for i in range(sessions)], timeout, browser))
            wall = time.monotonic() - wall
            sessions_peak_kb = memory_kb(pid, "VmHWM")
            extra = None
            if in_flight:
                with PeakSampler(pid) as sampler:
                    extra = asyncio.run(drive(url, [IN_FLIGHT_LINK], timeout, browser))[0]
                extra["rss_peak_mb"] = round(sampler.peak_kb / 1024)
            peak_kb = memory_kb(pid, "VmHWM")
    times = [r["seconds"] for r in results if r["ok"]]
    return {
        "client": "chromium" if browser else "websocket",
        "sessions": sessions,
        "completed": len(times),
        "queued": sum(r["queued"] for r in results),
        "failed": sessions - len(times),
        "failures": [r["why"] for r in results if not r["ok"]],
        "p50_seconds": _round(percentile(times, 0.5)),
        "p95_seconds": _round(percentile(times, 0.95)),
        "max_seconds": _round(max(times) if times else None),
        "seconds_each": sorted(_round(t) for t in times),
        "wall_seconds": round(wall, 1),
        "first_visit": None if first is None else {"ok": first["ok"], "seconds": _round(first.get("seconds")),
                                                   "first_chart_seconds": _round(first.get("first_chart_seconds"))},
        "server_rss_idle_mb": round(idle_kb / 1024),
        "server_rss_after_first_visit_mb": round(warm_kb / 1024),
        "server_rss_peak_during_sessions_mb": round(sessions_peak_kb / 1024),
        # N runs cached, one larger training in flight (sampled every 0.1 s while it ran):
        "in_flight_run": None if extra is None else {
            "ok": extra["ok"], "seconds": _round(extra.get("seconds")), "rss_peak_mb": extra["rss_peak_mb"]},
        "server_rss_peak_mb": round(peak_kb / 1024),  # VmHWM: the kernel's exact peak over everything
        "server_log": str(log),
    }


def cluster_link(i: int, epochs: int = 2) -> str:
    """Session i's config: sessions 2k and 2k+1 ask for the same one (on different servers)."""
    k = i // 2
    return f"?depth={3 + k % 3}&width=128&train_size=4000&epochs={epochs}&seed={2000 + k}"


def run_cluster(sessions: int, workers: int = 2, timeout: float = 600, kill_worker: bool = False,
                epochs: int = 2, pin: bool = False) -> dict:
    """A class on two servers and `workers` Dask workers (see the module's docstring)."""
    import os

    with tempfile.TemporaryDirectory() as store:
        env = {"GRADVIZ_STORE_DIR": f"file://{store}", "GRADVIZ_DATA_DIR": os.environ.get("GRADVIZ_DATA_DIR", "")}
        with dask_cluster(workers, env, name=f"loadtest-cluster-{sessions}", pin=pin) as dask, \
                streamlit_server(ARTIFACTS / "loadtest-cluster-a.log",
                                 {**env, "GRADVIZ_CLUSTER": dask.address}) as (a, _), \
                streamlit_server(ARTIFACTS / "loadtest-cluster-b.log",
                                 {**env, "GRADVIZ_CLUSTER": dask.address}) as (b, _):
            asyncio.run(drive(a, [""], timeout, False))  # the host opens the app once (as in run())
            asyncio.run(drive(b, [""], timeout, False))
            warm = dask.worker_lines()
            killer = threading.Thread(target=_kill_one_while_training, args=(dask,), daemon=True)
            if kill_worker:
                killer.start()
            wall = time.monotonic()
            results = asyncio.run(_drive_both(a, b, [cluster_link(i, epochs) for i in range(sessions)], timeout))
            wall = time.monotonic() - wall
            if kill_worker:
                killer.join(5)
            done = dask.worker_lines()
    times = [r["seconds"] for r in results if r["ok"]]
    trained = {f"worker-{i}": done[i] - warm.get(i, 0) for i in done}
    distinct = len({cluster_link(i, epochs) for i in range(sessions)})
    return {
        "client": "websocket", "servers": 2, "workers": workers, "pinned": pin, "sessions": sessions, "epochs": epochs,
        "distinct_configs": distinct,
        "completed": len(times), "failed": sessions - len(times),
        "failures": [r["why"] for r in results if not r["ok"]],
        "p50_seconds": _round(percentile(times, 0.5)), "p95_seconds": _round(percentile(times, 0.95)),
        "max_seconds": _round(max(times) if times else None), "wall_seconds": round(wall, 1),
        "trainings": sum(trained.values()), "deduplicated": sessions - sum(trained.values()),
        "trainings_per_worker": trained, "killed_worker": getattr(dask, "killed", None),
    }


async def _drive_both(a: str, b: str, links: list[str], timeout: float) -> list[dict]:
    """Session i on server a if i is even, else on b; all at once."""
    return list(await asyncio.gather(*(ws_session(a if i % 2 == 0 else b, link, timeout)
                                       for i, link in enumerate(links))))


def _kill_one_while_training(dask, timeout: float = 120) -> None:
    """Kill the first worker seen running a gradviz training (so the kill lands mid-training)."""
    from distributed import Client

    deadline = time.monotonic() + timeout
    with Client(dask.address, set_as_default=False, timeout=30) as client:
        while time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if any("gradviz-train" in str(k) for k in keys)]
            if busy:
                names = {w: info["name"] for w, info in client.scheduler_info(n_workers=-1)["workers"].items()}
                index = int(str(names[busy[0]]).removeprefix("w"))
                time.sleep(0.5)  # well inside the training
                dask.kill(dask.workers[index])
                dask.killed = f"worker-{index}"
                return
            time.sleep(0.1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=5, choices=range(1, MAX_SESSIONS + 1), metavar="N",
                        help=f"concurrent browser sessions (1-{MAX_SESSIONS}, default 5)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds each session may wait (default 600)")
    parser.add_argument("--no-in-flight", action="store_true", help="skip the final larger training")
    parser.add_argument("--cold", action="store_true", help="no first visit before the wave (TensorFlow not loaded)")
    parser.add_argument("--browser", action="store_true", help="Chromium pages instead of websocket sessions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cluster", action="store_true", help="two servers and a Dask cluster on loopback")
    parser.add_argument("--workers", type=int, default=2, choices=range(1, 9), metavar="N",
                        help="Dask workers with --cluster (1-8, default 2)")
    parser.add_argument("--kill-worker", action="store_true", help="with --cluster: kill a worker mid-training")
    parser.add_argument("--pin", action="store_true",
                        help="with --cluster: pin worker i to CPU i (each as if on a one-core machine of its own)")
    parser.add_argument("--epochs", type=int, default=2, choices=range(1, 21), metavar="E",
                        help="with --cluster: epochs per session's run (1-20, default 2; more makes training dominate)")
    parser.add_argument("--soak", action="store_true",
                        help="a class-length soak: sessions arrive over --minutes and cycle through every page")
    parser.add_argument("--minutes", type=float, default=15, help="with --soak: over how long sessions arrive")
    parser.add_argument("--views", type=int, default=11, choices=range(1, 101), metavar="V",
                        help="with --soak: views each session opens (1-100, default 11: the whole cycle)")
    parser.add_argument("--memory-stages", action="store_true",
                        help="a fresh server's RSS from idle to full caches, stage by stage (docs/hosting.md)")
    args = parser.parse_args(argv)
    if args.memory_stages:
        from soak import memory_stages

        rows = memory_stages(args.timeout)
        print(json.dumps(rows) if args.json else "\n".join(str(row) for row in rows))
        return 0
    if args.soak:
        from soak import run_soak

        report = run_soak(args.sessions, args.minutes, args.views, args.timeout)
        print(json.dumps(report) if args.json else "\n".join(f"{k:<24} {v}" for k, v in report.items()))
        return 0 if report["failed_sessions"] == 0 else 1
    if args.cluster:
        report = run_cluster(args.sessions, args.workers, args.timeout, args.kill_worker, args.epochs, args.pin)
        print(json.dumps(report) if args.json else "\n".join(f"{k:<24} {v}" for k, v in report.items()))
        return 0 if report["failed"] == 0 else 1
    missing = browser_missing() if args.browser else None
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    report = run(args.sessions, args.timeout, in_flight=not args.no_in_flight, warm=not args.cold,
                 browser=args.browser)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:<28} {value}")
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
