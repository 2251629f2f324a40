"""The Sweeps page: one field varied over a grid (per series, or against depth as a phase diagram),
measured at initialization at once or trained point by point; the state is a shareable link."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gradviz.config import ConfigError, RunConfig
from gradviz.data import PROBE_IMAGES, probe_batch
from gradviz.serving import cost
from gradviz.serving.limits import (
    MemoryLimit,
    closest_fitting,
    describe_change,
    estimate_memory,
    memory_message,
)
from gradviz.serving.results import COORDINATOR
from gradviz.serving.settings import max_examples
from gradviz.signal import theory
from gradviz.sweeps import charts as sweep_charts
from gradviz.sweeps.grid import (
    SERIES_FIELDS,
    TRAINED_BUDGET,
    X_FIELDS,
    SweepResult,
    SweepSpec,
    parse_axis,
)
from gradviz.sweeps.named import SWEEP_PRESETS
from gradviz.ui import warmup
from gradviz.ui.components import chart
from gradviz.ui.controls import sidebar_controls
from gradviz.ui.export import figure_file
from gradviz.ui.limits import failure_message, show_memory_refusal
from gradviz.ui.runner import obtain_result, read_data, stored_result
from gradviz.ui.session import (
    init_session,
    load_config_into_widgets,
    page_config,
    sync_url,
)
from gradviz.ui.text import notes

SWEEP_KEYS = ("x", "series", "y", "mode", "sweep")
NONE = "(none)"
VERDICT_BOX = {"reproduced": st.success, "partly": st.warning, "not reproduced": st.error}
MEASURE_NAMES = {"delta": "gradient reaching layer 1 / the last", "kernel": "first kernel's gradient / output kernel's",
                 "forward": "activation RMS, last hidden layer"}


def _from_link() -> None:
    """The link's sweep fields into the widgets, once per new link (then the widgets rule)."""
    query = {k: str(v) for k, v in st.query_params.to_dict().items() if k in SWEEP_KEYS}
    if query == st.session_state.get("sweep_synced") and "sweep_x" in st.session_state:
        return
    named = SWEEP_PRESETS.get(query.get("sweep", ""))
    if named is not None and set(query) <= {"sweep", "mode"}:  # a named sweep: its axes and base config
        query |= named.spec.to_strings()
        load_config_into_widgets(named.spec.base)
    elif query.get("sweep") and named is None:
        st.session_state.sweep_notes = [f"Unknown sweep {query['sweep'][:40]!r}: showing a depth sweep."]
    st.session_state.sweep_x = query.get("x", "depth=2:20:10")
    st.session_state.sweep_series = query.get("series", "")
    st.session_state.sweep_y = query.get("y", "")
    st.session_state.sweep_mode = "Trained" if query.get("mode") == "trained" else "At initialization"
    st.session_state.sweep_synced = query
    st.session_state.sweep_autorun = True


def _inputs(base: RunConfig) -> tuple[SweepSpec | None, list[str]]:
    """The sweep the page describes, or None with the messages that say why not."""
    x_col, series_col, y_col, mode_col = st.columns([3, 3, 3, 2])
    x_text = x_col.text_input("x: field=values", key="sweep_x", help=f"One of {', '.join(X_FIELDS)}; values "
                              "as v1,v2,... or start:stop:count, add :log for a log range")
    series_text = series_col.text_input("Series (optional)", key="sweep_series",
                                        placeholder="activation=sigmoid,tanh",
                                        help=f"One of {', '.join(SERIES_FIELDS)}")
    y_text = y_col.text_input("y for a phase diagram (optional)", key="sweep_y", placeholder="depth=2,5,10,20,50")
    mode_col.radio("Mode", ("At initialization", "Trained"), key="sweep_mode", on_change=_short_runs)
    try:
        train = st.session_state.sweep_mode == "Trained"
        spec = SweepSpec(base, parse_axis(x_text, X_FIELDS, "x"),
                         parse_axis(series_text, SERIES_FIELDS, "series") if series_text.strip() else None,
                         parse_axis(y_text, X_FIELDS, "y") if y_text.strip() else None, train=train)
        spec.check()
        return spec, []
    except ConfigError as error:
        return None, [str(error)]


