"""The explorer's sidebar: one widget per RunConfig field, bound to session state (and so to the URL);
a teacher link's locked controls shown disabled and its hidden ones left out."""

from __future__ import annotations

import streamlit as st

from gradviz.config import (
    ACTIVATIONS,
    ARCHITECTURES,
    CONTROLS,
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
    drop_reference,
    load_config_into_widgets,
    restrictions,
    widget_key,
)
from gradviz.urlstate import AppState, Restrictions, matching_preset

WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
BATCHES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TRAIN_SIZES = (500, 1000, 2000, 4000, 8000, 16000, 30000, 60000)
# Parsed from text, so 0.3 is 0.3 (3 * 0.1 is 0.30000000000000004, and a link would say so).
LEARNING_RATES = tuple(float(f"{m}e{e}") for e in range(-6, 1) for m in (1, 3)) + (10.0,)
STDS = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.05, 0.08, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 10.0)
GAINS = (0.25, 0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2.0, 4.0)
CLIPS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0)
CLIP_MODES = ("off", "clipnorm", "global_clipnorm", "clipvalue")
SEQUENCES = {28: "28 rows of 28 pixels", 14: "56 chunks of 14", 7: "112 chunks of 7", 4: "196 chunks of 4"}
LOCKED_HELP = "Fixed here by your teacher's link or lesson"


def preset_title(name: str) -> str:
    """What the preset picker shows: the preset's one-line summary, not its slug."""
    return PRESETS[name].summary if name in PRESETS else name


def with_value(options: tuple, value) -> list:
    """A slider's options plus the current value, so any valid URL value can be shown."""
    return sorted(set(options) | {value})


def _pick_preset() -> None:
    name = st.session_state.preset_pick
    if name in PRESETS:
        load_config_into_widgets(PRESETS[name].config)
        st.session_state.autorun = True
        drop_reference()


def _fixed_note(limits: Restrictions) -> str:
    """What a student cannot move here, the shorter way round: a challenge leaves one or two free."""
    free = [name for name in CONTROLS if not limits.fixed(name)]
    if len(free) < len(CONTROLS) // 2:
        return f"Only {', '.join(free) or 'nothing'} can change here (your teacher's link or lesson)."
    fixed = [f"{name} (hidden)" if name in limits.hidden else name for name in CONTROLS if limits.fixed(name)]
    if not fixed:
        return "The preset picker is hidden here (your teacher's link or lesson)."
    return f"Fixed here by your teacher's link or lesson: {', '.join(fixed)}."


class _Sidebar:
    """Draws each control unless the teacher's link hides it, disabled if the link locks it (the
    control's own `disabled` rule still applies)."""

    def __init__(self, limits: Restrictions):
        self.limits = limits

    def widget(self, draw, label: str, control: str, disabled: bool = False, help: str | None = None, **kwargs):
        key = kwargs.pop("key", widget_key(control))
        if control in self.limits.hidden:
            # Streamlit forgets a widget's value on a run that does not draw it: written back, it stays.
            if key in st.session_state:
                st.session_state[key] = st.session_state[key]
            return
        locked = control in self.limits.locked
        draw(label, key=key, disabled=disabled or locked, help=LOCKED_HELP if locked else help, **kwargs)

    def slider(self, label: str, field: str, options: tuple, **kwargs) -> None:
        """A select slider over `options` (plus the field's current value) for one config field."""
        self.widget(st.sidebar.select_slider, label, field,
                    options=with_value(options, st.session_state[widget_key(field)]), **kwargs)


# The run button is drawn after the controls (drawn first, above them, a click on it while a run was
# still going lost every control's value on a fresh server's first session: measured 3 of 7 times),
# and pinned to the bottom of the sidebar, so it is in reach without scrolling at any height.
# (Streamlit wraps the keyed container in a layout wrapper of its own height: that is what sticks.)
RUN_BAR_CSS = """<style>
  [data-testid=stLayoutWrapper]:has(> .st-key-run_bar) { position: sticky; bottom: 0; z-index: 3; }
  .st-key-run_bar { padding: 0.6rem 0 0.8rem 0; background: linear-gradient(to bottom, transparent, #f0f2f6 30%); }
</style>"""


def _run_button(label: str) -> bool:
    with st.sidebar.container(key="run_bar"):
        st.markdown(RUN_BAR_CSS, unsafe_allow_html=True)
        return st.button(label, type="primary", icon=":material/play_arrow:", width="stretch")


