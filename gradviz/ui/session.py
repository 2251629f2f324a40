"""One session's state: the URL <-> session state <-> widgets round trip, and each page's set-up."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

from gradviz.config import CLIP_FIELDS, RunConfig, changed_controls
from gradviz.serving.results import COORDINATOR
from gradviz.urlstate import (
    LESSON_KEYS,
    TEACHER_KEYS,
    TRUE_WORDS,
    AppState,
    Restrictions,
    matching_preset,
    parse_query,
    parse_restrictions,
    to_query,
)

REFERENCE_KEY = "reference_run"  # the run kept for before and after
CUSTOM = "(custom)"  # the preset picker's entry when the controls match no preset
# The tab icon is a file served by the app itself: a :material/...: icon is fetched from a font CDN
# (a third-party request from a class's page) and an emoji needs an emoji font (a box without one).
PAGE_ICON = str(Path(__file__).parent / "assets" / "icon.png")


def widget_key(field: str) -> str:
    """Session-state key of the sidebar widget that edits a RunConfig field."""
    return f"cfg_{field}"


def load_config_into_widgets(config: RunConfig) -> None:
    """Write a config into the widgets' session state (only legal before they render, or in a callback)."""
    for field, value in config.to_dict().items():
        st.session_state[widget_key(field)] = value
    st.session_state["clip_mode"], st.session_state["clip_value"] = config.clipping or ("off", 1.0)


def init_session(page_keys: tuple[str, ...] = ()) -> AppState:
    """Read a link when there is a new one; otherwise keep what the user did in this session.

    A new link is a first visit, or a query that is not the one this session last wrote (a link
    opened from the Guide, a pasted URL). An empty query on a later run is a page switch, which
    keeps the session's state.
    """
    link = st.query_params.to_dict()
    query = {k: v for k, v in link.items() if k not in (*page_keys, *TEACHER_KEYS, *LESSON_KEYS)}
    fresh = "state" not in st.session_state or (query and query != st.session_state.get("synced_query"))
    teacher_notes = _read_restrictions(link)
    st.session_state.fresh_link = bool(fresh and query)  # a new link to a configuration (ends a lesson)
    if fresh:
        state, messages = parse_query(query)
        st.session_state.state = state
        st.session_state.url_messages = messages + teacher_notes
        st.session_state.autorun = True  # a link (or a first visit) shows its result without a click
        drop_reference()
        st.session_state.preset_pick = state.preset or CUSTOM
        st.session_state.present = state.present
    if fresh or not _widgets_kept():  # Streamlit drops widget state on other pages
        load_config_into_widgets(st.session_state.state.config)
        st.session_state.setdefault("preset_pick", st.session_state.state.preset or CUSTOM)
        st.session_state.setdefault("present", st.session_state.state.present)
    return st.session_state.state


def _widgets_kept() -> bool:
    """The sidebar's values are still in session state: a page without the sidebar drops them. (A
    hidden control's value is written back on every run, so no single key tells: all are checked.)"""
    return all(key in st.session_state for key in ALWAYS_DRAWN)


# Controls drawn on every run of a page with the sidebar (the recurrent ones only for rnn/lstm/gru;
# the clip fields are one pair of widgets).
ALWAYS_DRAWN = [widget_key(f) for f in RunConfig().to_dict()
                if f not in (*CLIP_FIELDS, "step_pixels", "recurrent_initializer", "recurrent_std")] + \
    ["clip_mode", "clip_value"]


def _read_restrictions(link: dict) -> list[str]:
    """A link with `lock=` or `hide=` sets this session's restrictions (notes on unknown names); a
    link without them, such as a page switch, keeps the ones the session has."""
    if not any(key in link for key in TEACHER_KEYS):
        st.session_state.setdefault("restrictions", Restrictions())
        return []
    restrictions, messages = parse_restrictions(link.get("lock", ""), link.get("hide", ""))
    changed = restrictions != st.session_state.get("restrictions")
    st.session_state.restrictions = restrictions
    return messages if changed else []


