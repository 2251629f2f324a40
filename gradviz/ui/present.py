"""Presentation mode: one 16:9 screen with no scrolling (headline, heatmap, loss and the top
finding side by side, sized from the window), and a talk's slides with Previous/Next, on a
clicker's PageUp/PageDown and the arrow keys too."""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import streamlit as st

from gradviz import charts
from gradviz.diagnosis.diagnose import Finding
from gradviz.lessons.library import load_lessons
from gradviz.result import RunResult
from gradviz.talk import Slide, parse_talk
from gradviz.ui.components import finding_box, headline_text
from gradviz.ui.fix_search import plan_for, replayed_from_store
from gradviz.ui.session import drop_reference, show_config
from gradviz.ui.text import literal
from gradviz.urlstate import AppState
from gradviz.words import network_in_words

TALK_KEY = "talk"
# Streamlit sizes type in rem: a root size that follows the window's width scales every text,
# heading and control at once (16 px on a 1280-wide screen, 24 px on 1920). The stage's two columns
# take the window's height left below the headline, and the charts stretch to fill them; the top
# finding keeps at most three lines (the speaker says the rest), so no slide runs off the screen.
PRESENTATION_CSS = """
<style>
  html { font-size: clamp(14px, 1.25vw, 30px); }
  .block-container { padding: 2.6rem 1.2rem 0 1.2rem !important; max-width: 100% !important; }
  .st-key-stage_heatmap { height: calc(100vh - 12rem) !important; flex: 0 0 auto !important; }
  .st-key-stage_loss { height: calc(100vh - 23rem) !important; flex: 0 0 auto !important; }
  .st-key-stage_finding [data-testid=stAlert] p { display: -webkit-box; -webkit-line-clamp: 3;
    -webkit-box-orient: vertical; overflow: hidden; }
  .st-key-stage_top h4 { padding: 0.2rem 0 0 0; }
  .st-key-stage_top p { margin-bottom: 0; }
</style>
"""
# The arrow keys' twins of Previous/Next: in the page (their shortcuts work), never seen.
HIDDEN_TWINS = """
<style>
  .st-key-talk_previous_arrow, .st-key-talk_next_arrow { display: none !important; }
</style>
"""


def talk_slides() -> tuple[list[Slide], list[str]]:
    """The link's talk (`talk=preset,lesson:NAME,field=value;field=value,...`, see gradviz.talk), and
    notes on the items left out."""
    raw = str(st.query_params.get(TALK_KEY, ""))
    if not raw.strip():
        return [], []
    lessons = load_lessons()[0] if "lesson:" in raw else {}
    return parse_talk(raw, lessons)


def slide_index(slides: list[Slide], config) -> int:
    """Which slide the controls show: the one last moved to if it still matches, else the first
    that does; -1 when the controls match none (moved away from the talk)."""
    at = st.session_state.get("talk_at", -1)
    if 0 <= at < len(slides) and slides[at].config == config:
        return at
    return next((i for i, slide in enumerate(slides) if slide.config == config), -1)


def talk_bar(slides: list[Slide], state: AppState) -> None:
    """Previous / Next through the talk; on stage also PageUp / PageDown (a presentation clicker)
    and the arrow keys (off the stage those keys scroll the page and move sliders, as usual);
    cached or precomputed runs show at once."""
    if not slides:
        return
    here = slide_index(slides, state.config)
    if state.present:
        st.markdown(HIDDEN_TWINS, unsafe_allow_html=True)
    back, where, forward = st.columns([2, 1, 2], vertical_alignment="center")
    keys = state.present
    if here > 0:
        _move_buttons(back, here - 1, slides, "previous", ("PageUp", "Left") if keys else None)
    where.markdown(f"{here + 1 if here >= 0 else '-'} / {len(slides)}")
    if here + 1 < len(slides):
        _move_buttons(forward, here + 1, slides, "next", ("PageDown", "Right") if keys else None)


