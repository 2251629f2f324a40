"""RunResult -> Altair charts: pure builders over pre-aggregated, bounded data (no Streamlit here)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from gradviz.architecture import ACT_SUFFIX
from gradviz.result import RunResult
from gradviz.signal.step_bound import stable_lr

MAX_STEP_BINS = 200
UPDATE_RATIO_GUIDE = 1e-3
CONFIG_COLORS = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9"]  # A-D in Compare: far apart on any projector
NONFINITE_COLOR = "#e4002b"
FONT_SIZES = {False: (13, 14, 16), True: (20, 22, 26)}  # (labels, titles, chart title)
PROFILE_COLORS = {"at initialization": "#e8590c", "first epoch": "#9aa5b1", "last epoch": "#1f6feb"}


# --- aggregation ---------------------------------------------------------------------------------


def _bin_rows(result: RunResult, max_bins: int = MAX_STEP_BINS) -> np.ndarray:
    """Bin index for each step record: at most `max_bins` equal groups of consecutive records."""
    rows = len(result.step)
    per_bin = max(1, int(np.ceil(rows / max_bins)))
    return np.arange(rows) // per_bin


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(values)


def binned_layers(result: RunResult, column: str = "grad_norm", max_bins: int = MAX_STEP_BINS) -> pd.DataFrame:
    """Per (step bin, layer): step range, median log10 of `column` over finite values, and whether
    any value in the bin was NaN/Inf. At most max_bins x len(layers) rows."""
    return _binned(result, getattr(result, column), list(result.layers), max_bins)


def binned_time(result: RunResult, max_bins: int = MAX_STEP_BINS) -> pd.DataFrame:
    """The same for ||dloss/dh_t|| of a recurrent run: one 'layer' per time step (1-based)."""
    frame = _binned(result, result.time_grad, list(range(1, result.time_grad.shape[1] + 1)), max_bins)
    return frame.rename(columns={"layer": "time_step"})


def _binned(result: RunResult, values: np.ndarray, labels: list, max_bins: int) -> pd.DataFrame:
    bins = _bin_rows(result, max_bins)
    n_bins, n_layers = (int(bins[-1]) + 1 if len(bins) else 0), len(labels)
    logs = np.full((n_bins, n_layers), np.nan)
    nonfinite = np.zeros((n_bins, n_layers), dtype=bool)
    starts, ends = np.zeros(n_bins, dtype=int), np.zeros(n_bins, dtype=int)
    positive = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    for b in range(n_bins):
        rows = bins == b
        block = positive[rows]
        seen = ~np.isnan(block).all(axis=0)
        logs[b, seen] = np.nanmedian(_log10(block[:, seen]), axis=0)
        nonfinite[b] = ~np.isfinite(values[rows]).all(axis=0)
        steps = result.step[rows]
        starts[b], ends[b] = steps[0], steps[-1] + result.step_stride
    return pd.DataFrame({
        "step_start": np.repeat(starts, n_layers),
        "step_end": np.repeat(ends, n_layers),
        "layer": np.tile(np.asarray(labels, dtype=object), n_bins),
        "depth": np.tile(np.arange(n_layers), n_bins),
        "log10": logs.reshape(-1),
        "value": np.power(10.0, logs.reshape(-1)),
        "nonfinite": nonfinite.reshape(-1),
    })


def binned_loss(result: RunResult, max_bins: int = MAX_STEP_BINS) -> pd.DataFrame:
    """Per-step training loss, binned like the heatmap (finite values only)."""
    bins = _bin_rows(result, max_bins)
    frame = pd.DataFrame({"step": result.step, "loss": result.loss, "bin": bins})
    frame = frame[np.isfinite(frame.loss) & (frame.loss > 0)]
    return frame.groupby("bin", as_index=False).agg(step=("step", "first"), loss=("loss", "mean"))


def depth_profile(result: RunResult, at_init: list[float] | None = None) -> pd.DataFrame:
    """Median gradient norm per layer in the first and in the last epoch (finite values), and the
    init-time probe's gradient norms when given."""
    first = result.first_epoch_rows()
    last = result.step >= max(0, result.steps_done - result.steps_per_epoch)
    parts = []
    if at_init is not None and len(at_init) == len(result.layers):
        parts.append(pd.DataFrame({"layer": result.layers, "depth": np.arange(len(result.layers)),
                                   "grad_norm": np.asarray(at_init, float), "when": "at initialization"}))
    for label, rows in (("first epoch", first), ("last epoch", last)):
        block = np.where(np.isfinite(result.grad_norm[rows]), result.grad_norm[rows], np.nan)
        with np.errstate(all="ignore"):
            medians = np.nanmedian(block, axis=0) if len(block) else np.full(len(result.layers), np.nan)
        parts.append(pd.DataFrame({"layer": result.layers, "depth": np.arange(len(result.layers)),
                                   "grad_norm": medians, "when": label}))
    frame = pd.concat(parts, ignore_index=True)
    return frame[np.isfinite(frame.grad_norm) & (frame.grad_norm > 0)]


