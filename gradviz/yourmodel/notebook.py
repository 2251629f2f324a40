"""gradviz.show(run_or_probe): a watched run or a probe drawn inline in a notebook (Jupyter, VS Code):
the charts as one Altair chart, the findings as Markdown with the Keras change each advises."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from gradviz import charts
from gradviz.result import RunResult
from gradviz.yourmodel.findings import diagnose_model


def show(measured, width: int = 640):
    """Draw `measured` inline and return the chart (a notebook displays what a cell returns).

    The findings are printed as plain text: layer names come from the model or from a run file
    someone sent, and a notebook would render Markdown or HTML in them.

    Args:
        measured: `callback.result` of gradviz.watch, a RunResult from gradviz.load, or a ModelProbe.
        width: the charts' width in pixels.
    Returns:
        An Altair chart: for a run, the layer x step heatmap, the loss, and the gradient norm across
        depth; for a probe, the gradient norms and the forward signal across depth. The findings
        are printed above it.
    """
    print(findings_text(measured))
    if isinstance(measured, RunResult):
        return run_chart(measured, width)
    return probe_chart(measured, width)


def findings_text(measured) -> str:
    """The findings as plain text, the root cause first, each with the Keras change it advises."""
    found = diagnose_model(measured)
    if not found:
        return "No problem found in what gradviz measured."
    return "\n".join(f"- {f.kind.replace('_', ' ')} ({f.severity}): {f.message}\n  Try: {f.evidence['keras']}"
                     for f in found)


def run_chart(result: RunResult, width: int = 640) -> alt.VConcatChart:
    """The heatmap, the loss, and the gradient norm across depth, stacked."""
    return alt.vconcat(charts.heatmap_chart(result).properties(width=width),
                       charts.loss_chart(result, height=220).properties(width=width),
                       charts.depth_profile_chart(result, height=220).properties(width=width))


def probe_chart(probe, width: int = 640) -> alt.VConcatChart:
    """Each kernel's gradient norm (the batch's, and one example's RMS) and each layer's output RMS, input -> output."""
    grads = pd.concat([pd.DataFrame({"layer": probe.layers, "value": probe.grad_norm, "what": "batch gradient"}),
                       pd.DataFrame({"layer": probe.layers, "value": probe.per_example_rms,
                                     "what": "one example's (RMS)"})], ignore_index=True)
    parts = [_across_depth(grads, probe.layers, "gradient norm", "Gradient norm across depth, at initialization",
                           width)]
    if probe.forward_layers:
        forward = pd.DataFrame({"layer": probe.forward_layers, "value": probe.forward_rms, "what": "output RMS"})
        parts.append(_across_depth(forward, probe.forward_layers, "output RMS",
                                   "The forward signal across depth, at initialization", width))
    return alt.vconcat(*parts)


def _across_depth(frame: pd.DataFrame, order: list[str], y_title: str, title: str, width: int) -> alt.Chart:
    frame = frame[np.isfinite(frame.value) & (frame.value > 0)]
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("layer:N", sort=list(order), title="layer (input -> output)"),
        y=alt.Y("value:Q", title=y_title, scale=alt.Scale(type="log")),
        color=alt.Color("what:N", title=None),
        tooltip=["layer:N", "what:N", alt.Tooltip("value:Q", format=".2e")]).properties(width=width, height=220,
                                                                                          title=title)
