"""Before and after: the run kept as a reference (on Apply fix, or on demand) beside the run shown,
heatmaps on one colour scale, curves overlaid, the findings of both."""

from __future__ import annotations

import streamlit as st

from gradviz.result import RunResult
from gradviz.sweeps.compare import differing_fields
from gradviz.ui.components import curves_pair, findings_columns, heatmaps_on_one_scale
from gradviz.ui.session import REFERENCE_KEY, drop_reference, keep_shown_as_reference


def reference_for(result: RunResult) -> RunResult | None:
    """The kept run, if there is one and it is not this very run."""
    reference = st.session_state.get(REFERENCE_KEY)
    return reference if reference is not None and reference.config != result.config else None


def labels(before: RunResult, after: RunResult) -> tuple[str, str]:
    """"Before: lr=10" and "After: lr=0.001": each run named by the settings that differ."""
    fields = differing_fields([before.config, after.config])

    def named(config):
        values = config.to_strings()
        return ", ".join(f"{field}={values[field]}" for field in fields)

    return f"Before: {named(before.config)}", f"After: {named(after.config)}"


def before_and_after(before: RunResult, after: RunResult) -> None:
    """Both runs' heatmaps on one colour scale, their curves overlaid and their findings, with a
    button that lets the reference go."""
    head, clear = st.columns([4, 1], vertical_alignment="center")
    head.subheader("Before and after")
    clear.button("Clear reference", key="clear_reference", on_click=drop_reference, icon=":material/close:",
                 width="stretch")
    runs = dict(zip(labels(before, after), (before, after)))  # labels built from validated configs
    st.caption("Both heatmaps use one colour scale, so the same shade is the same gradient norm.")
    heatmaps_on_one_scale(runs, height=300)
    curves_pair(runs)
    findings_columns(runs, top_only=True)


def keep_button() -> None:
    st.button("Keep as reference", key="keep_reference", on_click=keep_shown_as_reference,
              icon=":material/push_pin:",
              help="Keep this run beside the next one you train: heatmaps on one colour scale, curves overlaid.")