# --- shared styling ------------------------------------------------------------------------------


def layer_scale(result: RunResult) -> alt.Scale:
    """One colour per layer, the same in every chart: input layers dark, output layers light."""
    return alt.Scale(domain=result.layers, scheme="viridis")


def layer_sort(result: RunResult) -> list[str]:
    return list(result.layers)


def kernel_of(act_layer: str) -> str:
    """The kernel layer an activation layer follows (hidden_03_act -> hidden_03), for colours."""
    return act_layer.removesuffix(ACT_SUFFIX)


def style_spec(large: bool = False) -> dict:
    """styled()'s sizes for a Vega-Lite spec written as a dict: its `config` and `autosize`."""
    labels, titles, title = FONT_SIZES[large]
    return {"autosize": {"type": "fit-x", "contains": "padding"},
            "config": {"axis": {"labelFontSize": labels, "titleFontSize": titles},
                       "legend": {"labelFontSize": labels, "titleFontSize": titles, "labelLimit": 240},
                       "title": {"fontSize": title, "anchor": "start"}}}


def styled(chart: alt.TopLevelMixin, large: bool = False) -> alt.TopLevelMixin:
    """Readable on a projector: bigger type in presentation mode."""
    labels, titles, title = FONT_SIZES[large]
    # fit-x: stretch to the page's width but keep the plot height asked for ("fit" squeezes the
    # plot to make room for titles and legends). Facets size themselves.
    if not isinstance(chart, alt.FacetChart):
        chart = chart.properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    return (chart.configure_axis(labelFontSize=labels, titleFontSize=titles)
            .configure_legend(labelFontSize=labels, titleFontSize=titles, labelLimit=240)
            .configure_header(labelFontSize=labels, titleFontSize=titles)
            .configure_title(fontSize=title, anchor="start"))


def _divergence_rule(result: RunResult) -> alt.Chart | None:
    if result.diverged_at_step is None:
        return None
    frame = pd.DataFrame({"step": [result.diverged_at_step], "label": [f"diverged at step {result.diverged_at_step}"]})
    rule = alt.Chart(frame).mark_rule(color=NONFINITE_COLOR, strokeWidth=2, strokeDash=[6, 3]).encode(
        x="step:Q", tooltip=["label:N"])
    return rule


def _with_rule(chart, result):
    rule = _divergence_rule(result)
    return chart if rule is None else alt.layer(chart, rule)


# --- charts --------------------------------------------------------------------------------------


