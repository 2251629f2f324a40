"""The Explorer page: controls, cached/streamed training, charts, diagnosis, sharing."""

from __future__ import annotations

import streamlit as st

from gradviz.diagnose import diagnose
from gradviz.runs import COORDINATOR, max_examples, over_budget
from gradviz.ui.components import detail_tabs, findings_panel, headline, main_charts
from gradviz.ui.controls import sidebar_controls
from gradviz.ui.init_view import init_view
from gradviz.ui.runner import obtain_result
from gradviz.ui.session import init_session, page_config, sync_url
from gradviz.ui.text import literal, notes

PRESENTATION_CSS = """
<style>
  /* Streamlit sizes type in rem: a larger root scales every text, heading and control at once. */
  html { font-size: 22px; }
  .block-container { padding-top: 1rem; max-width: 100%; }
</style>
"""


def explorer_page() -> None:
    """The main page: controls, cached/streamed training, charts, diagnosis, sharing."""
    page_config("explorer")
    init_session()
    state, messages = sidebar_controls()
    run_clicked = st.sidebar.button("Run", type="primary", icon=":material/play_arrow:", width="stretch")
    if state.present:
        st.markdown(PRESENTATION_CSS, unsafe_allow_html=True)
    st.title("gradviz")
    st.caption("Watch gradients vanish or explode in a real Keras model trained on MNIST, and fix them.")
    notes(st.session_state.pop("url_messages", []) + messages)
    sync_url(state)
    probe = None if state.present else init_view(state.config)
    run_requested = run_clicked or st.session_state.pop("autorun", False)
    result = obtain_result(state.config, run_requested, state.present, fix_button=True)
    if result is None:
        result = COORDINATOR.cache.get(st.session_state.get("shown_key", ""))
        if over_budget(state.config, max_examples()) is None:  # otherwise obtain_result said why
            st.info("Settings changed: press **Run** in the sidebar to train this configuration (a few seconds"
                    + (" on a laptop). Below: the previous run." if result else ")."), icon=":material/play_arrow:")
        if result is None:
            return
    else:
        st.session_state.shown_key = state.config.cache_key()
    findings = diagnose(result)
    headline(result, findings, state.preset)
    main_charts(result, state.present)
    findings_panel(findings)
    st.caption(f"Data: {literal(result.data['description'])}. Trained {result.steps_done:,} steps in "
               f"{result.seconds:.1f} s.")
    if not state.present:
        detail_tabs(result, state, probe)
