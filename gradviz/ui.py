"""Streamlit views for gradviz: the only module in gradviz/ that imports streamlit."""

from __future__ import annotations

import io
import json
import logging
import time
from urllib.parse import urlencode

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from gradviz import charts
from gradviz.config import (ACTIVATIONS, ARCHITECTURES, INITIALIZERS, OPTIMIZERS, RECURRENT, RECURRENT_INITIALIZERS,
                            SCALED_INITIALIZERS, RunConfig, format_value)
from gradviz.data import DataUnavailable, load_dataset, load_files
from gradviz.diagnose import Finding, diagnose
from gradviz.compare import LABELS, VARIANT_KEYS, build_variants, describe, differing_fields, settings_table
from gradviz.presets import PRESETS, verdict
from gradviz.report import summary
from gradviz.result import RunResult
from gradviz.runs import (COORDINATOR, limit_malloc_arenas, max_examples, over_budget, release_free_memory,
                          within_budget)
from gradviz.snippet import keras_snippet
from gradviz.store import ResultStore
from gradviz.urlstate import TRUE_WORDS, AppState, matching_preset, parse_query, to_query

LOG = logging.getLogger("gradviz")
# This module is imported once per server process, by the first session's script thread: early
# enough that the later sessions' threads meet the cap (see limit_malloc_arenas).
limit_malloc_arenas()
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
    st.session_state["clip_mode"], st.session_state["clip_value"] = config.clipping or ("off", 1.0)


def init_session(page_keys: tuple[str, ...] = ()) -> AppState:
    """Read a link when there is a new one; otherwise keep what the user did in this session.

    A new link is a first visit, or a query that is not the one this session last wrote (a link
    opened from the Guide, a pasted URL). An empty query on a later run is a page switch, which
    keeps the session's state.
    """
    query = {k: v for k, v in st.query_params.to_dict().items() if k not in page_keys}
    fresh = "state" not in st.session_state or (query and query != st.session_state.get("synced_query"))
    if fresh:
        state, messages = parse_query(query)
        st.session_state.state = state
        st.session_state.url_messages = messages
        st.session_state.autorun = True  # a link (or a first visit) shows its result without a click
        st.session_state.preset_pick = state.preset or CUSTOM
        st.session_state.present = state.present
    if fresh or _k("depth") not in st.session_state:  # Streamlit drops widget state on other pages
        _load_config_into_widgets(st.session_state.state.config)
        st.session_state.setdefault("preset_pick", st.session_state.state.preset or CUSTOM)
        st.session_state.setdefault("present", st.session_state.state.present)
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
    for field, value in RunConfig().to_dict().items():  # a control hidden on an earlier run lost its state
        st.session_state.setdefault(_k(field), value)
    # The picker names the preset the controls match now (or "custom" once one of them moved).
    st.session_state.preset_pick = matching_preset(current_config_from_widgets()[0]) or CUSTOM
    sb.selectbox("Preset", [CUSTOM, *PRESETS], key="preset_pick", on_change=_pick_preset,
                 format_func=lambda n: n if n == CUSTOM else f"{n}", help="One-click experiments; see the Guide.")
    sb.radio("Architecture", ARCHITECTURES, key=_k("architecture"), horizontal=True,
             help="mlp: dense layers; cnn: the seed article's ResNet-style CNN; rnn (SimpleRNN), lstm, gru: "
                  "the image read as a sequence (see the Through time page)")
    recurrent = st.session_state[_k("architecture")] in RECURRENT
    if recurrent:
        sb.selectbox("Sequence", list(SEQUENCES), format_func=SEQUENCES.get, key=_k("step_pixels"))
        sb.selectbox("Recurrent initializer", RECURRENT_INITIALIZERS, key=_k("recurrent_initializer"))
        sb.select_slider("Recurrent std σ", _with_value(STDS, st.session_state[_k("recurrent_std")]),
                         key=_k("recurrent_std"), disabled=st.session_state[_k("recurrent_initializer")] != "random_normal")
    sb.slider("Depth (hidden layers / residual blocks)", 1, 50, key=_k("depth"), disabled=recurrent)
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


