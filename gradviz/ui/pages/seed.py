"""The Seed experiments page: the article's four experiments re-run, with computed verdicts."""

from __future__ import annotations

import streamlit as st

from gradviz import charts
from gradviz.config import RunConfig
from gradviz.diagnosis.diagnose import diagnose
from gradviz.presets import PRESETS, verdict
from gradviz.result import RunResult
from gradviz.ui.components import chart
from gradviz.ui.runner import obtain_result, press_to_train
from gradviz.ui.session import page_config
from gradviz.ui.text import literal, notes

SEED_PRESETS = ("seed-vanishing-sigmoid", "seed-fixed-resnet", "seed-exploding-linear", "seed-clipnorm")
WHAT_DOES_EXPLODE = ("exploding-linear", "exploding-linear-clipped")
VERDICT_BOX = {"reproduced": st.success, "partly": st.warning, "not reproduced": st.error}
SCALE_KEYS = ("train_size", "epochs")  # optional link overrides for every experiment on the page


def _accuracy(result: RunResult) -> str:
    value = result.final()["val_accuracy"]
    return "n/a" if value is None else f"{value:.1%}"


def _measured(result: RunResult) -> str:
    ratio = result.grad_norm_ratio_first_last()
    parts = [f"validation accuracy **{_accuracy(result)}**",
             f"first/last-layer gradient ratio **{'n/a' if ratio is None else format(ratio, '.1e')}**"]
    if result.diverged:
        parts.append(f"**diverged at step {result.diverged_at_step}** ({result.first_bad_layer})")
    if result.config.clipping is not None:
        clipped = (result.global_norm_post < 0.999 * result.global_norm_pre).mean() if len(result.step) else 0
        parts.append(f"clipping active on **{clipped:.0%}** of steps")
    return "; ".join(parts)


def experiment(name: str, result: RunResult, expanded_weights: bool = False) -> None:
    preset = PRESETS[name]
    outcome, why = verdict(preset, diagnose(result))
    st.subheader(name)
    claim, measured = st.columns(2)
    claim.markdown(f"**Claim.** {preset.claim}")
    measured.markdown(f"**Measured here.** {_measured(result)}.")
    VERDICT_BOX[outcome](f"**{outcome.capitalize()}** on this data. {why}")
    with st.expander("Weights: the article's pooled histogram next to the per-layer view", expanded=expanded_weights):
        pooled, per_layer = st.columns([1, 2])
        with pooled:
            chart(charts.pooled_hist_chart(result))
        with per_layer:
            chart(charts.weight_hist_chart(result, columns=2))
        st.caption("Pooled, every layer's weights look alike; per layer, you can see which layers moved.")


def _scale_overrides() -> tuple[dict[str, str], list[str]]:
    """The link's train_size / epochs, checked: good values scale every experiment, bad ones are named."""
    query = st.query_params.to_dict()
    given = {k: str(query[k]) for k in SCALE_KEYS if k in query}
    checked, messages = RunConfig.coerce(given, base=PRESETS[SEED_PRESETS[0]].config)
    good = {k: v for k, v in given.items() if not any(m.startswith(f"{k}=") for m in messages)}
    return {k: str(getattr(checked, k)) for k in good}, messages


def seed_page() -> None:
    """The article's four experiments re-run here, with computed verdicts."""
    page_config("seed experiments")
    overrides, messages = _scale_overrides()
    st.title("The seed article's experiments, re-run")
    st.caption("Each claim is checked against this run's own findings; the verdict is computed, not written by hand.")
    notes(messages)
    if overrides:
        st.info("Scaled by the link: " + literal(", ".join(f"{k}={v}" for k, v in overrides.items())),
                icon=":material/tune:")
    run = st.button("Run all experiments", type="primary", icon=":material/play_arrow:")
    if "seed_autorun" not in st.session_state:
        st.session_state.seed_autorun = False
        run = True  # first visit: show them without a click (each is cached after the first run)
    names = SEED_PRESETS[:3] + WHAT_DOES_EXPLODE + SEED_PRESETS[3:]
    configs = {name: RunConfig.coerce(overrides, base=PRESETS[name].config)[0] for name in names}
    results = {name: obtain_result(config, run, present=False, label=name) for name, config in configs.items()}
    if any(r is None for r in results.values()):
        press_to_train([configs[n] for n, r in results.items() if r is None], "Run all experiments", "the ones")
        return
    for name in SEED_PRESETS[:3]:
        experiment(name, results[name], expanded_weights=name == "seed-vanishing-sigmoid")
    why_linear_did_not_explode(results)
    experiment("seed-clipnorm", results["seed-clipnorm"])


def why_linear_did_not_explode(results: dict[str, RunResult]) -> None:
    adam, adam_clip = results["seed-exploding-linear"], results["seed-clipnorm"]
    sgd, sgd_clip = results["exploding-linear"], results["exploding-linear-clipped"]
    st.subheader("What does explode here, and why clipping matters with SGD but not with Adam")
    st.markdown(
        f"With Adam, the 20-layer linear model ends at **{_accuracy(adam)}** unclipped and **{_accuracy(adam_clip)}** "
        f"with clipnorm=1. Adam divides each step by the running root-mean-square of the gradient, so a "
        f"gradient 100x too large makes a step of about the same size: clipping it first changes little.  \n"
        f"With plain SGD the step is the learning rate times the gradient. `exploding-linear` (RandomNormal "
        f"σ = 0.08, SGD 0.01) "
        + (f"**diverged at step {sgd.diverged_at_step}**" if sgd.diverged else f"reached **{_accuracy(sgd)}**")
        + f"; its clipped twin reached **{_accuracy(sgd_clip)}**"
        + (" without diverging." if not sgd_clip.diverged else f" but diverged at step {sgd_clip.diverged_at_step}."))
    for column, name in zip(st.columns(2), WHAT_DOES_EXPLODE):
        with column:
            chart(charts.heatmap_chart(results[name], height=260, title=name))
