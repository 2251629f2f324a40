"""The Through time page: SimpleRNN vs LSTM vs GRU on sequential MNIST, the gradient reaching every time step."""

from __future__ import annotations

import streamlit as st

from gradviz import charts
from gradviz.config import RunConfig
from gradviz.presets import PRESETS
from gradviz.ui.components import chart, curves_pair, findings_columns
from gradviz.ui.controls import SEQUENCES, TRAIN_SIZES, with_value
from gradviz.ui.runner import obtain_result, press_to_train
from gradviz.ui.session import page_config
from gradviz.ui.text import notes

CELLS = {"rnn": "SimpleRNN (tanh)", "lstm": "LSTM", "gru": "GRU"}
TIME_KEYS = ("step_pixels", "width", "train_size", "epochs")


def _time_controls() -> dict[str, str]:
    """Sequence length, hidden size and budget, read from the link once, then from the widgets."""
    base = PRESETS["rnn-vanishing-tanh"].config
    query = st.query_params.to_dict()
    if "tt_step_pixels" not in st.session_state or any(
            str(query.get(k, "")) not in ("", str(st.session_state.get(f"tt_{k}"))) for k in TIME_KEYS):
        checked, messages = RunConfig.coerce({k: str(query[k]) for k in TIME_KEYS if k in query}, base=base)
        st.session_state.tt_notes = messages
        for key in TIME_KEYS:
            st.session_state[f"tt_{key}"] = getattr(checked, key)
        st.session_state.tt_autorun = True
    sb = st.sidebar
    sb.selectbox("Sequence", list(SEQUENCES), format_func=SEQUENCES.get, key="tt_step_pixels",
                 help="How the 28x28 image is read: longer sequences make the effect stark (and train slower)")
    sb.select_slider("Hidden units", with_value((16, 32, 64, 128, 256), st.session_state.tt_width), key="tt_width")
    sb.select_slider("Training images", with_value(TRAIN_SIZES, st.session_state.tt_train_size), key="tt_train_size",
                     format_func=lambda v: f"{v:,}")
    sb.number_input("Epochs", 1, 100, key="tt_epochs")
    return {key: str(st.session_state[f"tt_{key}"]) for key in TIME_KEYS}


def through_time_page() -> None:
    """SimpleRNN vs LSTM vs GRU on sequential MNIST: the gradient reaching every time step."""
    page_config("gradients through time")
    values = _time_controls()
    run = st.sidebar.button("Run", type="primary", icon=":material/play_arrow:", width="stretch")
    st.title("Gradients through time")
    st.caption("Each image is read as a sequence. The plots show |dL/dh_t|, the gradient reaching the hidden "
               "state at every time step t, measured inside the training step for every step.")
    notes(st.session_state.pop("tt_notes", []))
    st.query_params.from_dict(values)
    run = run or st.session_state.pop("tt_autorun", False)
    configs = {label: RunConfig.coerce(values, base=PRESETS[f"rnn-{'vanishing-tanh' if a == 'rnn' else a}"].config)[0]
               for a, label in CELLS.items()}
    runs = {label: obtain_result(config, run, present=False, label=label) for label, config in configs.items()}
    if any(r is None for r in runs.values()):
        press_to_train([configs[label] for label, r in runs.items() if r is None], "Run", "the cells")
        return
    chart(charts.time_profile_chart(runs))
    if any(len(r.halves) == 2 for r in runs.values()):
        chart(charts.halves_chart(runs))
        st.caption("A gradient reaching the first steps says they *could* be learnt from; this says whether they "
                   "were: the validation images scored with their first half (top 14 rows, read first) blanked, "
                   "then the second. A bar that does not drop when a half is blanked is a half the network ignores.")
    shown = st.radio("Heatmap for", list(runs), horizontal=True, key="tt_heatmap")
    chart(charts.time_heatmap_chart(runs[shown], title=f"{shown}: gradient reaching each time step (log10)"))
    curves_pair(runs)
    st.subheader("Findings")
    findings_columns(runs)
    exploding_through_time(values, run)


def exploding_through_time(values: dict, run: bool) -> None:
    st.subheader("Exploding through time, and clipping")
    budget = {k: values[k] for k in ("train_size", "epochs")}
    names = ("rnn-exploding-relu", "rnn-exploding-relu-clipped")
    results = {n: obtain_result(RunConfig.coerce(budget, base=PRESETS[n].config)[0], run, present=False, label=n)
               for n in names}
    if any(r is None for r in results.values()):
        return
    for column, (name, result) in zip(st.columns(2), results.items()):
        with column:
            chart(charts.time_heatmap_chart(result, height=260, title=name))
    findings_columns(results, top_only=True)