def sync_url(state: AppState, page_query: dict | None = None) -> None:
    """Write the state (and the page's own keys) to the URL, and remember it as ours."""
    query = to_query(state)
    st.session_state.synced_query = dict(query)
    query |= page_query or {}
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def share_link(state: AppState) -> str:
    base = (st.context.url or "").split("?")[0]
    return f"{base}?{urlencode(to_query(state))}"


# --- training, cached and streamed ---------------------------------------------------------------


def _read_data(load):
    """load(), or None after saying on the page what to do about missing MNIST."""
    try:
        return load()
    except DataUnavailable as error:
        st.error(str(error), icon=":material/database:")
        return None


def _load_data(config: RunConfig):
    return _read_data(lambda: load_dataset(config.train_size))


class LiveView:
    """Placeholders the run writes into while it trains: status, progress, growing charts."""

    def __init__(self, present: bool):
        self.present = present
        self.status = st.empty()
        self.progress = st.empty()
        self.charts = st.container()
        self.heatmap, self.loss = self.charts.empty(), self.charts.empty()
        self.last_draw = 0.0
        self.steps = 0

    def waiting(self, ahead: int) -> None:
        self.status.info(f"Queued: {ahead} training(s) ahead of you on this server. Yours starts next.",
                         icon=":material/hourglass_top:")

    def update(self, progress) -> None:
        self.steps = progress.step
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


def _log_to_server_console() -> None:
    """Trainings started, finished and stopped go to the server's console: what a host watching a
    class needs to see. (Streamlit configures only its own loggers.)"""
    if not LOG.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s gradviz %(levelname)s %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False


def _session_ended():
    """should_stop for train(): true once the browser tab that asked for the training has gone
    (closed, reloaded, lost its connection), so nobody waits behind a result nobody will see."""
    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return lambda: False
    server = runtime.get_instance()
    return lambda: not server.is_active_session(ctx.session_id)


def _budget_check(config: RunConfig, fix_button: bool) -> bool:
    """True if `config` may train here; otherwise says why (and offers the nearest allowed run)."""
    limit = max_examples()
    message = over_budget(config, limit)
    if message is None:
        return True
    st.warning(message, icon=":material/speed:")
    if fix_button:
        allowed = within_budget(config, limit)
        st.button(f"Train {allowed.epochs} epoch(s) × {allowed.train_size:,} images instead",
                  on_click=apply_fix, args=({"epochs": allowed.epochs, "train_size": allowed.train_size},),
                  icon=":material/speed:")
    return False


def obtain_result(config: RunConfig, run_requested: bool, present: bool, fix_button: bool = False) -> RunResult | None:
    """The cached result, or a fresh streamed training if asked for; None if neither."""
    key = config.cache_key()
    cached = COORDINATOR.cache.get(key)
    if cached is not None:
        return cached
    store = ResultStore()
    if store.has(config):  # precomputed (python -m gradviz precompute); checked against today's data
        dataset = _load_data(config)
        stored = store.get(config, dataset.info()) if dataset is not None else None
        if stored is not None:
            COORDINATOR.cache.put(key, stored)
            return stored
    # The budget is checked before Run is pressed too, so an over-budget config says so at once.
    if not _budget_check(config, fix_button) or not run_requested or not _data_available():
        return None
    live = LiveView(present)
    live.status.info("Preparing the training ...", icon=":material/model_training:")
    with COORDINATOR.gate.turn(on_wait=live.waiting):
        result = COORDINATOR.cache.get(key)  # another session may have trained it while we waited
        if result is None:
            # The arrays are built only now: twenty queued sessions would otherwise hold twenty copies.
            dataset = _load_data(config)
            if dataset is None:
                return None
            live.status.info(f"Training on {dataset.description}", icon=":material/model_training:")
            result = _train_for_session(config, dataset, live)
            if result is not None:
                COORDINATOR.cache.put(key, result)
    live.clear()
    return result


def _data_available() -> bool:
    """MNIST can be read here (says what to do if not); cheap after the first call."""
    return _read_data(load_files) is not None