def sidebar_controls(run_label: str | None = None) -> tuple[AppState, list[str], bool]:
    """Every control, bound to session state (and through AppState to the URL), with the page's
    run button (`run_label`, e.g. "Run") pinned to the sidebar's bottom: in reach without scrolling.

    Returns:
        The state, notes on values the controls had to change, and whether the button was pressed.
    """
    sb, limits = st.sidebar, restrictions()
    bar = _Sidebar(limits)
    for field, value in RunConfig().to_dict().items():  # a control hidden on an earlier run lost its state
        st.session_state.setdefault(widget_key(field), value)
    if limits:
        sb.caption(f":material/lock: {_fixed_note(limits)}")
    # The picker names the preset the controls match now (or "custom" once one of them moved). A
    # preset would move locked controls: with any lock the picker is locked too.
    st.session_state.preset_pick = matching_preset(current_config_from_widgets()[0]) or CUSTOM
    bar.widget(sb.selectbox, "Preset", "preset", options=[CUSTOM, *PRESETS], key="preset_pick",
               on_change=_pick_preset, format_func=preset_title, disabled=bool(limits),
               help="One-click experiments; see the Guide.")
    bar.widget(sb.radio, "Architecture", "architecture", options=ARCHITECTURES, horizontal=True,
               help="mlp: dense layers; cnn: the seed article's ResNet-style CNN; rnn (SimpleRNN), lstm, gru: "
                    "the image read as a sequence (see the Through time page)")
    recurrent = st.session_state[widget_key("architecture")] in RECURRENT
    if recurrent:
        bar.widget(sb.selectbox, "Sequence", "step_pixels", options=list(SEQUENCES), format_func=SEQUENCES.get)
        bar.widget(sb.selectbox, "Recurrent initializer", "recurrent_initializer", options=RECURRENT_INITIALIZERS)
        bar.slider("Recurrent std σ", "recurrent_std", STDS,
                   disabled=st.session_state[widget_key("recurrent_initializer")] != "random_normal")
    bar.widget(sb.slider, "Depth (hidden layers / residual blocks)", "depth", min_value=1, max_value=50,
               disabled=recurrent)
    bar.slider("Width (units / base filters)", "width", WIDTHS)
    bar.widget(sb.selectbox, "Activation", "activation", options=ACTIVATIONS)
    bar.widget(sb.selectbox, "Initializer", "initializer", options=INITIALIZERS)
    bar.slider("Init std σ", "init_std", STDS,
               disabled=st.session_state[widget_key("initializer")] not in SCALED_INITIALIZERS,
               help="Used by random_normal and random_uniform only")
    bar.slider("Orthogonal gain", "init_gain", GAINS,
               disabled=st.session_state[widget_key("initializer")] != "orthogonal",
               help="Used by orthogonal only: the kernel is a random orthogonal matrix times this gain")
    left, right = sb.columns(2)
    bar.widget(left.toggle, "Batch norm", "batch_norm")
    bar.widget(right.toggle, "Residual", "residual")
    bar.widget(sb.selectbox, "Optimizer", "optimizer", options=OPTIMIZERS)
    bar.slider("Learning rate (log scale)", "learning_rate", LEARNING_RATES, format_func=lambda v: f"{v:g}")
    bar.widget(sb.selectbox, "Gradient clipping", "clipping", options=CLIP_MODES, key="clip_mode")
    bar.widget(sb.select_slider, "Clip at", "clipping", options=with_value(CLIPS, st.session_state["clip_value"]),
               key="clip_value", disabled=st.session_state["clip_mode"] == "off", format_func=lambda v: f"{v:g}")
    bar.slider("Batch size", "batch_size", BATCHES)
    bar.widget(sb.number_input, "Epochs", "epochs", min_value=1, max_value=100)
    bar.slider("Training images", "train_size", TRAIN_SIZES, format_func=lambda v: f"{v:,}")
    bar.widget(sb.number_input, "Seed", "seed", min_value=0, max_value=2**31 - 1)
    sb.toggle("Presentation mode", key="present", help="Large type and charts, controls tucked away")
    clicked = _run_button(run_label) if run_label else False
    config, messages = current_config_from_widgets()
    state = st.session_state.state.with_config(config)
    state = AppState(state.config, state.preset, bool(st.session_state.present))
    st.session_state.state = state
    return state, messages, clicked
