"""Streamlit views for gradviz: the only module in gradviz/ that imports streamlit."""

from __future__ import annotations

import io
import json
import time
from urllib.parse import urlencode

import streamlit as st

from gradviz import charts
from gradviz.config import ACTIVATIONS, INITIALIZERS, OPTIMIZERS, RunConfig, SCALED_INITIALIZERS, format_value
from gradviz.data import DataUnavailable, load_dataset
from gradviz.diagnose import Finding, diagnose
from gradviz.presets import PRESETS
from gradviz.report import summary
from gradviz.result import RunResult
from gradviz.runs import COORDINATOR
from gradviz.snippet import keras_snippet
from gradviz.urlstate import AppState, matching_preset, parse_query, to_query

CUSTOM = "(custom)"
WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
BATCHES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TRAIN_SIZES = (500, 1000, 2000, 4000, 8000, 16000, 30000, 60000)
LEARNING_RATES = tuple(m * 10.0 ** e for e in range(-6, 1) for m in (1, 3)) + (10.0,)
STDS = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.05, 0.08, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 10.0)
CLIPS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0)
CLIP_MODES = ("off", "clipnorm", "global_clipnorm", "clipvalue")
LIVE_REFRESH_SECONDS = 0.8  # re-draw the growing charts at most this often while training
SEVERITY_ICON = {"critical": ":material/error:", "warning": ":material/warning:", "info": ":material/check_circle:"}
HINT = ("Each row of the heatmap is a layer, input at the top; darker means a smaller gradient. "
        "Rows that stay dark barely learn.")
PRESENTATION_CSS = """
<style>
  /* Streamlit sizes type in rem: a larger root scales every text, heading and control at once. */
  html { font-size: 22px; }
  .block-container { padding-top: 1rem; max-width: 100%; }
</style>
"""


def _k(field: str) -> str:
    return f"cfg_{field}"


# --- state: URL <-> session <-> widgets ----------------------------------------------------------


def _with_value(options: tuple, value) -> list:
    """A slider's options plus the current value, so any valid URL value can be shown."""
    return sorted(set(options) | {value})


def _load_config_into_widgets(config: RunConfig) -> None:
    """Write a config into the widgets' session state (only legal before they render, or in a callback)."""
    for field, value in config.to_dict().items():
        st.session_state[_k(field)] = value
    mode = next((f for f in CLIP_MODES[1:] if getattr(config, f) is not None), "off")
    st.session_state["clip_mode"] = mode
    st.session_state["clip_value"] = getattr(config, mode) if mode != "off" else 1.0


def init_session() -> AppState:
    """First run of a session: read the link once. Later runs keep what the user did."""
    if "state" not in st.session_state:
        state, messages = parse_query(st.query_params.to_dict())
        st.session_state.state = state
        st.session_state.url_messages = messages
        st.session_state.autorun = True  # a link (or a first visit) shows its result without a click
        st.session_state.preset_pick = state.preset or CUSTOM
        st.session_state.present = state.present
        _load_config_into_widgets(state.config)
    return st.session_state.state


def _pick_preset() -> None:
    name = st.session_state.preset_pick
    if name in PRESETS:
        _load_config_into_widgets(PRESETS[name].config)
        st.session_state.autorun = True


def apply_fix(fix: dict) -> None:
    """Button callback: change the controls as a finding suggests and rerun with the new config."""
    config = current_config_from_widgets()[0].replace(**fix)
    _load_config_into_widgets(config)
    st.session_state.preset_pick = matching_preset(config) or CUSTOM
    st.session_state.autorun = True


def current_config_from_widgets() -> tuple[RunConfig, list[str]]:
    values = {f: st.session_state[_k(f)] for f in RunConfig().to_dict() if _k(f) in st.session_state}
    for f in CLIP_MODES[1:]:
        values[f] = st.session_state.get("clip_value") if st.session_state.get("clip_mode") == f else None
    return RunConfig.coerce(values, base=RunConfig())


