"""The page's side of the server's limits (gradviz.serving.limits): a refusal says so with its
numbers, keeps every other setting, and offers the closest config that fits as one click; a full
queue offers the closest run the server already has."""

from __future__ import annotations

import logging

import streamlit as st

from gradviz.config import RunConfig
from gradviz.data import available_train_images
from gradviz.serving import cost
from gradviz.serving.gate import QueueFull
from gradviz.serving.limits import (
    MemoryLimit,
    check_memory,
    describe_change,
    max_examples,
    memory_message,
    over_budget,
    within_budget,
)
from gradviz.serving.results import COORDINATOR, nearest
from gradviz.serving.store import ResultStore
from gradviz.ui.session import show_config
from gradviz.ui.text import literal

LOG = logging.getLogger("gradviz")


def examples_ok(config: RunConfig, offer: bool) -> bool:
    """True if `config` is within the examples budget; otherwise says why (and offers the nearest run that is)."""
    limit = max_examples()
    message = over_budget(config, limit)
    if message is None:
        return True
    st.warning(message, icon=":material/speed:")
    if offer:
        allowed = within_budget(config, limit)
        st.button(f"Train {allowed.epochs} epoch(s) × {allowed.train_size:,} images instead", on_click=show_config,
                  args=(allowed,), icon=":material/speed:", key="examples_closest")
    return False


def memory_refusal(config: RunConfig, what: str = "training") -> MemoryLimit | None:
    """Why `config` may not train (or be probed) here for memory, or None if it fits."""
    try:
        check_memory(config, what, images=available_train_images() if what == "training" else None)
        return None
    except MemoryLimit as limit:
        return limit


def memory_ok(config: RunConfig, what: str = "training", offer: bool = False) -> bool:
    """True if `config` fits the memory cap; otherwise says so with the numbers, and (offer) a
    button that switches to the closest config that fits."""
    limit = memory_refusal(config, what)
    if limit is None:
        return True
    show_memory_refusal(limit, offer)
    return False


def show_memory_refusal(limit: MemoryLimit, offer: bool) -> None:
    st.warning(memory_message(limit, markdown=True), icon=":material/memory:")
    if offer and limit.closest is not None:
        size = cost.training(limit.closest) if limit.what == "training" else cost.probe(limit.closest)
        st.button(f"Use {describe_change(limit.config, limit.closest)} instead (about {size.mb:,.0f} MB)",
                  on_click=show_config, args=(limit.closest,), icon=":material/memory:",
                  key=f"memory_closest_{limit.what}")


OUT_OF_MEMORY = ("MemoryError", "ResourceExhaustedError")  # Python's and TensorFlow's


def failure_message(what: str, error: Exception) -> str:
    """The page's line for work that failed (the last line of defence: the server goes on serving)."""
    first = (str(error).strip().splitlines() or [""])[0]
    if type(error).__name__ in OUT_OF_MEMORY:
        return (f"{what} ran out of memory ({type(error).__name__}) although its estimate was under this "
                f"server's cap. Nothing was kept and the server goes on serving; a smaller network fits.")
    return (f"{what} failed ({type(error).__name__}: {literal(first)}). Nothing was kept; a smaller model or fewer "
            f"training images may fit.")


def server_busy(config: RunConfig, full: QueueFull, offer: bool) -> None:
    """Turned away at the queue's cap: say so, and offer the closest run the server already has."""
    LOG.info("turned a training away: %s", full)
    st.warning(f"This server is busy: {full.waiting} trainings are waiting and it queues at most {full.cap}. "
               "Try again in a minute.", icon=":material/groups:")
    closest = nearest(config, COORDINATOR.cache.configs() + ResultStore().configs())
    if closest is None or not offer:
        return
    st.button(f"Show the closest run it has ({describe_change(config, closest)})", on_click=show_config,
              args=(closest,), icon=":material/history:", key="busy_nearest")
