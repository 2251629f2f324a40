"""The Share & export panel: the link, the run as CSV or JSON, any chart as PNG or SVG, Keras code."""

from __future__ import annotations

import io
import json

import streamlit as st

from gradviz import charts
from gradviz.diagnosis.diagnose import diagnose
from gradviz.report import summary
from gradviz.result import RunResult
from gradviz.snippet import keras_snippet
from gradviz.ui.session import share_link
from gradviz.urlstate import AppState


def export_panel(result: RunResult, state: AppState) -> None:
    st.markdown("**Link to this view** (copy with the icon on the right)")
    st.code(share_link(state), language=None)
    stem = state.preset or f"gradviz-{state.config.cache_key()}"
    a, b, c = st.columns(3)
    a.download_button("Steps as CSV", data=lambda: result.steps_frame().to_csv(index=False),
                      file_name=f"{stem}-steps.csv",
                      mime="text/csv", icon=":material/table:", on_click="ignore")
    b.download_button("Run as JSON", data=lambda: run_json(result), file_name=f"{stem}.json", mime="application/json",
                      icon=":material/data_object:", on_click="ignore")
    with c:
        name = st.selectbox("Chart", list(charts.ALL_CHARTS), key="export_chart")
        fmt = st.radio("Format", ("png", "svg"), horizontal=True, key="export_format")
        st.download_button(f"Download {name}.{fmt}", data=lambda: chart_file(result, name, fmt),
                           file_name=f"{stem}-{name}.{fmt}", mime="image/png" if fmt == "png" else "image/svg+xml",
                           icon=":material/image:", on_click="ignore")
    st.markdown("**Keras code** for this model and optimizer")
    st.code(keras_snippet(state.config), language="python")


def run_json(result: RunResult) -> str:
    payload = summary(result, diagnose(result))
    payload["steps"] = json.loads(result.steps_frame().to_json(orient="records"))
    payload["epochs"] = json.loads(result.loss_frame().to_json(orient="records"))
    return json.dumps(payload)


def chart_file(result: RunResult, name: str, fmt: str) -> bytes:
    """PNG/SVG through vl-convert, rendered only when asked for (it takes ~0.1-0.7 s)."""
    return figure_file(charts.ALL_CHARTS[name](result), fmt)


def figure_file(figure, fmt: str) -> bytes:
    """Any chart as PNG or SVG bytes (vl-convert, offline)."""
    buffer = io.BytesIO() if fmt == "png" else io.StringIO()
    charts.styled(figure).save(buffer, format=fmt)
    value = buffer.getvalue()
    return value if isinstance(value, bytes) else value.encode()