def _train_for_session(config: RunConfig, dataset, live: LiveView) -> RunResult | None:
    """One training for this session: None if it failed (with a message) or the session left."""
    from gradviz.train import train  # TensorFlow is imported once, on the first training

    _log_to_server_console()
    COORDINATOR.trainings_started += 1
    tag, started = config.cache_key()[:10], time.monotonic()
    LOG.info("training %s started (%s); %d waiting", tag, urlencode(config.to_strings(only_changed=True)) or "defaults",
             COORDINATOR.gate.waiting)
    outcome = "interrupted (its session ended or reran)"  # a Streamlit stop/rerun raised through train()
    result = None
    try:
        result = train(config, dataset, on_progress=live.update, should_stop=_session_ended())
        outcome = "stopped: its session ended" if result.stopped else "finished"
        return None if result.stopped else result
    except Exception as error:  # noqa: BLE001 - a page shows a message, never a traceback
        outcome = f"failed ({type(error).__name__})"
        LOG.exception("training failed for %s", config)
        live.clear()
        st.error(f"Training failed ({type(error).__name__}: {str(error)[:300]}). Nothing was cached; "
                 "a smaller model or fewer training images may fit.", icon=":material/error:")
        return None
    finally:
        steps = result.steps_done if result is not None else live.steps
        LOG.info("training %s %s after %d steps, %.1f s", tag, outcome, steps, time.monotonic() - started)
        release_free_memory()  # what this training freed goes back to the OS before the next one starts


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
        chosen = st.multiselect("Layers", result.layers, default=charts.spread(result.layers), key="weight_layers")
        chart(charts.weight_hist_chart(result, chosen or None), False)
    with activations:
        if result.act_layers:
            activation_views(result)
        else:
            st.info("A recurrent model's hidden state is read at every time step instead: see the "
                    "**Through time** page.", icon=":material/timeline:")
    with updates:
        chart(charts.update_ratio_chart(result), False)
        st.caption("A rule of thumb: each step should move a layer's weights by about 1e-3 of their size. "
                   "Far below, the layer is frozen; far above, training is unstable.")
    with share:
        export_panel(result, state)


def activation_views(result: RunResult) -> None:
    chosen = st.multiselect("Layers", result.act_layers, default=charts.spread(result.act_layers), key="act_layers")
    chart(charts.activation_hist_chart(result, chosen or None), False)
    if result.config.activation in ("relu", "sigmoid", "tanh"):
        chart(charts.unit_health_chart(result), False)


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
    present = st.query_params.get("present", "").strip().lower() in TRUE_WORDS
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
    st.caption(f"Data: {result.data['description']}. Trained {result.steps_done:,} steps in "
               f"{result.seconds:.1f} s.")
    if not state.present:
        detail_tabs(result, state)


# --- Compare -------------------------------------------------------------------------------------

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
    columns = st.columns(len(VARIANT_KEYS))
    texts = []
    for column, key, label in zip(columns, VARIANT_KEYS, LABELS[1:]):
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
    state, messages = sidebar_controls()
    run_clicked = st.sidebar.button("Train all", type="primary", icon=":material/play_arrow:", width="stretch")
    st.title("Compare")
    st.caption("A is the configuration in the sidebar. B, C and D change some of its settings - one change at a "
               "time tells the clearest story. Every run uses the same seed and the same images.")
    texts = _variant_inputs()
    variants, notes = build_variants(state.config, texts)
    for note in st.session_state.pop("url_messages", []) + messages + notes:
        st.warning(note, icon=":material/link_off:")
    sync_url(state, {k: t for k, t in zip(VARIANT_KEYS, texts) if t.strip()})
    if len(variants) < 2:
        st.info("Describe at least one variant (B) to compare with A.", icon=":material/compare_arrows:")
        return
    run_requested = run_clicked or st.session_state.pop("autorun", False)
    runs = {}
    for label, config in variants:
        result = obtain_result(config, run_requested, present=False)
        if result is None:
            st.info("Press **Train all** in the sidebar to train the configurations not seen before.",
                    icon=":material/play_arrow:")
            return
        runs[describe(label, config, state.config)] = result
    compare_view(runs, variants)