def heatmap_chart(result: RunResult, height: int | None = None, color_domain: tuple[float, float] | None = None,
                  title: str = "Gradient norm per layer and step (log10; dark = small, red = NaN/Inf)"
                  ) -> alt.LayerChart:
    """Layer x step heatmap of log10 gradient norm; input layer on top, NaN/Inf cells in red,
    the divergence step as a dashed rule. `color_domain` puts several heatmaps on one scale."""
    frame = binned_layers(result)
    finite = frame[np.isfinite(frame.log10)]
    bad = frame[frame.nonfinite]
    y = alt.Y("layer:N", sort=layer_sort(result), title=None)
    x = alt.X("step_start:Q", title="training step", scale=alt.Scale(domain=[0, max(1, result.steps_done)], nice=False),
              axis=alt.Axis(tickMinStep=1, format="d"))
    tooltip = ["layer:N", alt.Tooltip("step_start:Q", title="from step"), alt.Tooltip("step_end:Q", title="to step"),
               alt.Tooltip("value:Q", title="grad norm", format=".2e")]
    cells = alt.Chart(finite).mark_rect().encode(
        x=x, x2="step_end:Q", y=y,
        color=alt.Color("log10:Q", title="log10 grad norm",
                        scale=alt.Scale(scheme="inferno",
                                        domain=list(color_domain) if color_domain else alt.Undefined)),
        tooltip=tooltip)
    layers = [cells]
    if len(bad):
        layers.append(alt.Chart(bad).mark_rect(color=NONFINITE_COLOR).encode(
            x=x, x2="step_end:Q", y=y, tooltip=["layer:N", alt.Tooltip("step_start:Q", title="NaN/Inf from step")]))
    rule = _divergence_rule(result)
    if rule is not None:
        layers.append(rule)
    rows = len(result.layers)
    height = height or int(np.clip(24 * rows, 300, 640))  # every layer's label fits up to ~26 layers
    return alt.layer(*layers).properties(height=height, title=title)


def _layer_lines(result: RunResult, column: str, y_title: str) -> alt.Chart:
    """One line per layer over training (binned), log y, the layer colours of every chart."""
    frame = binned_layers(result, column=column)
    return alt.Chart(frame[np.isfinite(frame.log10)]).mark_line().encode(
        x=alt.X("step_start:Q", title="training step"),
        y=alt.Y("value:Q", title=y_title, scale=alt.Scale(type="log")),
        color=alt.Color("layer:N", scale=layer_scale(result), sort=layer_sort(result), title="layer"),
        tooltip=["layer:N", "step_start:Q", alt.Tooltip("value:Q", format=".2e")])


def grad_lines_chart(result: RunResult, height: int = 280) -> alt.Chart:
    """Each kernel's gradient norm over training, log y, one colour per layer."""
    chart = _layer_lines(result, "grad_norm", "gradient norm")
    return _with_rule(chart, result).properties(height=height, title="Gradient norm per layer")


def depth_profile_chart(result: RunResult, height: int = 280, at_init: list[float] | None = None) -> alt.Chart:
    """Gradient norm across depth (input -> output): at initialization (the probe), first vs last
    epoch, log y."""
    frame = depth_profile(result, at_init)
    shown = [w for w in PROFILE_COLORS if w in set(frame["when"])]  # the legend names only lines drawn
    chart = alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("layer:N", sort=layer_sort(result), title="layer (input -> output)"),
        y=alt.Y("grad_norm:Q", title="median gradient norm", scale=alt.Scale(type="log")),
        color=alt.Color("when:N", title=None,
                        scale=alt.Scale(domain=shown, range=[PROFILE_COLORS[w] for w in shown])),
        tooltip=["layer:N", "when:N", alt.Tooltip("grad_norm:Q", format=".2e")])
    return chart.properties(height=height, title="Gradient norm across depth")


def loss_chart(result: RunResult, height: int = 320) -> alt.Chart:
    """Training loss per step (binned, thin) and train/validation loss per epoch, log y."""
    steps = binned_loss(result).assign(series="train (per step)")
    snaps = result.loss_frame()
    snaps = snaps[np.isfinite(snaps.loss) & (snaps.loss > 0)]
    y = alt.Y("loss:Q", title="loss (log)", scale=alt.Scale(type="log"))
    colors = alt.Scale(domain=["train (per step)", "train", "val"], range=["#9aa5b1", "#1f6feb", "#e8590c"])
    legend = alt.Legend(orient="bottom", title=None)
    per_step = alt.Chart(steps).mark_line(strokeWidth=1.5).encode(
        x=alt.X("step:Q", title="training step"), y=y, color=alt.Color("series:N", scale=colors, legend=legend))
    per_epoch = alt.Chart(snaps).mark_line(point=True, strokeWidth=3).encode(
        x="step:Q", y=y, color=alt.Color("split:N", scale=colors, legend=legend),
        tooltip=["split:N", alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("loss:Q", format=".4f")])
    return _with_rule(alt.layer(per_step, per_epoch), result).properties(height=height, title="Loss")