def sidebar_controls() -> tuple[AppState, list[str]]:
    """Every control, bound to session state (and through AppState to the URL)."""
    sb = st.sidebar
    sb.selectbox("Preset", [CUSTOM, *PRESETS], key="preset_pick", on_change=_pick_preset,
                 format_func=lambda n: n if n == CUSTOM else f"{n}", help="One-click experiments; see the Guide.")
    sb.radio("Architecture", ("mlp", "cnn"), key=_k("architecture"), horizontal=True,
             help="mlp: dense layers; cnn: the seed article's ResNet-style CNN")
    sb.slider("Depth (hidden layers / residual blocks)", 1, 50, key=_k("depth"))
    sb.select_slider("Width (units / base filters)", _with_value(WIDTHS, st.session_state[_k("width")]), key=_k("width"))
    sb.selectbox("Activation", ACTIVATIONS, key=_k("activation"))
    sb.selectbox("Initializer", INITIALIZERS, key=_k("initializer"))
    scaled = st.session_state[_k("initializer")] in SCALED_INITIALIZERS
    sb.select_slider("Init std σ", _with_value(STDS, st.session_state[_k("init_std")]), key=_k("init_std"),
                     disabled=not scaled, help="Used by random_normal and random_uniform only")
    left, right = sb.columns(2)
    left.toggle("Batch norm", key=_k("batch_norm"))
    right.toggle("Residual", key=_k("residual"))
    sb.selectbox("Optimizer", OPTIMIZERS, key=_k("optimizer"))
    sb.select_slider("Learning rate (log scale)", _with_value(LEARNING_RATES, st.session_state[_k("learning_rate")]),
                     key=_k("learning_rate"), format_func=lambda v: f"{v:g}")
    sb.selectbox("Gradient clipping", CLIP_MODES, key="clip_mode")
    sb.select_slider("Clip at", _with_value(CLIPS, st.session_state["clip_value"]), key="clip_value",
                     disabled=st.session_state["clip_mode"] == "off", format_func=lambda v: f"{v:g}")
    sb.select_slider("Batch size", _with_value(BATCHES, st.session_state[_k("batch_size")]), key=_k("batch_size"))
    sb.number_input("Epochs", 1, 100, key=_k("epochs"))
    sb.select_slider("Training images", _with_value(TRAIN_SIZES, st.session_state[_k("train_size")]),
                     key=_k("train_size"), format_func=lambda v: f"{v:,}")
    sb.number_input("Seed", 0, 2**31 - 1, key=_k("seed"))
    sb.toggle("Presentation mode", key="present", help="Large type and charts, controls tucked away")
    config, messages = current_config_from_widgets()
    state = st.session_state.state.with_config(config)
    state = AppState(state.config, state.preset, bool(st.session_state.present))
    st.session_state.state = state
    return state, messages


def sync_url(state: AppState) -> None:
    query = to_query(state)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def share_link(state: AppState) -> str:
    base = (st.context.url or "").split("?")[0]
    return f"{base}?{urlencode(to_query(state))}"


# --- training, cached and streamed ---------------------------------------------------------------


def _load_data(config: RunConfig):
    try:
        return load_dataset(config.train_size)
    except DataUnavailable as error:
        st.error(str(error), icon=":material/database:")
        return None


