"""Getting a page its RunResult: the process cache, the results store, or a training streamed to
the page through the server's queue (one at a time, one place per session, a cap)."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager, nullcontext
from typing import Iterator
from urllib.parse import urlencode

import streamlit as st
from streamlit import runtime

from gradviz import charts
from gradviz.config import RunConfig
from gradviz.data import DataUnavailable, available_train_images, load_dataset, load_files
from gradviz.result import RunResult
from gradviz.serving import cluster, cost
from gradviz.serving.gate import QueueFull, Superseded, work_capacity_mb
from gradviz.serving.limits import MemoryLimit
from gradviz.serving.lru import cache_budgets, cache_sizes
from gradviz.serving.malloc import limit_malloc_arenas, release_free_memory
from gradviz.serving.results import COORDINATOR
from gradviz.serving.store import ResultStore
from gradviz.ui.limits import examples_ok, failure_message, memory_ok, refused, server_busy, show_memory_refusal
from gradviz.ui.session import first_time_this_run, session_id
from gradviz.ui.text import literal, literal_lines

LOG = logging.getLogger("gradviz")
# This module is imported once per server process, by the first session's script thread: early
# enough that the later sessions' threads meet the cap (see limit_malloc_arenas).
limit_malloc_arenas()
LIVE_REFRESH_SECONDS = 0.8  # re-draw the growing charts at most this often while training


def read_data(load):
    """load(), or None after saying on the page what to do about missing MNIST (once per page,
    however many runs the page asks for)."""
    try:
        return load()
    except DataUnavailable as error:
        if first_time_this_run("data_missing"):
            st.error(literal_lines(error), icon=":material/database:")
        return None


def press_to_train(missing: list[RunConfig], button: str, what: str) -> None:
    """Say which button trains the runs not seen before, unless none of them could train: over a
    limit (the refusal said why) or without data (read_data said so)."""
    if data_ready() and any(not refused(config) for config in missing):
        st.info(f"Press **{button}** to train {what} not seen before.", icon=":material/play_arrow:")


def data_ready() -> bool:
    """MNIST can be read here (no message: read_data says it where a run needs the data)."""
    try:
        load_files()
        return True
    except DataUnavailable:
        return False


def _load_data(config: RunConfig):
    return read_data(lambda: load_dataset(config.train_size))


class LiveView:
    """Placeholders the run writes into while it trains: status, progress, growing charts (not
    `compact`: a fix search's trials show only their progress)."""

    def __init__(self, present: bool, compact: bool = False, label: str = "Training"):
        self.present, self.compact, self.label = present, compact, label
        self.status = st.empty()
        self.progress = st.empty()
        self.charts = st.container()
        self.heatmap, self.loss = self.charts.empty(), self.charts.empty()
        self.last_draw = 0.0
        self.steps = 0

    def waiting(self, ahead: int) -> None:
        self.status.info(f"Queued: {ahead} training(s) ahead of you on this server. Yours starts next.",
                         icon=":material/hourglass_top:")

    def waiting_for_memory(self, held_mb: float) -> None:
        self.status.info(f"Waiting for memory: {held_mb:,.0f} MB of this server's {work_capacity_mb():,.0f} MB for "
                         "trainings and probes are in use. Yours starts when they are done.",
                         icon=":material/hourglass_top:")

    def update(self, progress) -> None:
        self.steps = progress.step
        if progress.where != "in-process":
            self.status.info(f"Training on the cluster's worker {literal(progress.where)}", icon=":material/lan:")
        self.progress.progress(progress.fraction, text=f"{self.label}: step {progress.step:,} of "
                               f"{progress.total_steps:,} (epoch {progress.epoch:.1f}), loss {progress.loss:.4g}")
        if not self.compact and time.monotonic() - self.last_draw >= LIVE_REFRESH_SECONDS:
            partial = progress.snapshot()
            self.heatmap.altair_chart(charts.styled(charts.heatmap_chart(partial), self.present), width="stretch")
            self.loss.altair_chart(charts.styled(charts.loss_chart(partial), self.present), width="stretch")
            self.last_draw = time.monotonic()

    def clear(self) -> None:
        for slot in (self.status, self.progress, self.heatmap, self.loss):
            slot.empty()


def _log_to_server_console() -> None:
    """Trainings started, finished and stopped go to the server's console: what a host watching a
    class needs to see. (Streamlit configures only its own loggers.)"""
    if not LOG.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s gradviz %(levelname)s %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False


def _session_ended():
    """should_stop for train(): true once the browser tab that asked for the training has gone
    (closed, reloaded, lost its connection), so nobody waits behind a result nobody will see."""
    owner = session_id()
    if owner is None or not runtime.exists():
        return lambda: False
    server = runtime.get_instance()
    return lambda: not server.is_active_session(owner)


def stored_result(config: RunConfig) -> RunResult | None:
    """The run from the process cache, or a precomputed one from the store (checked against
    today's data, then cached); None if neither has it."""
    key = config.cache_key()
    cached = COORDINATOR.cache.get(key)
    if cached is not None:
        return cached
    store = ResultStore()
    if store.has(config):  # precomputed (python -m gradviz precompute)
        dataset = _load_data(config)
        stored = store.get(config, dataset.info()) if dataset is not None else None
        if stored is not None:
            COORDINATOR.cache.put(key, stored)
            return stored
    return None


def obtain_result(config: RunConfig, run_requested: bool, present: bool, fix_button: bool = False,
                  label: str = "") -> RunResult | None:
    """The cached or stored result, or a fresh streamed training if asked for; None if neither.
    `label` names the config in a refusal on a page of several (Compare's "B", a cell's name)."""
    result = stored_result(config)
    if result is not None:
        return result
    # The limits are checked before Run is pressed too, so a config over them says so at once.
    if not examples_ok(config, fix_button) or not memory_ok(config, "training", fix_button, label):
        return None
    if not _data_available() or not run_requested:  # missing data is said on every run of the page, once
        return None
    return train_streamed(config, LiveView(present), fix_button)


def search_trial(config: RunConfig, label: str) -> RunResult | None:
    """A fix search's trial run: cached or stored, else trained through the queue like any run,
    showing only its progress. None if it could not train (the reason is on the page)."""
    result = stored_result(config)
    if result is not None or not _data_available():
        return result
    return train_streamed(config, LiveView(present=False, compact=True, label=label), offer_closest=False)


def train_streamed(config: RunConfig, live: LiveView, offer_closest: bool) -> RunResult | None:
    """A training for this session through the server's queue (or the cluster's), streamed into
    `live`; None if turned away, superseded or failed (said on the page)."""
    if cluster.address() is not None and cluster.client() is not None:  # the cluster queues and trains
        live.status.info(f"Sent to the cluster at {literal(cluster.address())}: waiting for a free worker ...",
                         icon=":material/lan:")
        result = _train_for_session(config, None, live, local_guard=lambda: _gated(config, live))
        if result is not None:
            COORDINATOR.cache.put(config.cache_key(), result)
        live.clear()
        return result
    if cluster.address() is not None:
        st.warning(literal(cluster.problem()), icon=":material/lan:")
    live.status.info("Preparing the training ...", icon=":material/model_training:")
    try:
        with COORDINATOR.gate.turn(on_wait=live.waiting, owner=session_id()):
            result = _train_in_turn(config, live)
    except QueueFull as full:
        live.clear()
        server_busy(config, full, offer_closest)
        return None
    except Superseded:  # this session asked for another run meanwhile; that one has our place
        return None
    live.clear()
    return result


def _train_in_turn(config: RunConfig, live: LiveView) -> RunResult | None:
    key = config.cache_key()
    result = COORDINATOR.cache.get(key)  # another session may have trained it while we waited
    if result is None:
        # The arrays are built only now: twenty queued sessions would otherwise hold twenty copies.
        dataset = _load_data(config)
        if dataset is None:
            return None
        live.status.info(f"Training on {literal(dataset.description)}", icon=":material/model_training:")
        needs = cost.training(config, len(dataset.y_train)).mb  # at most the cap: checked before the queue
        with COORDINATOR.memory.reserve(needs, on_wait=live.waiting_for_memory):
            result = _train_for_session(config, dataset, live)
        if result is not None:
            COORDINATOR.cache.put(key, result)
    return result


def _data_available() -> bool:
    """MNIST can be read here (says what to do if not); cheap after the first call."""
    return read_data(load_files) is not None


@contextmanager
def _gated(config: RunConfig, live: LiveView) -> Iterator[None]:
    """This process's gates, for a cluster's training that falls back to training here."""
    with COORDINATOR.gate.turn(on_wait=live.waiting, owner=session_id()):
        with COORDINATOR.memory.reserve(cost.training(config, available_train_images()).mb,
                                        on_wait=live.waiting_for_memory):
            yield


def _train_for_session(config: RunConfig, dataset, live: LiveView, local_guard=nullcontext) -> RunResult | None:
    """One training for this session, here or on the cluster (`dataset` None: load it only if it
    falls back to training here): None if it failed (with a message) or the session left."""
    _log_to_server_console()
    COORDINATOR.trainings_started += 1
    tag, started = config.cache_key()[:10], time.monotonic()
    LOG.info("training %s started (%s); %d waiting", tag, urlencode(config.to_strings(only_changed=True)) or "defaults",
             COORDINATOR.gate.waiting)
    outcome = "interrupted (its session ended or reran)"  # a Streamlit stop/rerun raised through train()
    result = None
    try:
        result = cluster.train(config, lambda c: dataset if dataset is not None else load_dataset(c.train_size),
                               on_progress=live.update, should_stop=_session_ended(), local_guard=local_guard,
                               on_note=lambda message: st.warning(literal(message), icon=":material/lan:"))
        if result is None or result.stopped:
            outcome = "stopped: its session ended"
            return None
        outcome = "finished"
        return result
    except MemoryLimit as limit:  # a cluster worker's own cap, lower than this server's
        outcome = "refused (memory)"
        live.clear()
        show_memory_refusal(limit, offer=False, prefix="The cluster's worker refused this training: ")
        return None
    except Exception as error:  # noqa: BLE001 - a page shows a message, never a traceback
        outcome = f"failed ({type(error).__name__})"
        LOG.exception("training failed for %s", config)
        live.clear()
        st.error(failure_message("Training", error), icon=":material/error:")
        return None
    finally:
        steps = result.steps_done if result is not None else live.steps
        where = result.meta.get("where", "in-process") if result is not None else "in-process"
        LOG.info("training %s %s after %d steps, %.1f s (%s)", tag, outcome, steps, time.monotonic() - started, where)
        release_free_memory()  # what this training freed goes back to the OS before the next one starts
        LOG.info("caches hold %s (budgets: %s)",
                 ", ".join(f"{name} {size / 2**20:.0f} MB" for name, size in cache_sizes().items()) or "nothing",
                 ", ".join(f"{size // 2**20} MB {label}" for label, size in cache_budgets().items()))
