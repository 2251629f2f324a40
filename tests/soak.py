"""A class-length soak: sessions arrive over M minutes at one `streamlit run app.py` and cycle
through every page with a realistic mix (tests/loadtest.py --soak runs it).

Each session is a websocket client speaking Streamlit's protocol, as a browser tab does: it opens a
view (a page and its link), waits until the script run finishes, checks what the page shows, then
opens the next one. The mix, per session, starting at a random point of the cycle: a preset; a
random slider config; the largest config the memory cap allows; one over the cap (the refusal with
its offer is the expected page); a hostile link; Compare with a variant; a trained sweep; a sweep
at initialization; the seed experiments; gradients through time; the Guide. The heavier pages
are given small budgets through their links, the same for every session, so that (as in a class)
popular views come back from the cache.

Reported: sessions, views, failed sessions and views (with why), p50/p95 seconds per view, the
server's peak RSS (VmHWM) and its RSS when the last session left.
"""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
import time
from dataclasses import dataclass

from support.live_server import ARTIFACTS, streamlit_server

SMALL = "train_size=1000&epochs=1"


@dataclass(frozen=True)
class View:
    name: str
    page: str  # the URL path ("" is the Explorer)
    query: str
    expect: str  # text the finished page must show


def largest_allowed_link() -> str:
    """The largest MLP the default memory cap allows at a small image count (the cost model decides)."""
    from gradviz.config import RunConfig
    from gradviz.serving.cost import training
    from gradviz.serving.limits import closest_fitting
    from gradviz.serving.settings import max_memory_mb

    big = RunConfig(depth=50, width=1024, batch_size=512, train_size=1024, epochs=1)
    fitted = closest_fitting(big, lambda c: training(c).mb, max_memory_mb())
    return "&".join(f"{k}={v}" for k, v in fitted.to_strings(only_changed=True).items())


def random_link(rng: random.Random) -> str:
    """A learner moving the sliders: a small random config."""
    return (f"depth={rng.randint(1, 12)}&width={rng.choice((16, 32, 64, 128))}"
            f"&activation={rng.choice(('relu', 'tanh', 'sigmoid', 'gelu', 'linear'))}"
            f"&initializer={rng.choice(('he_normal', 'glorot_uniform', 'random_normal', 'zeros'))}"
            f"&learning_rate={rng.choice((0.0001, 0.001, 0.01, 0.1))}&{SMALL}&seed={rng.randint(0, 20)}")


def cycle(rng: random.Random) -> list[View]:
    done = "Trained"  # the explorer's caption under a finished run: "Trained 56 steps in ..."
    return [
        View("preset", "", f"preset={rng.choice(('seed-vanishing-sigmoid', 'dead-relu', 'exploding-linear'))}", done),
        View("random config", "", random_link(rng), done),
        View("largest allowed", "", largest_allowed_link(), done),
        View("over the cap", "", "architecture=cnn&depth=50&width=1024", "needs about"),
        View("hostile link", "", "depth=-3&activation=%3Cscript%3Ealert(1)%3C%2Fscript%3E&lr=%F0%9F%92%A5"
                                 f"&seed=-1&{SMALL}", "is not valid"),
        View("compare", "Compare", f"depth=3&width=32&{SMALL}&b=activation%3Dtanh", "Gradient heatmaps"),
        View("trained sweep", "Sweeps", "x=depth%3D1,2&mode=trained&width=32&train_size=500&epochs=1", "Points as CSV"),
        View("sweep at init", "Sweeps", "x=depth%3D2:20:4&series=activation%3Drelu,tanh", "untrained networks"),
        View("seed experiments", "Seed_experiments", SMALL, "What does explode here"),
        View("through time", "Through_time", "train_size=500&epochs=1&width=16", "Heatmap for"),
        View("guide", "Guide", "", "Cause: saturating activations"),
    ]