def sweep_page() -> None:
    """A sweep's inputs, its chart(s), the named sweep's verdict, and the points to download."""
    page_config("sweeps")
    init_session(page_keys=SWEEP_KEYS)
    _from_link()  # before the sidebar's widgets exist: a named sweep sets their config
    state, messages, _ = sidebar_controls()
    st.title("Sweeps")
    st.caption("The law behind one run: vary one field over a grid and watch the gradient scale, at "
               "initialization (instant, beside mean-field theory) or after a short training per point.")
    st.selectbox("Named sweep", [NONE, *SWEEP_PRESETS], key="sweep_pick", on_change=_pick_named,
                 format_func=lambda n: n if n == NONE else f"{n}: {SWEEP_PRESETS[n].summary}")
    spec, problems = _inputs(state.config)
    notes(st.session_state.pop("url_messages", []) + messages + st.session_state.pop("sweep_notes", []) + problems)
    query = spec.to_strings() if spec else {}
    named = _matching_named(spec)
    if named:
        query["sweep"] = named.name
    sync_url(state, query)
    st.session_state.sweep_synced = dict(query)
    if spec is None or not _fits(spec):
        return
    result = _trained(spec) if spec.train else _at_init(spec)
    if result is None or not result.points:
        return
    if named is not None and named.spec == spec:  # as written (trained or at initialization): its verdict
        outcome, why = named.judge(result)
        VERDICT_BOX[outcome](f"**{named.name}: {outcome}.** {named.claim} {why}")
    _downloads(result)


def _short_runs() -> None:
    """Switching to Trained: each point is a short run (the sidebar's budget, set to 2,000 images x
    1 epoch, can be raised)."""
    if st.session_state.sweep_mode == "Trained":
        from gradviz.ui.session import current_config_from_widgets

        load_config_into_widgets(current_config_from_widgets()[0].replace(**TRAINED_BUDGET))


def _pick_named() -> None:
    name = st.session_state.sweep_pick
    if name in SWEEP_PRESETS:
        spec = SWEEP_PRESETS[name].spec
        load_config_into_widgets(spec.base)
        texts = spec.to_strings()
        st.session_state.sweep_x, st.session_state.sweep_series = texts["x"], texts.get("series", "")
        st.session_state.sweep_y = texts.get("y", "")
        st.session_state.sweep_mode = "Trained" if spec.train else "At initialization"


def _matching_named(spec: SweepSpec | None):
    """The named sweep this is: as written, or an init-time one trained (named in the link; its
    verdict is about the measurement at initialization, so it is not shown then)."""
    if spec is None:
        return None
    plain = SweepSpec(spec.base, spec.x, spec.series, spec.y)
    return next((p for p in SWEEP_PRESETS.values() if p.spec in (spec, plain)), None)


def _fits(spec: SweepSpec) -> bool:
    """The sweep's largest point is under the memory cap; if not, say so and offer the sweep without
    the points over it (or, when none fits, the closest base config)."""
    try:
        spec.check_memory()
        return True
    except MemoryLimit as refused:
        limit = refused
    # The message names no "closest config": the point's closest may change the very field swept.
    st.warning("The sweep's largest point is over this server's memory cap. "
               + memory_message(limit, markdown=True, closest=False), icon=":material/memory:")
    fitted = spec.within_memory()
    if fitted is not None:
        left_out = len(spec.points()) - len(fitted.points())
        st.button(f"Leave out the {left_out} point(s) over the cap", on_click=_set_axes, args=(fitted,),
                  icon=":material/memory:", key="sweep_memory_fit")
    elif limit.closest is not None:
        base = closest_fitting(spec.base, lambda c: max(estimate_memory(p[3], limit.what).mb for p in
                                                       SweepSpec(c, spec.x, spec.series, spec.y).points()),
                               limit.cap_mb)
        if base is not None:
            st.button(f"Use {describe_change(spec.base, base)} for every point", on_click=load_config_into_widgets,
                      args=(base,), icon=":material/memory:", key="sweep_memory_base")
    return False


def _set_axes(spec: SweepSpec) -> None:
    texts = spec.to_strings()
    st.session_state.sweep_x, st.session_state.sweep_series = texts["x"], texts.get("series", "")
    st.session_state.sweep_y = texts.get("y", "")