class LiveView:
    """Placeholders the run writes into while it trains: status, progress, growing charts."""

    def __init__(self, present: bool):
        self.present = present
        self.status = st.empty()
        self.progress = st.empty()
        self.charts = st.container()
        self.heatmap, self.loss = self.charts.empty(), self.charts.empty()
        self.last_draw = 0.0

    def waiting(self, ahead: int) -> None:
        self.status.info(f"Queued: {ahead} training(s) ahead of you on this server. Yours starts next.",
                         icon=":material/hourglass_top:")

    def update(self, progress) -> None:
        self.progress.progress(progress.fraction, text=f"Training: step {progress.step:,} of "
                               f"{progress.total_steps:,} (epoch {progress.epoch:.1f}), loss {progress.loss:.4g}")
        if time.monotonic() - self.last_draw >= LIVE_REFRESH_SECONDS:
            partial = progress.snapshot()
            self.heatmap.altair_chart(charts.styled(charts.heatmap_chart(partial), self.present), width="stretch")
            self.loss.altair_chart(charts.styled(charts.loss_chart(partial), self.present), width="stretch")
            self.last_draw = time.monotonic()

    def clear(self) -> None:
        for slot in (self.status, self.progress, self.heatmap, self.loss):
            slot.empty()


def obtain_result(config: RunConfig, run_requested: bool, present: bool) -> RunResult | None:
    """The cached result, or a fresh streamed training if asked for; None if neither."""
    key = config.cache_key()
    cached = COORDINATOR.cache.get(key)
    if cached is not None or not run_requested:
        return cached
    dataset = _load_data(config)
    if dataset is None:
        return None
    from gradviz.train import train  # TensorFlow is imported once, on the first training

    live = LiveView(present)
    live.status.info(f"Training on {dataset.description}", icon=":material/model_training:")
    with COORDINATOR.gate.turn(on_wait=live.waiting):
        result = COORDINATOR.cache.get(key)  # another session may have trained it while we waited
        if result is None:
            live.status.info(f"Training on {dataset.description}", icon=":material/model_training:")
            COORDINATOR.trainings_started += 1
            result = train(config, dataset, on_progress=live.update)
            COORDINATOR.cache.put(key, result)
    live.clear()
    return result


# --- views ---------------------------------------------------------------------------------------


def chart(figure, present: bool) -> None:
    st.altair_chart(charts.styled(figure, present), width="stretch")


def findings_panel(findings: list[Finding], key_prefix: str = "fix") -> None:
    st.subheader("Diagnosis")
    for i, finding in enumerate(findings):
        box = {"critical": st.error, "warning": st.warning, "info": st.success}[finding.severity]
        box(f"**{finding.kind.replace('_', ' ')}** - {finding.message}", icon=SEVERITY_ICON[finding.severity])
        if finding.fix:
            change = ", ".join(f"{k}={format_value(v)}" for k, v in finding.fix.items())
            st.button(f"Apply fix: {change}", key=f"{key_prefix}_{i}", on_click=apply_fix, args=(finding.fix,),
                      type="primary" if finding.severity == "critical" else "secondary", icon=":material/build:")


def headline(result: RunResult, findings: list[Finding], preset: str | None) -> None:
    """One line a first-time visitor can act on: what happened, and what to look at."""
    final = result.final()
    acc = "n/a" if final["val_accuracy"] is None else f"{final['val_accuracy']:.1%}"
    st.markdown(f"### {findings[0].kind.replace('_', ' ').capitalize()} - validation accuracy {acc}")
    claim = f"**{preset}:** {PRESETS[preset].claim} " if preset in PRESETS else ""
    st.caption(claim + HINT)


def main_charts(result: RunResult, present: bool) -> None:
    if present:  # the two charts a talk needs, as large as the screen allows
        st.altair_chart(charts.styled(charts.heatmap_chart(result, height=520), True), width="stretch")
        st.altair_chart(charts.styled(charts.loss_chart(result, height=360), True), width="stretch")
        return
    left, right = st.columns([3, 2])
    with left:
        chart(charts.heatmap_chart(result), present)
    with right:
        chart(charts.loss_chart(result, height=170), present)
        chart(charts.accuracy_chart(result, height=110), present)