def compare_view(runs: dict[str, RunResult], variants) -> None:
    left, right = st.columns(2)
    with left:
        chart(charts.compare_curves_chart(runs, "loss"), False)
    with right:
        chart(charts.compare_curves_chart(runs, "accuracy"), False)
    chart(charts.compare_profile_chart(runs), False)
    st.subheader("Gradient heatmaps, one colour scale")
    domain = charts.shared_log10_domain(list(runs.values()))
    for column, (label, result) in zip(st.columns(len(runs)), runs.items()):
        with column:
            chart(charts.heatmap_chart(result, height=260, color_domain=domain, title=label.split(":")[0]), False)
    st.subheader("Settings")
    table = settings_table(variants)
    changed = differing_fields([c for _, c in variants])
    st.caption("Highlighted: what differs - " + (", ".join(changed) if changed else "nothing"))
    st.dataframe(_highlight_differences(table), width="stretch", height=35 * (len(table) + 1) + 3)
    st.subheader("Findings")
    for column, (label, result) in zip(st.columns(len(runs)), runs.items()):
        with column:
            st.markdown(f"**{label}**")
            for finding in diagnose(result):
                st.markdown(f"{SEVERITY_ICON[finding.severity]} **{finding.kind.replace('_', ' ')}** - {finding.message}")


# --- Seed experiments ----------------------------------------------------------------------------

SEED_PRESETS = ("seed-vanishing-sigmoid", "seed-fixed-resnet", "seed-exploding-linear", "seed-clipnorm")
WHAT_DOES_EXPLODE = ("exploding-linear", "exploding-linear-clipped")
VERDICT_BOX = {"reproduced": st.success, "partly": st.warning, "not reproduced": st.error}
SCALE_KEYS = ("train_size", "epochs")  # optional link overrides for every experiment on the page


def _scaled(name: str, overrides: dict) -> RunConfig:
    return RunConfig.coerce(overrides, base=PRESETS[name].config)[0]


def _measured(result: RunResult) -> str:
    final = result.final()
    ratio = result.grad_norm_ratio_first_last()
    parts = [f"validation accuracy **{'n/a' if final['val_accuracy'] is None else format(final['val_accuracy'], '.1%')}**",
             f"first/last-layer gradient ratio **{'n/a' if ratio is None else format(ratio, '.1e')}**"]
    if result.diverged:
        parts.append(f"**diverged at step {result.diverged_at_step}** ({result.first_bad_layer})")
    clipped = (result.global_norm_post < 0.999 * result.global_norm_pre).mean() if len(result.step) else 0
    if any(getattr(result.config, f) is not None for f in ("clipnorm", "global_clipnorm", "clipvalue")):
        parts.append(f"clipping active on **{clipped:.0%}** of steps")
    return "; ".join(parts)


def experiment(name: str, result: RunResult, expanded_weights: bool = False) -> None:
    preset = PRESETS[name]
    findings = diagnose(result)
    outcome, why = verdict(preset, findings)
    st.subheader(name)
    claim, measured = st.columns(2)
    claim.markdown(f"**Claim.** {preset.claim}")
    measured.markdown(f"**Measured here.** {_measured(result)}.")
    VERDICT_BOX[outcome](f"**{outcome.capitalize()}** on this data. {why}")
    with st.expander("Weights: the article's pooled histogram next to the per-layer view", expanded=expanded_weights):
        pooled, per_layer = st.columns([1, 2])
        with pooled:
            chart(charts.pooled_hist_chart(result), False)
        with per_layer:
            chart(charts.weight_hist_chart(result, columns=2), False)
        st.caption("Pooled, every layer's weights look alike; per layer, you can see which layers moved.")


def seed_page() -> None:
    """The article's four experiments re-run here, with computed verdicts."""
    page_config("seed experiments")
    query = st.query_params.to_dict()
    overrides = {k: str(query[k]) for k in SCALE_KEYS if k in query}
    st.title("The seed article's experiments, re-run")
    st.caption("Each claim is checked against this run's own findings; the verdict is computed, not written by hand.")
    if overrides:
        st.info("Scaled by the link: " + ", ".join(f"{k}={v}" for k, v in overrides.items()), icon=":material/tune:")
    run = st.button("Run all experiments", type="primary", icon=":material/play_arrow:")
    if "seed_autorun" not in st.session_state:
        st.session_state.seed_autorun = False
        run = True  # first visit: show them without a click (each is cached after the first run)
    names = SEED_PRESETS[:3] + WHAT_DOES_EXPLODE + SEED_PRESETS[3:]
    results = {name: obtain_result(_scaled(name, overrides), run, present=False) for name in names}
    if any(r is None for r in results.values()):
        st.info("Press **Run all experiments** to train the ones not seen before.", icon=":material/play_arrow:")
        return
    for name in SEED_PRESETS[:3]:
        experiment(name, results[name], expanded_weights=name == "seed-vanishing-sigmoid")
    why_linear_did_not_explode(results)
    experiment("seed-clipnorm", results["seed-clipnorm"])