def accuracy_chart(result: RunResult, height: int = 220) -> alt.Chart:
    frame = result.loss_frame()
    frame = frame[np.isfinite(frame.accuracy)]
    colors = alt.Scale(domain=["train", "val"], range=["#1f6feb", "#e8590c"])
    return alt.Chart(frame).mark_line(point=True, strokeWidth=3).encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("split:N", scale=colors, legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["split:N", alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("accuracy:Q", format=".1%")],
    ).properties(height=height, title="Accuracy (chance = 10%)")


def weight_hist_chart(result: RunResult, layers: list[str] | None = None, columns: int = 3) -> alt.FacetChart:
    """Per-layer weight histograms on the run's fixed bins: initial (grey) vs last snapshot."""
    chosen = list(layers) if layers else spread(result.layers)
    frame = result.weight_hist_frame()
    frame = frame[frame.layer.isin(chosen)]
    return _hist_facets(frame, chosen, "weight", columns, "Weights per layer: initial vs now")


def activation_hist_chart(result: RunResult, layers: list[str] | None = None, columns: int = 3) -> alt.FacetChart:
    """Per-layer activation distributions on the snapshot images: initial vs last snapshot."""
    chosen = list(layers) if layers else spread(result.act_layers)
    frame = result.act_hist_frame()
    frame = frame[frame.layer.isin(chosen)]
    return _hist_facets(frame, chosen, "activation", columns, "Activations per layer (512 validation images)")


def pooled_hist_chart(result: RunResult, height: int = 200) -> alt.Chart:
    """The seed article's view: every kernel's weights in one histogram, initial vs now. Pooling
    hides which layer moved; compare with weight_hist_chart."""
    return _hist_marks(result.pooled_hist_frame(), "weight (all layers pooled)").properties(
        height=height, title="All kernels pooled (the article's view)")


def _hist_marks(frame, what):
    return alt.Chart(frame).mark_rect(opacity=0.75).encode(
        x=alt.X("bin_start:Q", title=what), x2="bin_end:Q",
        y=alt.Y("count:Q", title="count", stack=None),
        color=alt.Color("when:N", title=None,
                        scale=alt.Scale(domain=["initial", "current"], range=["#9aa5b1", "#1f6feb"])),
        tooltip=["layer:N", "when:N", alt.Tooltip("bin_start:Q", format=".3g"), "count:Q"])


def _hist_facets(frame, chosen, what, columns, title):
    return _hist_marks(frame, what).properties(width=220, height=140).facet(
        facet=alt.Facet("layer:N", sort=chosen, title=None), columns=columns,
    ).resolve_scale(x="independent", y="independent").properties(title=title)


def unit_health_chart(result: RunResult, height: int = 240) -> alt.Chart:
    """Dead (ReLU) or saturated (sigmoid/tanh) fraction per layer at each snapshot."""
    frame = result.act_stats_frame()
    column = "dead_fraction" if result.config.activation == "relu" else "saturated_fraction"
    frame = frame[np.isfinite(frame[column])].assign(color_layer=lambda f: f.layer.map(kernel_of))
    label = "dead units" if column == "dead_fraction" else "saturated outputs"
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch"),
        y=alt.Y(f"{column}:Q", title=f"fraction of {label}", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("color_layer:N", scale=layer_scale(result), sort=layer_sort(result), title="layer"),
        tooltip=["layer:N", "epoch:Q", alt.Tooltip(f"{column}:Q", format=".0%")],
    ).properties(height=height, title=f"Share of {label} per layer")


def update_ratio_chart(result: RunResult, height: int = 280) -> alt.Chart:
    """Update-to-weight ratio per layer over training, log y, with the 1e-3 rule of thumb."""
    lines = _layer_lines(result, "update_ratio", "|update| / |weights|")
    guide = (alt.Chart(pd.DataFrame({"y": [UPDATE_RATIO_GUIDE]})).mark_rule(strokeDash=[4, 4], color="#555")
             .encode(y="y:Q"))
    return alt.layer(lines, guide).properties(height=height, title="Update / weight ratio per step (guide: 1e-3)")


