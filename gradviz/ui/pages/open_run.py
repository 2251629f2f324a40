"""The "Open a run" page: a run file from gradviz.watch (or `run --save`) shown with the Explorer's
heatmap, curves and findings. Files come from an upload, or from `python -m gradviz view FILE`,
which hands the path over in GRADVIZ_VIEW_FILE when it starts the server: nothing in a link can
make the server read a path on its disk."""

from __future__ import annotations

import logging
import os

import streamlit as st

from gradviz import charts
from gradviz.result import RunResult
from gradviz.ui.components import BOXES, chart
from gradviz.ui.session import page_config
from gradviz.ui.text import SEVERITY_ICON, literal
from gradviz.yourmodel.runfile import MAX_FILE_BYTES, VIEW_FILE, RunFileError, load, read_run

LOG = logging.getLogger("gradviz")
HOW = """```python
import gradviz
callback = gradviz.watch(model, x=x_train)            # model: your compiled Keras model
model.fit(x_train, y_train, epochs=3, callbacks=[callback])
callback.result.save("my_model.gradviz")              # then open it here
```"""


def open_run_page() -> None:
    """Upload a run file (or the one `gradviz view` named) and see it as the Explorer shows a run."""
    page_config("open a run")
    st.title("Open a run")
    st.caption("A run recorded on your own Keras model with `gradviz.watch`, or saved by `python -m gradviz run "
               "--save NAME.gradviz`: its gradients layer by layer and step by step, and what gradviz makes of them.")
    result = _from_the_command_line() or _from_an_upload()
    if result is None:
        st.markdown(HOW)
        return
    try:
        show_run(result)
    except Exception:  # noqa: BLE001 - a file that passed every check and still does not draw: one message
        LOG.exception("a run file could not be shown")
        st.error("This run file was read, but it could not be drawn.", icon=":material/error:")


def _from_the_command_line() -> RunResult | None:
    path = os.environ.get(VIEW_FILE)
    if not path:
        return None
    try:
        return _cached_file(path, os.path.getmtime(path))
    except (RunFileError, OSError) as error:
        st.error(f"The run file given to `gradviz view` could not be opened: {literal(error)}",
                 icon=":material/error:")
    return None


@st.cache_data(max_entries=4, show_spinner=False)
def _cached_file(path: str, modified: float) -> RunResult:  # noqa: ARG001 - `modified`: a changed file is read again
    return load(path)


def _from_an_upload() -> RunResult | None:
    upload = st.file_uploader("Run file", type=["gradviz"], help=f"At most {MAX_FILE_BYTES // 2**20} MB. Only "
                              "numbers are read from it (no code, no pickle); anything else is refused.")
    if upload is None:
        return None
    if upload.size > MAX_FILE_BYTES:
        st.error(f"This file is {upload.size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit.",
                 icon=":material/error:")
        return None
    try:
        return read_run(upload.getvalue())
    except RunFileError as error:
        st.error(f"This is not a run file gradviz can open: {literal(error)}", icon=":material/error:")
    except Exception:  # noqa: BLE001 - the last line of defence: one message, never a traceback
        LOG.exception("an uploaded run file could not be read")
        st.error("This file could not be read as a run file.", icon=":material/error:")
    return None


def show_run(result: RunResult) -> None:
    """The run's headline, its findings (the root cause first) and the Explorer's charts."""
    meta = result.meta or {}
    name = meta.get("model") or (result.config and result.config.architecture) or "a run"
    st.markdown(f"### {literal(name, 80)}: {result.steps_done:,} steps, {len(result.layers)} kernels")
    _findings(result)
    left, right = st.columns([3, 2])
    with left:
        chart(charts.heatmap_chart(result))
    with right:
        chart(charts.loss_chart(result, height=250))
    left, right = st.columns(2)
    with left:
        chart(charts.grad_lines_chart(result))
    with right:
        chart(charts.depth_profile_chart(result))
    chart(charts.update_ratio_chart(result))


def _findings(result: RunResult) -> None:
    if result.config is None:
        from gradviz.yourmodel.findings import diagnose_model

        found, advice = diagnose_model(result), True
    else:
        from gradviz.diagnosis.diagnose import diagnose

        found, advice = diagnose(result), False
    if not found:
        st.success("No problem found in what was recorded.", icon=":material/check_circle:")
    for finding in found:  # names in a file are outside text: shown literally
        tip = f" *Try:* {literal(finding.evidence['keras'])}" if advice else ""
        BOXES[finding.severity](f"**{finding.kind.replace('_', ' ')}** - {literal(finding.message)}{tip}",
                                icon=SEVERITY_ICON[finding.severity])