def why_linear_did_not_explode(results: dict[str, RunResult]) -> None:
    adam, adam_clip = results["seed-exploding-linear"], results["seed-clipnorm"]
    sgd, sgd_clip = results["exploding-linear"], results["exploding-linear-clipped"]
    acc = lambda r: "n/a" if r.final()["val_accuracy"] is None else f"{r.final()['val_accuracy']:.1%}"  # noqa: E731
    st.subheader("What does explode here, and why clipping matters with SGD but not with Adam")
    st.markdown(
        f"With Adam, the 20-layer linear model ends at **{acc(adam)}** unclipped and **{acc(adam_clip)}** "
        f"with clipnorm=1. Adam divides each step by the running root-mean-square of the gradient, so a "
        f"gradient 100x too large makes a step of about the same size: clipping it first changes little.  \n"
        f"With plain SGD the step is the learning rate times the gradient. `exploding-linear` (RandomNormal "
        f"σ = 0.08, SGD 0.01) "
        + (f"**diverged at step {sgd.diverged_at_step}**" if sgd.diverged else f"reached **{acc(sgd)}**")
        + f"; its clipped twin reached **{acc(sgd_clip)}**"
        + (" without diverging." if not sgd_clip.diverged else f" but diverged at step {sgd_clip.diverged_at_step}."))
    for column, name in zip(st.columns(2), WHAT_DOES_EXPLODE):
        with column:
            chart(charts.heatmap_chart(results[name], height=260, title=name), False)


# --- Guide ---------------------------------------------------------------------------------------


def guide_page() -> None:
    """Causes and fixes in a few lines each, with a link that opens the explorer on a demo."""
    page_config("guide")
    st.title("Why gradients vanish or explode, and what fixes it")
    st.markdown(GUIDE_INTRO)
    st.latex(r"\frac{\partial L}{\partial h_1} = \frac{\partial L}{\partial h_N}\prod_{k=2}^{N} W_k^{\top}\,"
             r"\mathrm{diag}\big(f'(z_k)\big)")
    for title, text, formula, links in GUIDE_SECTIONS:
        st.subheader(title)
        st.markdown(text)
        if formula:
            st.latex(formula)
        for label, query, *page in links:
            st.page_link(page[0] if page else "app.py", label=label, icon=":material/open_in_new:", query_params=query)


GUIDE_INTRO = (
    "Backpropagation multiplies one factor per layer on the way from the loss back to the first layer. "
    "If the typical factor is below 1 the product shrinks geometrically with depth (vanishing); above 1 it "
    "grows (exploding). Everything below is a way to keep each factor near 1.")