def restrictions() -> Restrictions:
    """The controls this session's teacher link (and lesson step, see gradviz.ui.lesson) keeps fixed."""
    return st.session_state.get("step_restrictions") or st.session_state.get("restrictions", Restrictions())


def blocked_move(before: RunConfig, after: RunConfig) -> str | None:
    """blocked_note for a button that switches the controls from one config to another."""
    return _blocked_message([c for c in changed_controls(before, after) if restrictions().fixed(c)])


def blocked_note(change: dict) -> str | None:
    """Why a fix's button is disabled here: it would move a control the teacher's link keeps fixed."""
    return _blocked_message(restrictions().blocks(change))


def _blocked_message(blocked: list[str]) -> str | None:
    return f"This change moves {', '.join(blocked)}, which your teacher's link keeps fixed." if blocked else None


def drop_reference() -> None:
    """Callback: the kept run goes (a new link, another lesson step, preset or slide is another story)."""
    st.session_state.pop(REFERENCE_KEY, None)


def show_config(config: RunConfig) -> None:
    """Button callback: put `config` in the controls and show its run (trained, cached or stored)."""
    load_config_into_widgets(config)
    st.session_state.preset_pick = matching_preset(config) or CUSTOM
    st.session_state.autorun = True


def keep_shown_as_reference() -> None:
    """Callback (Apply fix, Keep as reference): the run on screen becomes the "before" (see
    gradviz.ui.before_after). The result itself is kept, not its cache key: the cache may drop it
    while the learner looks."""
    shown = COORDINATOR.cache.get(st.session_state.get("shown_key", ""))
    if shown is not None:
        st.session_state[REFERENCE_KEY] = shown


def apply_fix(fix: dict) -> None:
    """Button callback: change the controls as a finding suggests and rerun with the new config;
    the run it fixes stays beside the new one (gradviz.ui.before_after)."""
    keep_shown_as_reference()
    show_config(current_config_from_widgets()[0].replace(**fix))


def current_config_from_widgets() -> tuple[RunConfig, list[str]]:
    values = {f: st.session_state[widget_key(f)] for f in RunConfig().to_dict() if widget_key(f) in st.session_state}
    mode = st.session_state.get("clip_mode")
    for field in ("clipnorm", "global_clipnorm", "clipvalue"):
        values[field] = st.session_state.get("clip_value") if mode == field else None
    return RunConfig.coerce(values, base=RunConfig())


def sync_url(state: AppState, page_query: dict | None = None) -> None:
    """Write the state (and the page's own keys) to the URL, and remember it as ours."""
    query = to_query(state)
    st.session_state.synced_query = dict(query)
    query |= st.session_state.get("restrictions", Restrictions()).query() | (page_query or {})
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def share_link(state: AppState) -> str:
    base = (st.context.url or "").split("?")[0]
    return f"{base}?{urlencode(to_query(state))}"


def session_id() -> str | None:
    """This browser tab's Streamlit session, or None outside a server (scripts, tests)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


_this_run = threading.local()  # a page's script run happens on one thread: what it has shown so far


def first_time_this_run(what: str) -> bool:
    """True the first time `what` is asked about in this page's run (a message shown once per page,
    however many runs on it would show it)."""
    shown = getattr(_this_run, "shown", set())
    _this_run.shown = shown
    if what in shown:
        return False
    shown.add(what)
    return True


def page_config(title: str) -> None:
    """First Streamlit call of every page; presentation links start with the sidebar tucked away."""
    _this_run.shown = set()
    present = st.query_params.get("present", "").strip().lower() in TRUE_WORDS
    st.set_page_config(page_title=f"gradviz - {title}", page_icon=PAGE_ICON, layout="wide",
                       initial_sidebar_state="collapsed" if present else "expanded")