def _move_buttons(column, target: int, slides: list[Slide], direction: str, keys: tuple[str, str] | None) -> None:
    """A visible button on the clicker's key and a hidden twin on the arrow key (Streamlit gives a
    button one shortcut); without keys, the button alone."""
    label = "Previous" if direction == "previous" else ("Next" if target else "Start the talk")
    icon = ":material/arrow_back:" if direction == "previous" else ":material/arrow_forward:"
    on_keys = f" ({keys[0]} or {keys[1]} arrow)" if keys else ""
    column.button(label, on_click=_go, args=(slides, target), icon=icon, key=f"talk_{direction}",
                  type="primary" if direction == "next" else "secondary", width="stretch",
                  shortcut=keys[0] if keys else None, help=f"Slide {target + 1}: {slides[target].title}{on_keys}")
    if keys:
        column.button(label, on_click=_go, args=(slides, target), key=f"talk_{direction}_arrow", shortcut=keys[1])


def _go(slides: list[Slide], target: int) -> None:
    st.session_state.talk_at = target
    drop_reference()
    show_config(slides[target].config)


def stage(result: RunResult | None, findings: list[Finding], talk: list[Slide], state: AppState) -> None:
    """The one-screen view: the headline and the network in words beside the talk's Previous/Next,
    then the heatmap beside the loss curve and the top finding."""
    title, navigation = st.container(key="stage_top").columns([3, 2], vertical_alignment="center")
    with navigation:
        talk_bar(talk, state)
    if result is None:
        return
    title.markdown(f"#### {headline_text(result, findings)}")
    title.markdown(network_in_words(result.config))  # built from a validated config: no outside text
    left, right = st.columns([3, 2], gap="medium")
    with left.container(key="stage_heatmap"):
        st.altair_chart(_fit(charts.heatmap_chart(result)), width="stretch", height="stretch")
    with right:
        with st.container(key="stage_loss"):
            st.altair_chart(_fit(charts.loss_chart(result)), width="stretch", height="stretch")
        _top_finding(result, findings, state)


def _top_finding(result: RunResult, findings: list[Finding], state: AppState) -> None:
    """The top finding, and a fix button only for a change the fix search verified on this run:
    on stage the search is read from stored runs (precompute the talk), never trained live."""
    top = findings[0]
    fix, said = _stage_fix(result, findings)
    stale = result.config.cache_key() != state.config.cache_key()  # a fix is for the run it was tried on
    with st.container(key="stage_finding"):
        finding_box(replace(top, fix=fix), key="stage_fix", text=literal(_first_sentence(top.message)),
                    primary=True, stale=stale)
    if said:
        st.caption(said)


def _stage_fix(result: RunResult, findings: list[Finding]) -> tuple[dict, str]:
    """(the verified fix or {}, what to say when there is none), worked out once per run and
    session: replaying the search reads the store, which may be remote."""
    memo = st.session_state.setdefault("stage_fixes", {})
    key = result.config.cache_key()
    if key not in memo:
        search = plan_for(result, findings)
        verified = replayed_from_store(search) if search is not None else None
        if search is None:
            memo[key] = ({}, "")
        elif verified is None:
            memo[key] = ({}, "No fix shown until one is tried on this run (the Explorer tries them).")
        else:
            memo[key] = (verified.verified_fix or {},
                         "" if verified.verified_fix else "No single change made this run learn (see the Explorer).")
        while len(memo) > 64:  # a session's talk, not the whole store
            memo.pop(next(iter(memo)))
    return memo[key]


def _fit(chart):
    """The whole chart (axes, legend) fitted into the box the page gives it, its type sized from
    the window's width as the page's is (Vega's windowSize() when it draws): 1.25 % of it for
    labels, so 16 px on a 1280-wide screen and 24 px on 1920."""
    def size(percent: float):
        return alt.ExprRef(expr=f"clamp(windowSize()[0] * {percent / 100}, 11, 40)")

    return (chart.properties(autosize={"type": "fit", "contains": "padding"})
            .configure_axis(labelFontSize=size(1.25), titleFontSize=size(1.4), labelLimit=400)
            .configure_legend(labelFontSize=size(1.25), titleFontSize=size(1.4), labelLimit=400, titleLimit=400)
            .configure_title(fontSize=size(1.6), anchor="start", limit=2000))


def _first_sentence(message: str) -> str:
    """A finding's first sentence: on a projected screen the rest is for the speaker to say."""
    cut = message.find(". ")
    return message if cut < 0 else message[:cut + 1]