GUIDE_SECTIONS = [
    ("Cause: saturating activations",
     "The sigmoid's slope is at most 1/4 and tanh's at most 1, and both are near 0 in their tails. Ten sigmoid "
     "layers scale the gradient by at most 4⁻¹⁰, about 1e-6, before the weights even enter.",
     r"\sigma'(z) = \sigma(z)\,(1-\sigma(z)) \le \tfrac14",
     [("Open: 10 sigmoid layers (vanishing)", {"preset": "seed-vanishing-sigmoid"}),
      ("Open: tanh pushed into its tails (saturation)", {"preset": "saturated-tanh"})]),
    ("Cause: initialization scale",
     "Each layer multiplies the signal's variance by its fan-in times the weight variance (times the "
     "activation's gain). Too small and the signal dies out; too large and it blows up - in both passes.",
     r"\mathrm{Var}(h_k) \approx n_{k-1}\,\mathrm{Var}(w_k)\,g\;\mathrm{Var}(h_{k-1})",
     [("Open: 20 linear layers, σ = 0.08 (256 · 0.08² = 1.6 per layer)", {"preset": "exploding-linear"})]),
    ("Cause: depth",
     "More layers, more factors in the product: the same per-layer shrinkage hurts twice as much at twice "
     "the depth.", None,
     [("Open: 20 sigmoid layers", {"depth": "20", "width": "256", "activation": "sigmoid",
                                   "initializer": "glorot_uniform"})]),
    ("Cause: large learning rates",
     "A step that is too large can throw ReLU units into the region where they output 0 for every input; "
     "a dead unit passes no gradient and never recovers.", None,
     [("Open: ReLU with Adam at 0.05 (dead units)", {"preset": "dead-relu"})]),
    ("Cause: recurrent time steps",
     "A recurrent network applies the same matrix at every time step, so the gradient reaching step 1 of "
     "T steps holds that matrix's Jacobian T times: its largest singular value to the power T. A deep "
     "linear network is the same product without the weight sharing.",
     r"\Big\|\frac{\partial h_T}{\partial h_1}\Big\| \lesssim \|W_{hh}\|^{\,T-1}\prod_t |f'(z_t)|",
     [("Open: SimpleRNN vs LSTM vs GRU over 112 time steps", {"step_pixels": "7"}, "pages/4_Through_time.py"),
      ("Open: the deep-linear analogue (20 products of 256x256 matrices)", {"preset": "exploding-linear"})]),
    ("Fix: the ReLU family",
     "ReLU's slope is exactly 1 where a unit is active, so it does not shrink the gradient; leaky ReLU, ELU, "
     "SELU and GELU keep some slope for negative inputs so units cannot die.", None,
     [("Open: ReLU + He instead of sigmoid", {"preset": "vanishing-fixed-relu-he"})]),
    ("Fix: Glorot, He and LeCun initialization",
     "Pick the weight variance so each layer keeps the variance of what flows through it.",
     r"\text{Glorot: } \tfrac{2}{n_{in}+n_{out}} \qquad \text{He (ReLU): } \tfrac{2}{n_{in}} \qquad "
     r"\text{LeCun (SELU): } \tfrac{1}{n_{in}}",
     [("Open: 20 linear layers with Glorot init", {"preset": "seed-exploding-linear"})]),
    ("Fix: batch normalization",
     "Re-centre and re-scale each layer's pre-activations over the batch, so a sigmoid works near its middle, "
     "where its slope is largest.",
     r"\hat z = \gamma\,\frac{z-\mu_B}{\sqrt{\sigma_B^2+\epsilon}} + \beta",
     [("Open: 10 sigmoid layers + batch norm", {"preset": "vanishing-fixed-batchnorm"})]),
    ("Fix: residual connections",
     "Add the block's input to its output. The Jacobian becomes the identity plus a correction, so the "
     "gradient has a path that is not multiplied down at every block.",
     r"\frac{\partial (x + F(x))}{\partial x} = I + \frac{\partial F}{\partial x}",
     [("Open: 10 sigmoid layers with skips", {"preset": "vanishing-fixed-residual"}),
      ("Open: the seed's ReLU + BN + residual CNN", {"preset": "seed-fixed-resnet"})]),
    ("Fix: gradient clipping, by norm and by value",
     "Rescale the gradient when its norm passes a threshold (per tensor: clipnorm; all together: "
     "global_clipnorm), or clamp each element (clipvalue). With SGD this bounds every step; with Adam it "
     "changes little, because Adam already divides by the gradient's running size.",
     r"g \leftarrow g \cdot \min\!\Big(1, \frac{c}{\|g\|}\Big) \qquad g_i \leftarrow \mathrm{clip}(g_i, -v, v)",
     [("Open: the exploding SGD network with clipnorm = 1", {"preset": "exploding-linear-clipped"}),
      ("Open: Adam with clipnorm = 1 (little change)", {"preset": "seed-clipnorm"})]),
    ("Fix: gating in LSTM and GRU",
     "Gated cells carry their state forward by addition, scaled by a forget gate the network learns, instead "
     "of multiplying it by the same matrix at every step - a residual connection through time.",
     r"c_t = f_t \odot c_{t-1} + i_t \odot \tilde c_t",
     [("Open: gradients through time, SimpleRNN vs LSTM vs GRU", {"step_pixels": "7"}, "pages/4_Through_time.py")]),
]


