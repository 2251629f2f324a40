"""Views shared by the pages: a chart, the findings, the headline, the main charts and the detail tabs."""

from __future__ import annotations

import streamlit as st

from gradviz import charts
from gradviz.config import format_value
from gradviz.diagnosis.diagnose import Finding, diagnose
from gradviz.presets import PRESETS
from gradviz.result import RunResult
from gradviz.ui.export import export_panel
from gradviz.ui.init_view import cached_probe
from gradviz.ui.session import apply_fix, blocked_note
from gradviz.ui.text import SEVERITY_ICON, finding_line
from gradviz.urlstate import AppState
from gradviz.words import network_in_words

HINT = ("Each row of the heatmap is a layer, input at the top; darker means a smaller gradient. "
        "Rows that stay dark barely learn.")
BOXES = {"critical": st.error, "warning": st.warning, "info": st.success}


def chart(figure, present: bool = False) -> None:
    st.altair_chart(charts.styled(figure, present), width="stretch")


STALE_FIX = ("This fix was found for the run shown, which was trained with other settings than the "
             "controls show now: press Run to diagnose these settings.")


def findings_panel(findings: list[Finding], key_prefix: str = "fix", stale: bool = False,
                   buttons: bool = True) -> None:
    """Every finding in a coloured box, with an Apply-fix button where a single change fixes it
    (disabled when the run shown is not the controls' settings: `stale`; none where a fix search
    decides what is offered: not `buttons`)."""
    st.subheader("Diagnosis")
    offered = set()  # a change is offered once: findings that share a fix get one button, the first's
    for i, finding in enumerate(findings):
        change = tuple(sorted((k, format_value(v)) for k, v in finding.fix.items()))
        repeated = bool(finding.fix) and change in offered
        offered.add(change)
        finding_box(finding, key=f"{key_prefix}_{i}", stale=stale, button=buttons and not repeated)
        if repeated and buttons:
            st.caption("The same change as above fixes this too.")


def findings_kinds(findings: list[Finding]) -> None:
    """The diagnosis without its explanations and advice, for an open challenge."""
    st.subheader("Diagnosis")
    found = ", ".join(f"{f.kind.replace('_', ' ')} ({f.severity})" for f in findings)
    st.markdown(f"Found: **{found}**. The explanation and the advice show once the challenge is done.")


def finding_box(finding: Finding, key: str, text: str | None = None, primary: bool = False,
                stale: bool = False, button: bool = True) -> None:
    """One finding in its severity's colour (`text` in place of its message), and its Apply-fix
    button if it has a fix (primary for a critical finding, or when asked; disabled if `stale`)."""
    BOXES[finding.severity](f"**{finding.kind.replace('_', ' ')}** - {text or finding.message}",
                            icon=SEVERITY_ICON[finding.severity])
    if finding.fix and button:
        change = ", ".join(f"{k}={format_value(v)}" for k, v in finding.fix.items())
        blocked = blocked_note(finding.fix)
        st.button(f"Apply fix: {change}", key=key, on_click=apply_fix, args=(finding.fix,),
                  type="primary" if primary or finding.severity == "critical" else "secondary",
                  icon=":material/build:", disabled=stale or bool(blocked),
                  help=STALE_FIX if stale else blocked)


def findings_columns(runs: dict[str, RunResult], top_only: bool = False) -> None:
    """Each run's findings under its label, side by side (Compare, Through time)."""
    for column, (label, result) in zip(st.columns(len(runs)), runs.items()):
        with column:
            st.markdown(f"**{label}**")  # built from validated configs: no outside text
            for finding in diagnose(result)[:1 if top_only else None]:
                st.markdown(finding_line(finding))


