"""Presentation mode: one 16:9 screen with no scrolling (headline, heatmap, loss and the top
finding side by side, sized from the window), and a talk's sequence of presets with Previous/Next."""

from __future__ import annotations

import altair as alt
import streamlit as st

from gradviz import charts
from gradviz.diagnosis.diagnose import Finding
from gradviz.presets import PRESETS
from gradviz.result import RunResult
from gradviz.ui.components import finding_box, headline_text
from gradviz.ui.session import show_config
from gradviz.ui.text import literal
from gradviz.urlstate import AppState

TALK_KEY = "talk"
# Streamlit sizes type in rem: a root size that follows the window's width scales every text,
# heading and control at once (16 px on a 1280-wide screen, 24 px on 1920). The stage's two columns
# take the window's height left below the headline, and the charts stretch to fill them.
PRESENTATION_CSS = """
<style>
  html { font-size: clamp(14px, 1.25vw, 30px); }
  .block-container { padding: 2.6rem 1.2rem 0 1.2rem !important; max-width: 100% !important; }
  .st-key-stage_heatmap { height: calc(100vh - 9rem) !important; flex: 0 0 auto !important; }
  .st-key-stage_loss { height: calc(100vh - 18rem) !important; flex: 0 0 auto !important; }
  .st-key-stage_top h4 { padding: 0.2rem 0; }
</style>
"""


def talk_names() -> tuple[list[str], list[str]]:
    """The link's talk sequence (`talk=presetA,presetB,...`): known preset names, and notes on the rest."""
    raw = str(st.query_params.get(TALK_KEY, ""))
    names, messages = [], []
    for name in (n.strip() for n in raw.split(",") if n.strip()):
        if name in PRESETS:
            names.append(name)
        else:
            messages.append(f"Talk: unknown preset {name[:40]!r} left out of the sequence.")
    return names, messages


def talk_bar(names: list[str], state: AppState) -> None:
    """Previous / Next through the talk's presets; cached or precomputed runs show at once."""
    if not names:
        return
    here = names.index(state.preset) if state.preset in names else -1
    back, where, forward = st.columns([5, 2, 5], vertical_alignment="center")
    if here > 0:
        back.button(names[here - 1], on_click=_go, args=(names[here - 1],), icon=":material/arrow_back:",
                    key="talk_previous", width="stretch", help="Previous in this talk")
    where.markdown(f"{here + 1 if here >= 0 else '-'} / {len(names)}")
    if here + 1 < len(names):
        forward.button(names[here + 1], on_click=_go, args=(names[here + 1],), icon=":material/arrow_forward:",
                       key="talk_next", type="primary", width="stretch", help="Next in this talk")


def _go(name: str) -> None:
    show_config(PRESETS[name].config)


def stage(result: RunResult | None, findings: list[Finding], talk: list[str], state: AppState) -> None:
    """The one-screen view: the headline beside the talk's Previous/Next, then the heatmap beside
    the loss curve and the top finding."""
    title, navigation = st.container(key="stage_top").columns([3, 2], vertical_alignment="center")
    with navigation:
        talk_bar(talk, state)
    if result is None:
        return
    title.markdown(f"#### {headline_text(result, findings)}")
    left, right = st.columns([3, 2], gap="medium")
    with left.container(key="stage_heatmap"):
        st.altair_chart(_fit(charts.heatmap_chart(result)), width="stretch", height="stretch")
    with right:
        with st.container(key="stage_loss"):
            st.altair_chart(_fit(charts.loss_chart(result)), width="stretch", height="stretch")
        finding_box(findings[0], key="stage_fix", text=literal(_first_sentence(findings[0].message)), primary=True)


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