# --- Gradients through time ----------------------------------------------------------------------

CELLS = {"rnn": "SimpleRNN (tanh)", "lstm": "LSTM", "gru": "GRU"}
SEQUENCES = {28: "28 rows of 28 pixels", 14: "56 chunks of 14", 7: "112 chunks of 7", 4: "196 chunks of 4"}
TIME_KEYS = ("step_pixels", "width", "train_size", "epochs")


def _time_controls() -> dict[str, str]:
    """Sequence length, hidden size and budget, read from the link once, then from the widgets."""
    base = PRESETS["rnn-vanishing-tanh"].config
    query = st.query_params.to_dict()
    if "tt_step_pixels" not in st.session_state or any(
            str(query.get(k, "")) not in ("", str(st.session_state.get(f"tt_{k}"))) for k in TIME_KEYS):
        checked, notes = RunConfig.coerce({k: str(query[k]) for k in TIME_KEYS if k in query}, base=base)
        st.session_state.tt_notes = notes
        for key in TIME_KEYS:
            st.session_state[f"tt_{key}"] = getattr(checked, key)
        st.session_state.tt_autorun = True
    sb = st.sidebar
    sb.selectbox("Sequence", list(SEQUENCES), format_func=SEQUENCES.get, key="tt_step_pixels",
                 help="How the 28x28 image is read: longer sequences make the effect stark (and train slower)")
    sb.select_slider("Hidden units", _with_value((16, 32, 64, 128, 256), st.session_state.tt_width), key="tt_width")
    sb.select_slider("Training images", _with_value(TRAIN_SIZES, st.session_state.tt_train_size), key="tt_train_size",
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
    for note in st.session_state.pop("tt_notes", []):
        st.warning(note, icon=":material/link_off:")
    st.query_params.from_dict(values)
    run = run or st.session_state.pop("tt_autorun", False)
    configs = {label: RunConfig.coerce(values, base=PRESETS[f"rnn-{'vanishing-tanh' if a == 'rnn' else a}"].config)[0]
               for a, label in CELLS.items()}
    runs = {label: obtain_result(config, run, present=False) for label, config in configs.items()}
    if any(r is None for r in runs.values()):
        st.info("Press **Run** to train the cells not seen before.", icon=":material/play_arrow:")
        return
    chart(charts.time_profile_chart(runs), False)
    shown = st.radio("Heatmap for", list(runs), horizontal=True, key="tt_heatmap")
    chart(charts.time_heatmap_chart(runs[shown], title=f"{shown}: gradient reaching each time step (log10)"), False)
    left, right = st.columns(2)
    with left:
        chart(charts.compare_curves_chart(runs, "loss"), False)
    with right:
        chart(charts.compare_curves_chart(runs, "accuracy"), False)
    st.subheader("Findings")
    for column, (label, result) in zip(st.columns(len(runs)), runs.items()):
        with column:
            st.markdown(f"**{label}**")
            for finding in diagnose(result):
                st.markdown(f"{SEVERITY_ICON[finding.severity]} **{finding.kind.replace('_', ' ')}** - {finding.message}")
    exploding_through_time(values, run)


def exploding_through_time(values: dict, run: bool) -> None:
    st.subheader("Exploding through time, and clipping")
    budget = {k: values[k] for k in ("train_size", "epochs")}
    names = ("rnn-exploding-relu", "rnn-exploding-relu-clipped")
    results = {n: obtain_result(RunConfig.coerce(budget, base=PRESETS[n].config)[0], run, present=False) for n in names}
    if any(r is None for r in results.values()):
        return
    for column, (name, result) in zip(st.columns(2), results.items()):
        with column:
            chart(charts.time_heatmap_chart(result, height=260, title=name), False)
            top = diagnose(result)[0]
            st.markdown(f"{SEVERITY_ICON[top.severity]} **{top.kind}** - {top.message}")