def heatmaps_on_one_scale(runs: dict[str, RunResult], height: int = 260) -> None:
    """Several runs' gradient heatmaps on one colour scale, two to a row: at 1440 px each keeps
    ~500 px, enough for its step axis (four in a row left ~30 px each)."""
    domain = charts.shared_log10_domain(list(runs.values()))
    items = list(runs.items())
    for start in range(0, len(items), 2):
        for index, column, (label, result) in zip(range(start, start + 2), st.columns(2), items[start:start + 2]):
            with column.container(key=f"one_scale_{index}"):
                chart(charts.heatmap_chart(result, height=height, color_domain=domain, title=label.split(":")[0]))


def curves_pair(runs: dict[str, RunResult]) -> None:
    """Loss and accuracy of several runs, side by side, one colour per run."""
    left, right = st.columns(2)
    with left:
        chart(charts.compare_curves_chart(runs, "loss"))
    with right:
        chart(charts.compare_curves_chart(runs, "accuracy"))


def headline_text(result: RunResult, findings: list[Finding]) -> str:
    """What happened, in a few words: the top finding and the validation accuracy."""
    final = result.final()
    acc = "n/a" if final["val_accuracy"] is None else f"{final['val_accuracy']:.1%}"
    return f"{findings[0].kind.replace('_', ' ').capitalize()} - validation accuracy {acc}"


def headline(result: RunResult, findings: list[Finding], preset: str | None) -> None:
    """One line a first-time visitor can act on: what happened, and what to look at."""
    st.markdown(f"### {headline_text(result, findings)}")
    claim = f"**{preset}:** {PRESETS[preset].claim} " if preset in PRESETS else ""
    st.caption(f"{network_in_words(result.config)}. {claim}{HINT}")  # words from a validated config


def main_charts(result: RunResult) -> None:
    left, right = st.columns([3, 2])
    with left:
        chart(charts.heatmap_chart(result))
    with right:
        chart(charts.loss_chart(result, height=170))
        chart(charts.accuracy_chart(result, height=110))


def detail_tabs(result: RunResult, state: AppState, probe=None) -> None:
    gradients, weights, activations, updates, share = st.tabs(
        ["Gradients", "Weights", "Activations", "Updates", "Share & export"])
    with gradients:
        left, right = st.columns(2)
        with left:
            chart(charts.grad_lines_chart(result))
        with right:
            if probe is None or probe.config != result.config:  # the run shown is not the controls' settings
                probe = cached_probe(result.config)
            chart(charts.depth_profile_chart(result, at_init=probe.grad_norm if probe is not None else None))
    with weights:
        chosen = st.multiselect("Layers", result.layers, default=charts.spread(result.layers), key="weight_layers")
        chart(charts.weight_hist_chart(result, chosen or None))
    with activations:
        if result.act_layers:
            activation_views(result)
        else:
            st.info("A recurrent model's hidden state is read at every time step instead: see the "
                    "**Through time** page.", icon=":material/timeline:")
    with updates:
        chart(charts.update_ratio_chart(result))
        st.caption("A rule of thumb: each step should move a layer's weights by about 1e-3 of their size. "
                   "Far below, the layer is frozen; far above, training is unstable.")
        if len(result.sharpness):
            chart(charts.sharpness_chart(result))
            st.caption("The learning-rate law: gradient descent is stable while the loss's sharpness λ (its top "
                       "Hessian eigenvalue, on 64 validation images) stays below 2/η. Past it a run may still "
                       "spike and settle somewhere flatter (the catapult), or diverge."
                       + (" With clipping on, each step is capped, so the bound speaks for unclipped steps only."
                          if result.config.clipping else ""))
        elif result.config.optimizer in ("adam", "rmsprop"):
            st.caption(f"{result.config.optimizer} rescales each step by the gradient's running size, so no bound "
                       "on the learning rate alone follows from the curvature: the ratio above is what to watch.")
    with share:
        export_panel(result, state)


def activation_views(result: RunResult) -> None:
    chosen = st.multiselect("Layers", result.act_layers, default=charts.spread(result.act_layers), key="act_layers")
    chart(charts.activation_hist_chart(result, chosen or None))
    if result.config.activation in ("relu", "sigmoid", "tanh"):
        chart(charts.unit_health_chart(result))
