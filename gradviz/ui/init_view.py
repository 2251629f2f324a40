"""The explorer's "At initialization" view: the untrained model's forward signal and gradients
across depth, measured beside the mean-field prediction. It redraws on every control change,
before any training: the theory at once (numpy), the measurement as soon as TensorFlow is there."""

from __future__ import annotations

import numpy as np
import streamlit as st

from gradviz.config import RunConfig
from gradviz.data import PROBE_IMAGES, DataUnavailable, probe_batch
from gradviz.signal import theory
from gradviz.signal.charts import signal_charts
from gradviz.ui import warmup

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
    probe = _cached(config)
    if probe is None:  # theory first, while the measurement (and maybe TensorFlow's import) runs
        _draw(forward, backward, config, None, second_moment)
        law.markdown(f"{theory.law(config, theory.predict(config, second_moment))} *Measuring ...*")
        # TensorFlow's import starts only now: on a thread beside the page's it took the interpreter
        # from the page's own work and the first chart came after it (5.5 s instead of ~1.5 s).
        warmup.wait()
        from gradviz.signal.probe import probe as measure

        probe = measure(config)
    _draw(forward, backward, config, probe, second_moment)
    law.markdown(probe.law)
    limits = "" if theory.not_covered(config) else LIMITS.format(width=config.width) + " "
    st.caption(f"{limits}Measured on {PROBE_IMAGES} {where['split']}-split images in {probe.seconds * 1000:.0f} ms.")
    return probe


def _cached(config: RunConfig):
    """The probe if this process measured it already (asked only once TensorFlow is loaded)."""
    if not warmup.ready():
        return None
    from gradviz.signal.probe import PROBES, probe

    return probe(config) if PROBES.get_for(config) is not None else None


def _draw(forward, backward, config, probe, second_moment) -> None:
    for slot, (data, spec) in zip((forward, backward), signal_charts(config, probe, second_moment)):
        slot.vega_lite_chart(data, spec, width="stretch")
