"""The explorer's "At initialization" view: the untrained model's forward signal and gradients
across depth, measured beside the mean-field prediction. It redraws on every control change,
before any training: the theory at once (numpy), the measurement as soon as TensorFlow is there."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import streamlit as st

from gradviz.config import RunConfig
from gradviz.data import PROBE_IMAGES, DataUnavailable, probe_batch
from gradviz.serving import cost
from gradviz.serving.limits import MemoryLimit
from gradviz.serving.results import COORDINATOR
from gradviz.signal import theory
from gradviz.signal.charts import signal_charts
from gradviz.ui import warmup
from gradviz.ui.limits import failure_message, memory_refusal, show_memory_refusal

LOG = logging.getLogger("gradviz")
VIEW_SHARPNESS_PARAMS = 1_500_000  # up to a 20 x 256 MLP (~1 s eagerly); past it the view does not measure λ
LIMITS = ("Where the theory stops: it describes infinitely wide layers (at width {width}, expect deviations of "
          "order 1/√{width}), one example's gradient (a batch's averaged gradient can sit below it), and the "
          "random start only (training moves the weights away from it).")


def init_view(config: RunConfig):
    """Draw the view; returns the SignalProbe (None without data: the run's own message says why)."""
    try:
        x, y, where = probe_batch(PROBE_IMAGES)
    except DataUnavailable:
        return None
    second_moment = float(np.mean(np.square(x, dtype=np.float64)))
    st.subheader("At initialization", help="Before any training: the same weights the run starts from, "
                                           f"measured on {PROBE_IMAGES} fixed validation images, beside "
                                           "mean-field theory's prediction (Poole et al. 2016; Schoenholz et al. "
                                           "2017). See the Guide.")
    law, left, right = st.empty(), *st.columns(2)
    forward, backward = left.empty(), right.empty()
    probe = cached_probe(config)
    if probe is None:  # theory first, while the measurement (and maybe TensorFlow's import) runs
        _draw(forward, backward, config, None, second_moment)
        predicted = theory.law(config, theory.predict(config, second_moment))
        law.markdown(predicted)
        if not _fits(config):
            if theory.not_covered(config):  # no theory and no measurement: nothing to draw, nothing to claim
                forward.empty()
                backward.empty()
                law.markdown(f"No mean-field prediction here: {theory.not_covered(config)}.")
            return None
        law.markdown(f"{predicted} *Measuring ...*")
        probe = _measure(config, lambda held: law.markdown(
            f"{predicted} *Waiting for memory: {held:,.0f} MB of this server's work memory are in use ...*"))
        if probe is None:
            return None
    _draw(forward, backward, config, probe, second_moment)
    law.markdown(probe.law)
    limits = "" if theory.not_covered(config) else LIMITS.format(width=config.width) + " "
    st.caption(f"{limits}Measured on {PROBE_IMAGES} {where['split']}-split images in {probe.seconds * 1000:.0f} ms.")
    _step_law(config, x, y)
    return probe


def _step_law(config: RunConfig, x, y) -> None:
    """The learning-rate law beside the initialization's: the sharpness λ here and the step it allows
    (MLPs: a Hessian-vector product through a CNN or a recurrent layer costs seconds)."""
    if config.architecture != "mlp":
        return
    if cost.parameter_count(config) > VIEW_SHARPNESS_PARAMS:  # double backprop on a big net: seconds and memory
        st.caption(f"**The step:** the loss's sharpness is not measured here for a network of "
                   f"{cost.parameter_count(config):,} parameters; `python -m gradviz probe` measures it.")
        return
    from gradviz.signal.sharpness import sharpness_for_view, view_trace_mb

    try:
        with COORDINATOR.memory.reserve(cost.probe(config).mb + view_trace_mb(config)):
            found = sharpness_for_view(config, x, y)
    except Exception:  # noqa: BLE001 - a line of text: without it the view is still whole
        LOG.exception("sharpness failed for %s", config)
        return
    st.markdown(step_law_text(found, config.learning_rate, clipped=config.clipping is not None))


def step_law_text(found, learning_rate: float, clipped: bool = False) -> str:
    """One sentence: λ, the stable step for this optimizer, and where the learning rate sits."""
    lam = found.lambda_max
    if not math.isfinite(lam):
        return "**The step:** the loss's sharpness could not be measured here (it is not a finite number)."
    head = f"**The step:** the loss's sharpness here is λ = {lam:.3g} (top Hessian eigenvalue, same images)"
    if found.stable_lr is not None:
        where = "inside" if learning_rate < found.stable_lr else "past"
        formula = "2(1+β)/λ" if found.optimizer == "momentum" else "2/λ"
        return (f"{head}, so the largest stable {found.optimizer} step is about {formula} = {found.stable_lr:.3g}; "
                f"the learning rate {learning_rate:g} is {where} it ({learning_rate / found.stable_lr:.2g}×). Past it "
                "a run may still spike and settle (the catapult), or diverge."
                + (" With clipping on, every step is capped at the learning rate × the threshold, so the bound "
                   "speaks for unclipped steps only." if clipped else ""))
    if found.sgd_lr is not None:
        return (f"{head}. {found.optimizer} rescales every step by the gradient's running size, so no bound on the "
                f"learning rate alone follows (SGD's would be 2/λ = {found.sgd_lr:.3g}); watch the Updates tab's "
                "update/weight ratio instead.")
    return f"{head}: the loss curves down more than up here, so no step bound follows from it."


def _fits(config: RunConfig) -> bool:
    """The probe fits the memory cap. If not, the training does not either and the run's own
    message (with its closest config) says so below; it is said here only when training would fit."""
    refusal = memory_refusal(config, "probe")
    if refusal is None:
        return True
    if memory_refusal(config, "training") is None:
        show_memory_refusal(refusal, offer=True)
    else:  # the run's own refusal, with its closest config, is the one box; this says why nothing is measured
        drawn = "" if theory.not_covered(config) else " The theory's prediction needs no memory and is drawn above."
        st.caption(f"Not measured: measuring this network would need about {refusal.estimate.mb:,.0f} MB, over "
                   f"the server's cap of {refusal.cap_mb:,} MB.{drawn}")
    return False


def _measure(config: RunConfig, on_wait):
    """The probe, measured within the server's memory for work (gradviz.serving.gate.MemoryGate);
    None, with a message, if it could not be (the server goes on serving)."""
    # TensorFlow's import starts only now: on a thread beside the page's it took the interpreter
    # from the page's own work and the first chart came after it (5.5 s instead of ~1.5 s).
    warmup.wait()
    from gradviz.signal.probe import probe

    try:
        with COORDINATOR.memory.reserve(cost.probe(config).mb, on_wait=on_wait):
            return probe(config)
    except MemoryLimit as limit:  # the cap was lowered since the check
        show_memory_refusal(limit, offer=True)
    except Exception as error:  # noqa: BLE001 - the last line of defence: a message, never a traceback
        LOG.exception("init-time probe failed for %s", config)
        st.error(failure_message("Measuring this network", error, training=False), icon=":material/error:")
    return None


def cached_probe(config: RunConfig):
    """The probe if this process measured it already (asked only once TensorFlow is loaded); never
    measures (one lookup: another session may drop the entry at any moment)."""
    if not warmup.ready():
        return None
    from gradviz.signal.probe import PROBES

    found = PROBES.get_for(config)
    if found is None or found.config == config:
        return found
    return dataclasses.replace(found, config=config)  # the same numbers, another training setup


def _draw(forward, backward, config, probe, second_moment) -> None:
    for slot, (data, spec) in zip((forward, backward), signal_charts(config, probe, second_moment)):
        slot.vega_lite_chart(data, spec, width="stretch")