def sharpness_chart(result: RunResult, height: int = 220) -> alt.Chart:
    """The learning-rate law over a run: λ_max where measured (step 0 and the end) against the
    curvature the step can take, 2/η (momentum: 2(1+β)/η); the step is stable while λ stays below."""
    measured = pd.DataFrame({"step": result.sharpness[:, 0], "lambda_max": result.sharpness[:, 1]})
    measured = measured[np.isfinite(measured.lambda_max) & (measured.lambda_max > 0)]
    config = result.config
    limit = stable_lr(config.learning_rate, config.optimizer)  # 2/η: the same formula with λ and η swapped
    x = alt.X("step:Q", title="training step")
    y = alt.Y("lambda_max:Q", title="top Hessian eigenvalue λ", scale=alt.Scale(type="log"))
    points = alt.Chart(measured).mark_line(point=alt.OverlayMarkDef(size=80)).encode(
        x=x, y=y, tooltip=["step:Q", alt.Tooltip("lambda_max:Q", format=".3g")])
    rule = alt.Chart(pd.DataFrame({"lambda_max": [limit]})).mark_rule(strokeDash=[4, 4], color=NONFINITE_COLOR).encode(
        y="lambda_max:Q", tooltip=[alt.Tooltip("lambda_max:Q", title="2/η", format=".3g")])
    return alt.layer(points, rule).properties(
        height=height, title=f"Sharpness λ against 2/η = {limit:.3g} (dashed): stable while λ stays below it")


def spread(names: list[str], count: int = 6) -> list[str]:
    """Up to `count` names spread from first to last, so deep models show early, middle and late layers."""
    if len(names) <= count:
        return list(names)
    picks = np.linspace(0, len(names) - 1, count).round().astype(int)
    return [names[i] for i in dict.fromkeys(picks)]


# --- comparing runs ------------------------------------------------------------------------------


def shared_log10_domain(results: list[RunResult]) -> tuple[float, float]:
    """One colour scale for several heatmaps: the finite log10 range over all of them."""
    values = np.concatenate([binned_layers(r).log10.to_numpy() for r in results])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else (-1.0, 1.0)


def _config_color(runs: dict) -> alt.Color:
    return alt.Color("config:N", title=None, sort=list(runs),
                     scale=alt.Scale(domain=list(runs), range=CONFIG_COLORS[:len(runs)]),
                     legend=alt.Legend(orient="bottom", columns=1, labelLimit=600))


def compare_curves_chart(runs: dict[str, RunResult], metric: str = "loss", height: int = 260) -> alt.Chart:
    """Train (dashed) and validation (solid) curves per epoch, one colour per config."""
    frame = pd.concat([r.loss_frame().assign(config=label) for label, r in runs.items()], ignore_index=True)
    frame = frame[np.isfinite(frame[metric]) & ((frame[metric] > 0) | (metric != "loss"))]
    y = (alt.Y("loss:Q", title="loss (log)", scale=alt.Scale(type="log")) if metric == "loss"
         else alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")))
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch"), y=y,
        color=_config_color(runs),
        strokeDash=alt.StrokeDash("split:N", title=None,
                                  scale=alt.Scale(domain=["val", "train"], range=[[1, 0], [5, 4]])),
        tooltip=["config:N", "split:N", alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip(f"{metric}:Q", format=".4g")],
    ).properties(height=height, title="Loss (log)" if metric == "loss" else "Accuracy")


def compare_profile_chart(runs: dict[str, RunResult], height: int = 260) -> alt.Chart:
    """Each config's gradient norm across depth (epoch-1 median) on one log axis."""
    frame = pd.concat([depth_profile(r).query("when == 'first epoch'").assign(config=label)
                       for label, r in runs.items()], ignore_index=True)
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("depth:Q", title="layer (0 = first, right = output)", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("grad_norm:Q", title="median gradient norm, epoch 1", scale=alt.Scale(type="log")),
        color=_config_color(runs),
        tooltip=["config:N", "layer:N", alt.Tooltip("grad_norm:Q", format=".2e")],
    ).properties(height=height, title="Gradient norm across depth")


# --- gradients through time ----------------------------------------------------------------------