def _at_init(spec: SweepSpec) -> SweepResult | None:
    """Every point measured at initialization, drawn at once."""
    from_cache = st.empty()
    found = read_data(lambda: probe_batch(PROBE_IMAGES))
    if found is None:
        return None
    x, y, where = found
    from_cache.info("Measuring the untrained networks ...", icon=":material/hourglass_top:")
    warmup.wait()
    from gradviz.sweeps.grid import run_init

    try:
        with COORDINATOR.memory.reserve(max(cost.probe(p[3]).mb for p in spec.points())):
            result = run_init(spec, x, y, where)
    except MemoryLimit as limit:  # the cap was lowered since the check
        from_cache.empty()
        show_memory_refusal(limit, offer=False)
        return None
    except Exception as error:  # noqa: BLE001 - the last line of defence: a message, never a traceback
        from_cache.empty()
        st.error(failure_message("Measuring the sweep", error, training=False), icon=":material/error:")
        return None
    from_cache.empty()
    if spec.y is not None:
        _phase(spec, result, float((x ** 2).mean()))
    else:
        measure = st.radio("Plot", list(MEASURE_NAMES), format_func=MEASURE_NAMES.get, horizontal=True,
                           key="sweep_measure")
        st.session_state.sweep_figure = sweep_charts.sweep_chart(result.points, measure, spec.x.field)
        chart(st.session_state.sweep_figure)
    st.caption(f"{len(result.points)} untrained networks measured on {PROBE_IMAGES} {where['split']}-split images in "
               f"{result.seconds:.2f} s. Dashed: mean-field theory, for plain MLPs; where it does not apply "
               f"(batch norm, residual, cnn, recurrent) only the measurement is drawn.")
    return result


def _phase(spec: SweepSpec, result: SweepResult, second_moment: float) -> None:
    scale = spec.base.width ** 0.5 if spec.x.field == "init_std" else 1.0
    critical = []
    if spec.x.field == "init_std" and spec.y.field == "depth":
        for depth in spec.y.values:
            std = theory.critical_init_std(spec.base.replace(depth=depth, initializer="random_normal"), second_moment)
            if std is not None:
                critical.append((std * scale, depth))
    figure = sweep_charts.phase_chart(result.points, spec.base, spec.x.field, spec.y.field, critical)
    st.session_state.sweep_figure = figure
    chart(figure)
    st.caption("Blue: the gradient reaching the first layer is smaller than at the last (vanishing); red: larger "
               "(exploding). The dashed line is where mean-field theory puts χ = 1. Click a cell to open that "
               "network in the Explorer.")


def _trained(spec: SweepSpec) -> SweepResult | None:
    """Each point an ordinary run (cached or precomputed ones at once), streamed as they finish."""
    limit = max_examples()
    try:
        spec.check(limit)
    except ConfigError as error:
        notes([str(error)], icon=":material/speed:")
        fitted = spec.within_budget(limit)
        st.button(f"Sweep with {fitted.base.train_size:,} images x {fitted.base.epochs} epoch(s) per point instead",
                  on_click=load_config_into_widgets, args=(fitted.base,), icon=":material/speed:")
        return None
    run = st.button("Train the sweep", type="primary", icon=":material/play_arrow:")
    run = run or st.session_state.pop("sweep_autorun", False)
    from gradviz.sweeps.grid import run_trained

    slot, points = st.empty(), []  # the charts sit above each point's live training, redrawn as points land

    def draw(point: dict) -> None:
        points.append(point)
        with slot.container():
            for measure in ("accuracy", "kernel"):
                figure = sweep_charts.sweep_chart(points, measure, spec.x.field, height=260)
                chart(figure)
            if spec.x.field == "learning_rate" and any(p.get("stable_lr") for p in points):
                st.caption("Dotted: 2/λ (momentum: 2(1+β)/λ), the largest stable step for the loss's sharpness λ "
                           "at initialization. Past it plain descent is unstable; a run may still spike and settle "
                           "(the catapult). Adam and RMSprop have no such bound, and λ is not measured for them.")
        st.session_state.sweep_figure = figure

    found = run_trained(spec, lambda c: obtain_result(c, True, present=False) if run else stored_result(c),
                        on_point=draw)
    if len(found.points) < len(spec.points()):
        st.info(f"{len(found.points)} of {len(spec.points())} points are trained; press **Train the sweep** for the "
                "rest (each is a short run, cached for everyone).", icon=":material/play_arrow:")
    return found


def _downloads(result: SweepResult) -> None:
    left, middle, right = st.columns(3)
    frame = pd.DataFrame(result.points)
    left.download_button("Points as CSV", data=frame.to_csv(index=False), file_name="gradviz-sweep.csv",
                         mime="text/csv", icon=":material/table:", on_click="ignore")
    figure = st.session_state.get("sweep_figure")
    if figure is not None:
        middle.download_button("Chart as PNG", data=lambda: figure_file(figure, "png"), file_name="gradviz-sweep.png",
                               mime="image/png", icon=":material/image:", on_click="ignore")
        right.download_button("Chart as SVG", data=lambda: figure_file(figure, "svg"), file_name="gradviz-sweep.svg",
                              mime="image/svg+xml", icon=":material/image:", on_click="ignore")