def detail_tabs(result: RunResult, state: AppState) -> None:
    gradients, weights, activations, updates, share = st.tabs(
        ["Gradients", "Weights", "Activations", "Updates", "Share & export"])
    with gradients:
        left, right = st.columns(2)
        with left:
            chart(charts.grad_lines_chart(result), False)
        with right:
            chart(charts.depth_profile_chart(result), False)
    with weights:
        chosen = st.multiselect("Layers", result.layers, default=charts._spread(result.layers), key="weight_layers")
        chart(charts.weight_hist_chart(result, chosen or None), False)
    with activations:
        chosen = st.multiselect("Layers", result.act_layers, default=charts._spread(result.act_layers), key="act_layers")
        chart(charts.activation_hist_chart(result, chosen or None), False)
        if result.config.activation in ("relu", "sigmoid", "tanh"):
            chart(charts.unit_health_chart(result), False)
    with updates:
        chart(charts.update_ratio_chart(result), False)
        st.caption("A rule of thumb: each step should move a layer's weights by about 1e-3 of their size. "
                   "Far below, the layer is frozen; far above, training is unstable.")
    with share:
        export_panel(result, state)


def export_panel(result: RunResult, state: AppState) -> None:
    st.markdown("**Link to this view** (copy with the icon on the right)")
    st.code(share_link(state), language=None)
    stem = state.preset or f"gradviz-{state.config.cache_key()}"
    a, b, c = st.columns(3)
    a.download_button("Steps as CSV", data=lambda: result.steps_frame().to_csv(index=False), file_name=f"{stem}-steps.csv",
                      mime="text/csv", icon=":material/table:")
    b.download_button("Run as JSON", data=lambda: run_json(result), file_name=f"{stem}.json", mime="application/json",
                      icon=":material/data_object:")
    with c:
        name = st.selectbox("Chart", list(charts.ALL_CHARTS), key="export_chart")
        fmt = st.radio("Format", ("png", "svg"), horizontal=True, key="export_format")
        st.download_button(f"Download {name}.{fmt}", data=lambda: chart_file(result, name, fmt),
                           file_name=f"{stem}-{name}.{fmt}", mime="image/png" if fmt == "png" else "image/svg+xml",
                           icon=":material/image:")
    st.markdown("**Keras code** for this model and optimizer")
    st.code(keras_snippet(state.config), language="python")


def run_json(result: RunResult) -> str:
    payload = summary(result, diagnose(result))
    payload["steps"] = json.loads(result.steps_frame().to_json(orient="records"))
    payload["epochs"] = json.loads(result.loss_frame().to_json(orient="records"))
    return json.dumps(payload)


def chart_file(result: RunResult, name: str, fmt: str) -> bytes:
    """PNG/SVG through vl-convert, rendered only when asked for (it takes ~0.1-0.7 s)."""
    buffer = io.BytesIO() if fmt == "png" else io.StringIO()
    charts.styled(charts.ALL_CHARTS[name](result)).save(buffer, format=fmt)
    value = buffer.getvalue()
    return value if isinstance(value, bytes) else value.encode()


def page_config(title: str) -> None:
    """First Streamlit call of every page; presentation links start with the sidebar tucked away."""
    present = "present" in st.query_params and st.query_params.get("present", "").lower() in ("1", "true", "yes", "on")
    st.set_page_config(page_title=f"gradviz - {title}", page_icon=":material/stacked_line_chart:", layout="wide",
                       initial_sidebar_state="collapsed" if present else "expanded")


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
    for note in st.session_state.pop("url_messages", []) + messages:
        st.warning(note, icon=":material/link_off:")
    sync_url(state)
    run_requested = run_clicked or st.session_state.pop("autorun", False)
    result = obtain_result(state.config, run_requested, state.present)
    if result is None:
        result = COORDINATOR.cache.get(st.session_state.get("shown_key", ""))
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
    st.caption(f"Data: {result.data['description']}. Trained {result.steps_done:,} steps in "
               f"{result.seconds:.1f} s.")
    if not state.present:
        detail_tabs(result, state)
