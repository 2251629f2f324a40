"""The Compare page: 2-4 configurations trained with the same seed and data, overlaid."""

from __future__ import annotations

import streamlit as st

from gradviz import charts
from gradviz.result import RunResult
from gradviz.sweeps.compare import (
    LABELS,
    VARIANT_KEYS,
    build_variants,
    describe,
    differing_fields,
    settings_table,
)
from gradviz.ui.components import chart, curves_pair, findings_columns, heatmaps_on_one_scale
from gradviz.ui.controls import sidebar_controls
from gradviz.ui.runner import obtain_result, press_to_train
from gradviz.ui.session import init_session, page_config, sync_url
from gradviz.ui.text import notes

DEFAULT_VARIANT = "activation=relu; initializer=he_normal"
DIFF_STYLE = "background-color: #fff3bf; font-weight: 600"


def _variant_inputs() -> list[str]:
    """B-D as 'field=value; ...' text; from the link when there is one, else one useful default."""
    query = st.query_params.to_dict()
    linked = any(k in query for k in VARIANT_KEYS)
    if linked and {k: query.get(k, "") for k in VARIANT_KEYS} != st.session_state.get("synced_variants"):
        for key in VARIANT_KEYS:
            st.session_state[f"variant_{key}"] = str(query.get(key, ""))
    for key in VARIANT_KEYS:
        default = DEFAULT_VARIANT if key == "b" and not linked else ""
        st.session_state.setdefault(f"variant_{key}", st.session_state.get(f"kept_variant_{key}", default))
    texts = []
    for column, key, label in zip(st.columns(len(VARIANT_KEYS)), VARIANT_KEYS, LABELS[1:]):
        texts.append(column.text_input(f"{label}: changes to A", key=f"variant_{key}",
                                       placeholder="e.g. batch_norm=true; learning_rate=0.01"))
        st.session_state[f"kept_variant_{key}"] = texts[-1]  # survives a visit to another page
    st.session_state.synced_variants = dict(zip(VARIANT_KEYS, texts))
    return texts


def _highlight_differences(table):
    differs = table.nunique(axis=1) > 1
    return table.style.apply(lambda row: [DIFF_STYLE if differs[row.name] else "" for _ in row], axis=1)


def compare_page() -> None:
    """2-4 configs trained with the same seed and data, overlaid."""
    page_config("compare")
    init_session(page_keys=VARIANT_KEYS)
    state, messages, run_clicked = sidebar_controls("Train all")
    st.title("Compare")
    st.caption("A is the configuration in the sidebar. B, C and D change some of its settings - one change at a "
               "time tells the clearest story. Every run uses the same seed and the same images.")
    texts = _variant_inputs()
    variants, variant_notes = build_variants(state.config, texts)
    notes(st.session_state.pop("url_messages", []) + messages + variant_notes)
    sync_url(state, {k: t for k, t in zip(VARIANT_KEYS, texts) if t.strip()})
    if len(variants) < 2:
        st.info("Describe at least one variant (B) to compare with A.", icon=":material/compare_arrows:")
        return
    run_requested = run_clicked or st.session_state.pop("autorun", False)
    runs, missing = {}, []
    for label, config in variants:  # each one asked for, so every refusal names its variant
        name = describe(label, config, state.config)
        result = obtain_result(config, run_requested, present=False, fix_button=label == "A", label=name)
        if result is None:
            missing.append(config)
        else:
            runs[name] = result
    if missing:
        press_to_train(missing, "Train all", "the configurations")
        return
    compare_view(runs, variants)


def compare_view(runs: dict[str, RunResult], variants) -> None:
    curves_pair(runs)
    chart(charts.compare_profile_chart(runs))
    st.subheader("Gradient heatmaps, one colour scale")
    heatmaps_on_one_scale(runs)
    st.subheader("Settings")
    table = settings_table(variants)
    changed = differing_fields([c for _, c in variants])
    st.caption("Highlighted: what differs - " + (", ".join(changed) if changed else "nothing"))
    st.dataframe(_highlight_differences(table), width="stretch", height=35 * (len(table) + 1) + 3)
    st.subheader("Findings")
    findings_columns(runs)
