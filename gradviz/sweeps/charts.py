"""Sweep points -> Altair charts: a measure against x (one line per series, the theory dashed
beside the measurement) and the phase diagram (log gradient ratio over sigma_w x depth, with the
theory's chi = 1 line over it). Pure Altair, no Streamlit. A whole-number field's axis has
whole-number ticks only (a depth of 2.5 does not exist)."""

from __future__ import annotations

import math
from urllib.parse import urlencode

import altair as alt
import numpy as np
import pandas as pd

from gradviz.config import RULES, RunConfig

# measure -> (measured key, theory key or None, axis title, log scale)
MEASURES = {
    "delta": ("delta_ratio_first_last", "predicted_delta_ratio", "gradient reaching layer 1 / the last hidden layer",
              True),
    "kernel": ("ratio_first_last", "predicted_ratio", "first kernel's gradient / output kernel's", True),
    "forward": ("forward_rms_last", "predicted_forward_rms_last", "activation RMS, last hidden layer", True),
    "accuracy": ("val_accuracy", None, "validation accuracy", False),
}
LOG_FIELDS = ("init_std", "init_gain", "learning_rate")
DIVERGED_COLOR = "#e4002b"


def points_frame(points: list[dict], measure: str) -> pd.DataFrame:
    """Long frame: x, series, value, kind (measured / theory), diverged; positive finite values on log axes."""
    key, theory, _, log = MEASURES[measure]
    rows = []
    for p in points:
        series = "all" if p["series"] is None else str(p["series"])
        rows.append({"x": p["x"], "series": series, "value": p.get(key), "kind": "measured",
                     "diverged": p.get("diverged_at_step") is not None})
        if theory and p.get(theory) is not None:
            rows.append({"x": p["x"], "series": series, "value": p[theory], "kind": "theory", "diverged": False})
    frame = pd.DataFrame(rows, columns=["x", "series", "value", "kind", "diverged"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    keep = np.isfinite(frame.value) & ((frame.value > 0) | (not log))
    return frame[keep]


def sweep_chart(points: list[dict], measure: str, x_field: str, height: int = 320) -> alt.LayerChart:
    """`measure` against x, one colour per series: measured solid with points, theory dashed,
    diverged runs marked in red."""
    frame = points_frame(points, measure)
    _, _, title, log = MEASURES[measure]
    x = alt.X("x:Q", title=x_field, scale=alt.Scale(type="log" if x_field in LOG_FIELDS else "linear"),
              axis=alt.Axis(tickMinStep=1, format="d") if RULES[x_field].kind == "int" else alt.Undefined)
    y = alt.Y("value:Q", title=title, scale=alt.Scale(type="log") if log else alt.Scale(domain=[0, 1]))
    color = alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom"))
    tooltip = ["series:N", "x:Q", "kind:N", alt.Tooltip("value:Q", format=".3g")]
    measured = alt.Chart(frame[frame.kind == "measured"]).mark_line(point=True, strokeWidth=2).encode(
        x=x, y=y, color=color, tooltip=tooltip)
    theory = alt.Chart(frame[frame.kind == "theory"]).mark_line(strokeDash=[6, 4], strokeWidth=2, opacity=0.8).encode(
        x=x, y=y, color=color, tooltip=tooltip)
    diverged = alt.Chart(frame[frame.diverged]).mark_point(shape="cross", size=160, color=DIVERGED_COLOR,
                                                           filled=True).encode(x=x, y=alt.Y("value:Q"), tooltip=tooltip)
    legend = "solid: measured; dashed: mean-field theory" if (frame.kind == "theory").any() else "measured"
    layers = [theory, measured, diverged]
    bounds = [p["stable_lr"] for p in points if p.get("stable_lr")] if x_field == "learning_rate" else []
    if bounds:  # the learning-rate law: the stable step for the curvature at initialization
        rule = pd.DataFrame({"x": [float(np.median(bounds))], "label": ["2/λ"]})
        layers.append(alt.Chart(rule).mark_rule(strokeDash=[2, 3], strokeWidth=2, color="#555").encode(
            x=x, tooltip=[alt.Tooltip("x:Q", title="2/λ", format=".3g")]))
        legend += "; dotted: 2/λ"
    return alt.layer(*layers).properties(height=height, title=f"{title} ({legend})")


def _edges(values: list[float], log: bool) -> tuple[list[float], list[float]]:
    """Cell edges halfway between neighbouring grid values (geometrically on a log axis)."""
    v = np.log(values) if log else np.asarray(values, float)
    mids = (v[1:] + v[:-1]) / 2
    lo = np.concatenate([[v[0] - (mids[0] - v[0]) if len(v) > 1 else v[0] - 0.5], mids])
    hi = np.concatenate([mids, [v[-1] + (v[-1] - mids[-1]) if len(v) > 1 else v[-1] + 0.5]])
    return (np.exp(lo) if log else lo).tolist(), (np.exp(hi) if log else hi).tolist()


def phase_frame(points: list[dict], base: RunConfig, x_field: str, y_field: str) -> pd.DataFrame:
    """One row per cell: edges, the measured and predicted log10 gradient ratio, a link to the explorer."""
    xs = sorted({p["x"] for p in points})
    ys = sorted({p["y"] for p in points})
    scale = math.sqrt(base.width) if x_field == "init_std" else 1.0  # sigma_w = std * sqrt(fan-in)
    x_lo, x_hi = _edges([v * scale for v in xs], x_field in LOG_FIELDS)
    y_lo, y_hi = _edges(ys, y_field in LOG_FIELDS)
    rows = []
    for p in points:
        i, j = xs.index(p["x"]), ys.index(p["y"])
        measured, predicted = p.get("delta_ratio_first_last"), p.get("predicted_delta_ratio")
        config = base.replace(**{x_field: p["x"], y_field: p["y"]})
        rows.append({"x0": x_lo[i], "x1": x_hi[i], "y0": y_lo[j], "y1": y_hi[j], "sigma_w": p["x"] * scale,
                     y_field: p["y"], "log10": math.log10(measured) if measured and measured > 0 else np.nan,
                     "predicted": math.log10(predicted) if predicted and predicted > 0 else np.nan,
                     "link": "./?" + urlencode(config.to_strings(only_changed=True))})
    return pd.DataFrame(rows)


def phase_chart(points: list[dict], base: RunConfig, x_field: str, y_field: str,
                critical: list[tuple[float, float]], height: int = 420) -> alt.LayerChart:
    """Measured log10 (gradient reaching layer 1 / the last) per cell, blue where it vanishes and
    red where it explodes, the theory's chi = 1 line over it; a click opens the explorer there."""
    frame = phase_frame(points, base, x_field, y_field)
    bound = float(np.nanmax(np.abs(frame.log10))) if frame.log10.notna().any() else 1.0
    bound = max(1.0, min(bound, 5.0))  # 1e-5 to 1e5: beyond, the colour saturates (the tooltip has the number)
    x_title = "σ_w = std · √width" if x_field == "init_std" else x_field
    x = alt.X("x0:Q", title=x_title, scale=alt.Scale(type="log" if x_field in LOG_FIELDS else "linear", nice=False))
    y = alt.Y("y0:Q", title=y_field, scale=alt.Scale(nice=False),
              axis=alt.Axis(tickMinStep=1, format="d") if RULES[y_field].kind == "int" else alt.Undefined)
    cells = alt.Chart(frame).mark_rect(cursor="pointer").encode(
        x=x, x2="x1:Q", y=y, y2="y1:Q", href="link:N",
        color=alt.Color("log10:Q", title="log10 ratio", scale=alt.Scale(scheme="redblue", reverse=True,
                                                                        domain=[-bound, bound], clamp=True)),
        tooltip=[alt.Tooltip("sigma_w:Q", title="σ_w", format=".3g"), f"{y_field}:Q",
                 alt.Tooltip("log10:Q", title="measured log10", format=".2f"),
                 alt.Tooltip("predicted:Q", title="theory log10", format=".2f")])
    line = pd.DataFrame([{"x0": sw, "y0": depth, "label": "χ = 1 (theory)"} for sw, depth in critical])
    boundary = alt.Chart(line).mark_line(color="black", strokeDash=[6, 3], strokeWidth=3, point=True).encode(
        x="x0:Q", y="y0:Q", tooltip=["label:N", alt.Tooltip("x0:Q", title="σ_w", format=".3g"), "y0:Q"])
    return alt.layer(cells, boundary).properties(
        height=height, title="Order to chaos: log10 (gradient reaching layer 1 / the last), at initialization")
