"""Streamlit AppTest helpers: open the app as a link would, and read charts back from their specs."""

import json

import pyarrow as pa
from streamlit.testing.v1 import AppTest

from support.helpers import ROOT

APP = str(ROOT / "app.py")
SMALL = {"train_size": "1024", "epochs": "1", "batch_size": "128"}


def open_app(params: dict | None = None, run: bool = True) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    return at.run() if run else at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> dict[str, tuple[dict, list[int]]]:
    """Chart title -> (Vega-Lite spec, row count of each inline dataset)."""
    found = {}
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        rows = [pa.ipc.open_stream(d.data.data).read_all().num_rows for d in element.proto.datasets]
        title = spec.get("title", {})
        found[title.get("text", title) if isinstance(title, dict) else title] = (spec, rows)
    return found


def leaves(spec: dict) -> list[dict]:
    """The unit specs (mark + encoding) inside nested layers."""
    if "layer" in spec:
        return [leaf for sub in spec["layer"] for leaf in leaves(sub)]
    return [spec]


def headline_text(at: AppTest) -> str:
    """The explorer's headline ("### Vanishing - validation accuracy ..."), after the init-time law."""
    return next((m.value for m in at.markdown if m.value.startswith("###")), "")


def heatmap(at: AppTest) -> tuple[dict, list[int]]:
    return next(v for k, v in charts(at).items() if str(k).startswith("Gradient norm per layer and step"))


def series_values(spec_rows_at, title: str, series: str) -> list[float]:
    """The values a chart draws for one series, read back from its inline data."""
    element = next(e for e in spec_rows_at.get("vega_lite_chart") if json.loads(e.proto.spec).get("title") == title)
    raw = ([d.data.data for d in element.proto.datasets]
           + ([element.proto.data.data] if element.proto.HasField("data") else []))
    tables = [pa.ipc.open_stream(r).read_all().to_pandas() for r in raw]
    frame = next(t for t in tables if "series" in t and series in set(t.series))
    return frame[frame.series == series].sort_values("depth").value.tolist()