async def visit(socket, view: View, timeout: float) -> dict:
    """Open one view on an open session; wait for its run to finish; check what it shows."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    request = BackMsg()
    request.rerun_script.query_string = view.query
    request.rerun_script.page_name = view.page
    started, seen = time.monotonic(), []
    await socket.send(request.SerializeToString())
    while (left := timeout - (time.monotonic() - started)) > 0:
        raw = await asyncio.wait_for(socket.recv(), left)
        message = ForwardMsg()
        message.ParseFromString(raw)
        seen.append(raw.decode("utf-8", "replace"))
        kind = message.WhichOneof("type")
        if kind == "delta" and message.delta.WhichOneof("type") == "new_element" \
                and message.delta.new_element.WhichOneof("type") == "exception":
            return {"view": view.name, "ok": False, "why": "an exception on the page"}
        if kind == "script_finished" and message.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
            text = "".join(seen)
            if view.expect not in text:
                return {"view": view.name, "ok": False, "why": f"finished without {view.expect!r}"}
            failed = re.search(r"\w+ failed \(|ran out of memory|does not reach", text)
            if failed:
                return {"view": view.name, "ok": False, "why": f"the page says {failed.group(0)!r}"}
            return {"view": view.name, "ok": True, "seconds": time.monotonic() - started}
    return {"view": view.name, "ok": False, "why": f"not finished after {timeout:.0f} s"}


async def session(url: str, start_after: float, views: int, seed: int, timeout: float) -> list[dict]:
    """One student: arrives after `start_after` s, then opens `views` views of the cycle in turn."""
    from websockets.asyncio.client import connect

    await asyncio.sleep(start_after)
    rng = random.Random(seed)
    plan = cycle(rng)
    first = rng.randrange(len(plan))
    results = []
    try:
        async with connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                           max_size=None, open_timeout=timeout) as socket:
            for k in range(views):
                results.append(await visit(socket, plan[(first + k) % len(plan)], timeout))
    except Exception as error:  # noqa: BLE001 - a failed session is a figure, not a crash
        results.append({"view": "connection", "ok": False, "why": f"{type(error).__name__}: {error}"[:200]})
    return results


def run_soak(sessions: int, minutes: float, views: int, timeout: float = 600, seed: int = 0) -> dict:
    """Start a server, let `sessions` students arrive evenly over `minutes`, report."""
    from loadtest import memory_kb, percentile  # noqa: PLC0415 - shared with the load test

    with tempfile.TemporaryDirectory() as store:
        log = ARTIFACTS / f"soak-{sessions}.log"
        with streamlit_server(log, env={"GRADVIZ_STORE_DIR": store}) as (url, pid):
            idle_kb = memory_kb(pid, "VmRSS")
            spacing = 60 * minutes / max(sessions, 1)
            started = time.monotonic()
            everyone = asyncio.run(_all(url, sessions, spacing, views, timeout, seed))
            wall = time.monotonic() - started
            peak_kb, end_kb = memory_kb(pid, "VmHWM"), memory_kb(pid, "VmRSS")
    visits = [v for s in everyone for v in s]
    times = [v["seconds"] for v in visits if v["ok"]]
    by_view: dict[str, list[float]] = {}
    for v in visits:
        if v["ok"]:
            by_view.setdefault(v["view"], []).append(v["seconds"])
    return {
        "sessions": sessions, "minutes": round(wall / 60, 1), "views": len(visits),
        "failed_sessions": sum(not all(v["ok"] for v in s) for s in everyone),
        "failed_views": [f"{v['view']}: {v['why']}" for v in visits if not v["ok"]],
        "p50_seconds": _round(percentile(times, 0.5)), "p95_seconds": _round(percentile(times, 0.95)),
        "p50_by_view": {k: _round(percentile(t, 0.5)) for k, t in sorted(by_view.items())},
        "server_rss_idle_mb": round(idle_kb / 1024), "server_rss_peak_mb": round(peak_kb / 1024),
        "server_rss_end_mb": round(end_kb / 1024), "server_log": str(log),
    }


async def _all(url: str, sessions: int, spacing: float, views: int, timeout: float, seed: int) -> list[list[dict]]:
    return list(await asyncio.gather(*(session(url, i * spacing, views, seed + i, timeout) for i in range(sessions))))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


STAGES = [  # (stage, view): what a host sees the server hold, from idle to full caches
    ("first visit (TensorFlow, the first preset)", View("first visit", "", "", "Trained")),
    ("the largest allowed training", View("largest", "", largest_allowed_link(), "Trained")),
    ("a 50x1024 network measured at initialization", View("draws", "", "depth=50&width=1024&epochs=1", "Measured")),
] + [(f"shape {i}", View(f"shape {i}", "", f"depth={d}&width={w}&{SMALL}&architecture={a}", "Trained"))
     for i, (d, w, a) in enumerate([(3, 256, "mlp"), (12, 128, "mlp"), (3, 16, "cnn"), (6, 16, "cnn"),
                                    (1, 64, "lstm"), (1, 64, "gru"), (30, 64, "mlp"), (2, 32, "cnn")])]


def memory_stages(timeout: float = 600) -> list[dict]:
    """A fresh server's RSS when idle, then after each stage (VmRSS now, VmHWM the peak so far), and
    what the caches hold by the server log's last line."""
    from loadtest import memory_kb  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as store:
        log = ARTIFACTS / "memory-stages.log"
        with streamlit_server(log, env={"GRADVIZ_STORE_DIR": store}) as (url, pid):
            rows = [{"stage": "idle", "rss_mb": round(memory_kb(pid, "VmRSS") / 1024),
                     "peak_mb": round(memory_kb(pid, "VmHWM") / 1024)}]
            for stage, view in STAGES:
                outcome = asyncio.run(_one(url, view, timeout))
                caches = [line for line in log.read_text().splitlines() if "caches hold" in line]
                rows.append({"stage": stage, "ok": outcome["ok"], "rss_mb": round(memory_kb(pid, "VmRSS") / 1024),
                             "peak_mb": round(memory_kb(pid, "VmHWM") / 1024),
                             "caches": caches[-1].split("caches hold ", 1)[1] if caches else None})
    return rows


async def _one(url: str, view: View, timeout: float) -> dict:
    from websockets.asyncio.client import connect

    async with connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                       max_size=None, open_timeout=timeout) as socket:
        return await visit(socket, view, timeout)