def time_heatmap_chart(result: RunResult, height: int = 300, title: str | None = None) -> alt.Chart:
    """Time step x training step: log10 ||dloss/dh_t||, step 1 at the top, NaN/Inf in red."""
    frame = binned_time(result)
    x = alt.X("step_start:Q", title="training step", axis=alt.Axis(tickMinStep=1, format="d"),
              scale=alt.Scale(domain=[0, max(1, result.steps_done)], nice=False))
    y = alt.Y("time_step:O", title="time step (1 = first chunk read)", axis=alt.Axis(labelOverlap=True))
    cells = alt.Chart(frame[np.isfinite(frame.log10)]).mark_rect().encode(
        x=x, x2="step_end:Q", y=y,
        color=alt.Color("log10:Q", title="log10 |dL/dh_t|", scale=alt.Scale(scheme="inferno")),
        tooltip=["time_step:O", alt.Tooltip("step_start:Q", title="from step"), alt.Tooltip("value:Q", format=".2e")])
    layers = [cells]
    bad = frame[frame.nonfinite]
    if len(bad):
        layers.append(alt.Chart(bad).mark_rect(color=NONFINITE_COLOR).encode(x=x, x2="step_end:Q", y=y))
    return alt.layer(*layers).properties(
        height=height, title=title or "Gradient reaching each time step's hidden state (log10)")


def time_profile_chart(runs: dict[str, RunResult], height: int = 300) -> alt.Chart:
    """Median ||dloss/dh_t|| across time steps, first epoch (dashed) and last epoch (solid), one
    colour per run, one log axis."""
    parts = []
    for label, r in runs.items():
        last = r.step >= max(0, r.steps_done - r.steps_per_epoch)
        for when, profile in (("first epoch", r.time_profile()), ("last epoch", r.time_profile(last))):
            parts.append(pd.DataFrame({"config": label, "when": when, "time_step": np.arange(1, len(profile) + 1),
                                       "grad_norm": profile}))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[np.isfinite(frame.grad_norm) & (frame.grad_norm > 0)]
    return alt.Chart(frame).mark_line().encode(
        x=alt.X("time_step:Q", title="time step (1 = first chunk read)"),
        y=alt.Y("grad_norm:Q", title="median |dL/dh_t|", scale=alt.Scale(type="log")),
        color=_config_color(runs),
        strokeDash=alt.StrokeDash("when:N", title=None, scale=alt.Scale(domain=["last epoch", "first epoch"],
                                                                         range=[[1, 0], [5, 4]])),
        tooltip=["config:N", "when:N", "time_step:Q", alt.Tooltip("grad_norm:Q", format=".2e")],
    ).properties(height=height, title="Gradient across time steps")


HALVES = ("whole image", "first half blanked", "second half blanked")


def halves_frame(runs: dict[str, RunResult]) -> pd.DataFrame:
    """Per run with the halves measured: validation accuracy on the whole image and with each half blanked."""
    rows = [{"config": label, "input": what, "val_accuracy": float(value)}
            for label, r in runs.items() if len(r.halves) == 2
            for what, value in zip(HALVES, (r.val_accuracy[-1], *r.halves))]
    return pd.DataFrame(rows, columns=["config", "input", "val_accuracy"])


def halves_chart(runs: dict[str, RunResult], height: int = 220) -> alt.Chart:
    """Grouped bars: each run's accuracy on the whole image, without its first half, without its second."""
    return alt.Chart(halves_frame(runs)).mark_bar().encode(
        x=alt.X("input:N", title=None, sort=list(HALVES), axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("config:N"),
        y=alt.Y("val_accuracy:Q", title="validation accuracy", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        color=_config_color(runs),
        tooltip=["config:N", "input:N", alt.Tooltip("val_accuracy:Q", format=".1%")],
    ).properties(height=height, title="Used, not just reached: accuracy with half of each image blanked")


ALL_CHARTS = {
    "heatmap": heatmap_chart, "loss": loss_chart, "accuracy": accuracy_chart, "grad_lines": grad_lines_chart,
    "depth_profile": depth_profile_chart, "weights": weight_hist_chart, "activations": activation_hist_chart,
    "unit_health": unit_health_chart, "update_ratio": update_ratio_chart, "pooled_weights": pooled_hist_chart,
}
