"""The Explorer page: controls, the init-time view, cached/streamed training, charts, diagnosis,
sharing, before and after; in presentation mode, one screen per run and a talk's Previous/Next."""

from __future__ import annotations

import streamlit as st

from gradviz.diagnosis.diagnose import diagnose
from gradviz.serving.limits import over_budget
from gradviz.serving.results import COORDINATOR
from gradviz.serving.settings import max_examples
from gradviz.talk import talk_link
from gradviz.ui.before_after import before_and_after, keep_button, reference_for
from gradviz.ui.components import detail_tabs, findings_kinds, findings_panel, headline, main_charts
from gradviz.ui.controls import sidebar_controls
from gradviz.ui.fix_search import fix_search_panel, plan_for
from gradviz.ui.init_view import init_view
from gradviz.ui.lesson import lesson_header, lesson_place, lesson_verdicts
from gradviz.ui.limits import memory_refusal
from gradviz.ui.present import PRESENTATION_CSS, TALK_KEY, stage, talk_bar, talk_slides
from gradviz.ui.runner import data_ready, obtain_result
from gradviz.ui.session import init_session, page_config, sync_url
from gradviz.ui.text import literal, notes


def explorer_page() -> None:
    """The main page: controls, cached/streamed training, charts, diagnosis, sharing; a lesson's
    step above them when the link names one."""
    page_config("explorer")
    init_session(page_keys=(TALK_KEY,))
    place, lesson_notes = lesson_place()  # before the controls: a step locks some of them
    if place is not None and st.session_state.get("present"):  # the stage would skip a step's prediction
        st.session_state.present = False  # (legal here: the toggle is not drawn yet)
        lesson_notes.append("Presentation mode is off while a lesson is open (leave the lesson to present).")
    state, messages, run_clicked = sidebar_controls("Run")
    talk, talk_notes = talk_slides()
    if state.present:
        st.markdown(PRESENTATION_CSS, unsafe_allow_html=True)
    else:
        st.title("gradviz")
        st.caption("Watch gradients vanish or explode in a real Keras model trained on MNIST, and fix them.")
    notes(st.session_state.pop("url_messages", []) + messages + talk_notes + lesson_notes)
    sync_url(state, ({TALK_KEY: talk_link(talk)} if talk else {}) | (place.query() if place else {}))
    if place is not None and not state.present and not lesson_header(place):
        return  # a prediction first: neither the start nor the run is shown before it
    probe = None if state.present else init_view(state.config)
    result = _result(state, run_clicked)
    findings = diagnose(result) if result is not None else []
    if state.present:
        stage(result, findings, talk, state)
        return
    talk_bar(talk, state)
    if result is not None:
        _run_view(result, findings, state, probe, place)


def _run_view(result, findings, state, probe, place) -> None:
    """The run: headline, charts (beside the kept reference, if any), the lesson's verdicts, the
    diagnosis and its verified fix, the detail tabs."""
    headline(result, findings, state.preset)
    reference = reference_for(result)
    if reference is not None:  # after Apply fix, or a run kept on purpose: the two side by side
        before_and_after(reference, result)
    else:
        main_charts(result)
        if place is None or place.step.challenge is None:  # a challenge's reference would show its advice
            keep_button()
    open_challenge = place is not None and lesson_verdicts(place, result, findings, state.config)
    # A run shown under changed settings keeps its findings, but its fixes were for its own settings.
    stale = result.config.cache_key() != state.config.cache_key()
    # A challenge is the student's to solve: no fix is offered (the search would give the answer away).
    challenge = place is not None and place.step.challenge is not None
    search = None if stale or challenge else plan_for(result, findings)
    if open_challenge:  # the findings' advice names the answer: only what they found, until it is done
        findings_kinds(findings)
    else:
        findings_panel(findings, stale=stale, buttons=search is None and not challenge)
    search_slot = st.container()  # filled last, so the charts below do not wait for the search
    where = result.meta.get("where", "in-process")
    st.caption(f"Data: {literal(result.data['description'])}. Trained {result.steps_done:,} steps in "
               f"{result.seconds:.1f} s"
               + ("." if where == "in-process" else f" on the cluster's worker {literal(where)}."))
    detail_tabs(result, state, probe)
    if search is not None:  # the fix offered is the one that made this run learn, tried here
        with search_slot:
            fix_search_panel(search)


def _result(state, run_clicked: bool):
    """This config's run (cached, stored or trained now if asked for), else the previous one shown."""
    run_requested = run_clicked or st.session_state.pop("autorun", False)
    result = obtain_result(state.config, run_requested, state.present, fix_button=True)
    if result is not None:
        st.session_state.shown_key = state.config.cache_key()
        return result
    result = COORDINATOR.cache.get(st.session_state.get("shown_key", ""))
    # Only when nothing else explains why there is no run (missing data, a limit: those said so).
    if not run_requested and data_ready() and over_budget(state.config, max_examples()) is None \
            and memory_refusal(state.config) is None:
        st.info("Settings changed: press **Run** in the sidebar to train this configuration (a few seconds"
                + (" on a laptop). Below: the previous run, with its own settings." if result else ")."),
                icon=":material/play_arrow:")
    return result
