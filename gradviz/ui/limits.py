"""The page's side of the server's limits (gradviz.serving.limits): a refusal says so with its
numbers, keeps every other setting, and offers the closest config that fits as one click; a full
queue offers the closest run the server already has."""

from __future__ import annotations

import logging

import streamlit as st

from gradviz.config import RunConfig
from gradviz.data import available_train_images
from gradviz.serving.gate import QueueFull
from gradviz.serving.limits import (
    OUT_OF_MEMORY,
    MemoryLimit,
    check_memory,
    describe_change,
    memory_message,
    over_budget,
    within_budget,
)
from gradviz.serving.results import COORDINATOR, nearest
from gradviz.serving.settings import max_examples
from gradviz.serving.store import ResultStore
from gradviz.ui.session import blocked_move, show_config
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
        blocked = blocked_move(config, allowed)
        st.button(f"Train {allowed.epochs} epoch(s) × {allowed.train_size:,} images instead", on_click=show_config,
                  args=(allowed,), icon=":material/speed:", key="examples_closest", disabled=bool(blocked),
                  help=blocked)
    return False


def memory_refusal(config: RunConfig, what: str = "training") -> MemoryLimit | None:
    """Why `config` may not train (or be probed) here for memory, or None if it fits."""
    try:
        check_memory(config, what, images=available_train_images() if what == "training" else None)
        return None
    except MemoryLimit as limit:
        return limit


def memory_ok(config: RunConfig, what: str = "training", offer: bool = False, label: str = "") -> bool:
    """True if `config` fits the memory cap; otherwise says so with the numbers (naming it by
    `label` where a page shows several), and (offer) a button that switches to the closest config
    that fits."""
    limit = memory_refusal(config, what)
    if limit is None:
        return True
    show_memory_refusal(limit, offer, prefix=f"**{label}**: " if label else "")
    return False


def refused(config: RunConfig) -> bool:
    """`config` may not train here (over the examples budget or the memory cap); nothing is shown."""
    return over_budget(config, max_examples()) is not None or memory_refusal(config) is not None


def show_memory_refusal(limit: MemoryLimit, offer: bool, prefix: str = "") -> None:
    """The refusal's numbers (after `prefix`: whose config it is), and (offer) a button for the
    closest config that fits; without the button the message names that config instead."""
    button = offer and limit.closest is not None
    st.warning(prefix + memory_message(limit, markdown=True, closest=not button), icon=":material/memory:")
    if button:
        size = limit.closest_estimate()
        blocked = blocked_move(limit.config, limit.closest)
        st.button(f"Use {describe_change(limit.config, limit.closest)} instead (about {size.mb:,.0f} MB)",
                  on_click=show_config, args=(limit.closest,), icon=":material/memory:",
                  key=f"memory_closest_{limit.what}", disabled=bool(blocked), help=blocked)


def failure_message(what: str, error: Exception, training: bool = True) -> str:
    """The page's line for work that failed (the last line of defence: the server goes on serving)."""
    first = (str(error).strip().splitlines() or [""])[0]
    if type(error).__name__ in OUT_OF_MEMORY:
        return (f"{what} ran out of memory ({type(error).__name__}) although its estimate was under this "
                f"server's cap. Nothing was kept and the server goes on serving; a smaller network may fit.")
    smaller = "a smaller model or fewer training images" if training else "a smaller model"
    return f"{what} failed ({type(error).__name__}: {literal(first)}). Nothing was kept; {smaller} may fit."


def server_busy(config: RunConfig, full: QueueFull, offer: bool) -> None:
    """Turned away at the queue's cap: say so, and offer the closest run the server already has."""
    LOG.info("turned a training away: %s", full)
    st.warning(f"This server is busy: {full.waiting} trainings are waiting and it queues at most {full.cap}. "
               "Try again in a minute.", icon=":material/groups:")
    closest = nearest(config, COORDINATOR.cache.configs() + ResultStore().configs())
    if closest is None or not offer:
        return
    blocked = blocked_move(config, closest)
    st.button(f"Show the closest run it has ({describe_change(config, closest)})", on_click=show_config,
              args=(closest,), icon=":material/history:", key="busy_nearest", disabled=bool(blocked), help=blocked)
