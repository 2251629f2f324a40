"""Init-time probe and mean-field prediction -> Altair charts: the forward signal and the gradient
across depth, measured points beside the theory's dashed line, as Vega-Lite specs (no Streamlit, no
TensorFlow: the theory's curves are drawn before TensorFlow has loaded)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gradviz.architecture import mlp_kernel_names
from gradviz.charts import style_spec
from gradviz.config import RunConfig
from gradviz.signal import theory

if TYPE_CHECKING:  # the probe's module imports TensorFlow; drawing the theory must not wait for it
    from gradviz.signal.probe import SignalProbe

FORWARD = {"pre-activation RMS (measured)": "#1f6feb", "theory: √q": "#e8590c"}
BACKWARD = {"batch gradient (measured)": "#1f6feb", "per-example gradient (measured)": "#2f9e44",
            "theory, per example": "#e8590c"}


def signal_frames(config: RunConfig, probe: SignalProbe | None, input_second_moment: float | None) -> tuple:
    """(forward, backward) long frames: layer, depth, value, series, kind ('measured' / 'theory').
    Without a probe, the theory alone (relative to the output layer); the theory is anchored to
    the measured output layer otherwise. Non-positive and non-finite values are left out."""
    prediction = theory.predict(config, input_second_moment) if input_second_moment is not None else None
    names = probe.layers if probe is not None else mlp_kernel_names(config.depth)
    forward, backward = [], []
    if probe is not None:
        forward.append(_series(names, probe.preact_rms, "pre-activation RMS (measured)", "measured"))
        backward.append(_series(names, probe.grad_norm, "batch gradient (measured)", "measured"))
        if probe.grad_norm_per_example:
            backward.append(_series(names, probe.grad_norm_per_example, "per-example gradient (measured)", "measured"))
    if prediction is not None:
        forward.append(_series(names, [math.sqrt(q) for q in prediction.preact_var], "theory: √q", "theory"))
        anchor = probe.grad_norm_per_example[-1] if probe is not None and probe.grad_norm_per_example else 1.0
        backward.append(_series(names, [anchor * r for r in prediction.grad_norm_relative], "theory, per example",
                                "theory"))
    empty = pd.DataFrame(columns=["layer", "depth", "value", "series", "kind"])
    return (pd.concat(forward, ignore_index=True) if forward else empty,
            pd.concat(backward, ignore_index=True) if backward else empty)


def _series(names: list[str], values: list, series: str, kind: str) -> pd.DataFrame:
    frame = pd.DataFrame({"layer": names, "depth": np.arange(len(names)),
                          "value": [np.nan if v is None else float(v) for v in values], "series": series, "kind": kind})
    return frame[np.isfinite(frame.value) & (frame.value > 0)]


def _panel(palette: dict, title: str, y_title: str, height: int, large: bool) -> dict:
    """A layered Vega-Lite spec as a plain dict: theory dashed, measurements as points on a line.
    Written out rather than built with Altair because it is redrawn on every control change, and
    building and copying the Altair objects took ~100 ms of a ~140 ms redraw (docs/performance.md)."""
    x = {"field": "depth", "type": "quantitative", "title": "layer (0 = first, right = output)",
         "axis": {"tickMinStep": 1, "format": "d"}}
    y = {"field": "value", "type": "quantitative", "title": y_title, "scale": {"type": "log"}}
    color = {"field": "series", "type": "nominal", "title": None,
             "scale": {"domain": list(palette), "range": list(palette.values())},
             "legend": {"orient": "bottom", "columns": 2, "labelLimit": 300}}
    tooltip = [{"field": "layer", "type": "nominal"}, {"field": "series", "type": "nominal"},
               {"field": "value", "type": "quantitative", "format": ".3e"}]
    encoding = {"x": x, "y": y, "color": color, "tooltip": tooltip}
    layers = [
        {"transform": [{"filter": "datum.kind == 'theory'"}], "encoding": encoding,
         "mark": {"type": "line", "strokeDash": [6, 4], "strokeWidth": 2.5}},
        {"transform": [{"filter": "datum.kind == 'measured'"}], "encoding": encoding,
         "mark": {"type": "line", "point": {"size": 50}, "strokeWidth": 1.5, "opacity": 0.85}},
    ]
    return {"title": title, "height": height, "layer": layers, **style_spec(large)}


def signal_charts(config: RunConfig, probe: SignalProbe | None, input_second_moment: float | None,
                  height: int = 150, large: bool = False
                  ) -> tuple[tuple[pd.DataFrame, dict], tuple[pd.DataFrame, dict]]:
    """Forward and backward signal across depth at initialization, as two (data, Vega-Lite spec)
    pairs (side by side on a page: Vega-Lite cannot stretch a concatenation to the page's width)."""
    forward, backward = signal_frames(config, probe, input_second_moment)
    unit = "" if probe is not None else " (theory, relative)"
    return ((forward, _panel(FORWARD, "Forward: the signal through depth", f"RMS{unit}", height, large)),
            (backward, _panel(BACKWARD, "Backward: each kernel's gradient", f"gradient norm{unit}", height, large)))
