"""The explorer's sidebar: one widget per RunConfig field, bound to session state (and so to the URL)."""

from __future__ import annotations

import streamlit as st

from gradviz.config import (
    ACTIVATIONS,
    ARCHITECTURES,
    INITIALIZERS,
    OPTIMIZERS,
    RECURRENT,
    RECURRENT_INITIALIZERS,
    SCALED_INITIALIZERS,
    RunConfig,
)
from gradviz.presets import PRESETS
from gradviz.ui.session import (
    CUSTOM,
    current_config_from_widgets,
    load_config_into_widgets,
    widget_key,
)
from gradviz.urlstate import AppState, matching_preset

WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
BATCHES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TRAIN_SIZES = (500, 1000, 2000, 4000, 8000, 16000, 30000, 60000)
LEARNING_RATES = tuple(m * 10.0 ** e for e in range(-6, 1) for m in (1, 3)) + (10.0,)
STDS = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.05, 0.08, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 10.0)
GAINS = (0.25, 0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2.0, 4.0)
CLIPS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0)
CLIP_MODES = ("off", "clipnorm", "global_clipnorm", "clipvalue")
SEQUENCES = {28: "28 rows of 28 pixels", 14: "56 chunks of 14", 7: "112 chunks of 7", 4: "196 chunks of 4"}


def with_value(options: tuple, value) -> list:
    """A slider's options plus the current value, so any valid URL value can be shown."""
    return sorted(set(options) | {value})


def _pick_preset() -> None:
    name = st.session_state.preset_pick
    if name in PRESETS:
        load_config_into_widgets(PRESETS[name].config)
        st.session_state.autorun = True


def _slider(label: str, field: str, options: tuple, **kwargs) -> None:
    """A select slider over `options` (plus the field's current value) for one config field."""
    st.sidebar.select_slider(label, with_value(options, st.session_state[widget_key(field)]), key=widget_key(field),
                             **kwargs)


def sidebar_controls() -> tuple[AppState, list[str]]:
    """Every control, bound to session state (and through AppState to the URL)."""
    sb = st.sidebar
    for field, value in RunConfig().to_dict().items():  # a control hidden on an earlier run lost its state
        st.session_state.setdefault(widget_key(field), value)
    # The picker names the preset the controls match now (or "custom" once one of them moved).
    st.session_state.preset_pick = matching_preset(current_config_from_widgets()[0]) or CUSTOM
    sb.selectbox("Preset", [CUSTOM, *PRESETS], key="preset_pick", on_change=_pick_preset,
                 help="One-click experiments; see the Guide.")
    sb.radio("Architecture", ARCHITECTURES, key=widget_key("architecture"), horizontal=True,
             help="mlp: dense layers; cnn: the seed article's ResNet-style CNN; rnn (SimpleRNN), lstm, gru: "
                  "the image read as a sequence (see the Through time page)")
    recurrent = st.session_state[widget_key("architecture")] in RECURRENT
    if recurrent:
        sb.selectbox("Sequence", list(SEQUENCES), format_func=SEQUENCES.get, key=widget_key("step_pixels"))
        sb.selectbox("Recurrent initializer", RECURRENT_INITIALIZERS, key=widget_key("recurrent_initializer"))
        _slider("Recurrent std σ", "recurrent_std", STDS,
                disabled=st.session_state[widget_key("recurrent_initializer")] != "random_normal")
    sb.slider("Depth (hidden layers / residual blocks)", 1, 50, key=widget_key("depth"), disabled=recurrent)
    _slider("Width (units / base filters)", "width", WIDTHS)
    sb.selectbox("Activation", ACTIVATIONS, key=widget_key("activation"))
    sb.selectbox("Initializer", INITIALIZERS, key=widget_key("initializer"))
    _slider("Init std σ", "init_std", STDS,
            disabled=st.session_state[widget_key("initializer")] not in SCALED_INITIALIZERS,
            help="Used by random_normal and random_uniform only")
    _slider("Orthogonal gain", "init_gain", GAINS, disabled=st.session_state[widget_key("initializer")] != "orthogonal",
            help="Used by orthogonal only: the kernel is a random orthogonal matrix times this gain")
    left, right = sb.columns(2)
    left.toggle("Batch norm", key=widget_key("batch_norm"))
    right.toggle("Residual", key=widget_key("residual"))
    sb.selectbox("Optimizer", OPTIMIZERS, key=widget_key("optimizer"))
    _slider("Learning rate (log scale)", "learning_rate", LEARNING_RATES, format_func=lambda v: f"{v:g}")
    sb.selectbox("Gradient clipping", CLIP_MODES, key="clip_mode")
    sb.select_slider("Clip at", with_value(CLIPS, st.session_state["clip_value"]), key="clip_value",
                     disabled=st.session_state["clip_mode"] == "off", format_func=lambda v: f"{v:g}")
    _slider("Batch size", "batch_size", BATCHES)
    sb.number_input("Epochs", 1, 100, key=widget_key("epochs"))
    _slider("Training images", "train_size", TRAIN_SIZES, format_func=lambda v: f"{v:,}")
    sb.number_input("Seed", 0, 2**31 - 1, key=widget_key("seed"))
    sb.toggle("Presentation mode", key="present", help="Large type and charts, controls tucked away")
    config, messages = current_config_from_widgets()
    state = st.session_state.state.with_config(config)
    state = AppState(state.config, state.preset, bool(st.session_state.present))
    st.session_state.state = state
    return state, messages
