"""The .gradviz run file: a round trip keeps every number; hostile files are refused with one line."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from gradviz.yourmodel import runfile
from gradviz.yourmodel.runfile import RunFileError, read_run
from support.results import fake_result


@pytest.fixture
def saved(tmp_path):
    result = fake_result()
    result.meta = {"source": "gradviz.watch", "model": "mine", "nan": None}
    path = tmp_path / "mine.gradviz"
    result.save(path)
    return result, path


def test_a_run_file_round_trip_keeps_every_number_and_field(saved):
    from gradviz import load

    result, path = saved
    back = load(path)
    for name, value in vars(result).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(back, name), value, err_msg=name)
        else:
            assert getattr(back, name) == value, name


def test_a_user_model_run_without_a_config_round_trips(tmp_path):
    result = fake_result()
    result.config = None
    path = tmp_path / "x.gradviz"
    runfile.save_run(result, path)
    assert runfile.load(path).config is None


def _rewritten(path, change) -> bytes:
    """The run file with its members changed by `change(dict name -> bytes)`."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    change(members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _meta_changed(path, **changes) -> bytes:
    def change(members):
        meta = json.loads(str(np.load(io.BytesIO(members["meta.npy"]))))
        meta.update(changes)
        members["meta.npy"] = _npy(np.array(json.dumps(meta)))
    return _rewritten(path, change)


HOSTILE = {
    "truncated": lambda p: p.read_bytes()[: len(p.read_bytes()) // 2],
    "not a zip": lambda p: b"hello, I am not a run file",
    "a pickle inside": lambda p: _rewritten(p, lambda m: m.update({"loss.npy": _npy(np.array([object()]))})),
    "a bare pickle": lambda p: pickle.dumps({"loss": [1, 2, 3]}),
    "wrong version": lambda p: _meta_changed(p, format_version=99),
    "an unexpected member": lambda p: _rewritten(p, lambda m: m.update({"payload.npy": _npy(np.zeros(3))})),
    "a missing member": lambda p: _rewritten(p, lambda m: m.pop("grad_norm.npy")),
    "shapes that disagree": lambda p: _rewritten(p, lambda m: m.update({"loss.npy": _npy(np.zeros(7))})),
    "an oversized array": lambda p: _rewritten(p, lambda m: m.update(
        {"loss.npy": _npy(np.zeros(runfile.MAX_ROWS + 1)), "step.npy": _npy(np.zeros(runfile.MAX_ROWS + 1))})),
    "text where numbers go": lambda p: _rewritten(p, lambda m: m.update({"loss.npy": _npy(np.array(["a"] * 3))})),
    "metadata of the wrong type": lambda p: _meta_changed(p, steps_done="many"),
    "an invalid config": lambda p: _meta_changed(p, config={"depth": 10_000}),
    "a zip bomb": lambda p: _bomb(),
    "a member that is not an array": lambda p: _rewritten(p, lambda m: m.update({"loss.npy": b"just bytes"})),
    "a header declaring a huge array": lambda p: _rewritten(p, lambda m: m.update({"loss.npy": _huge_header()})),
    "nan rows that are not rows": lambda p: _meta_changed(p, meta={"nan": {"rows": {"a": 1}}}),
    "a learning rate that is text": lambda p: _meta_changed(p, meta={"learning_rate": "fast"}),
    "no kernel": lambda p: _meta_changed(p, layers=[]),
}


def _huge_header() -> bytes:
    """A valid .npy header declaring 10^12 float64 values, followed by almost nothing."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    return buffer.getvalue() + b"\0" * 16


def _bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in list(runfile.SHAPES) + ["meta"]:
            archive.writestr(f"{name}.npy", b"\0" * (8 * 1024 * 1024))  # 8 MB each, a few KB packed
    return out.getvalue()


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_run_files_are_refused_with_one_line(kind, saved):
    _, path = saved
    with pytest.raises(RunFileError) as refused:
        read_run(HOSTILE[kind](path))
    message = str(refused.value)
    assert message and "\n" not in message and "Traceback" not in message


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(runfile, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.gradviz"
    path.write_bytes(b"\0" * 2000)
    with pytest.raises(RunFileError, match="over the 1,000-byte limit"):
        runfile.load(path)
    with pytest.raises(RunFileError, match="no such file"):
        runfile.load(tmp_path / "absent.gradviz")


def test_gradviz_view_refuses_a_bad_file_with_one_line_and_starts_nothing(tmp_path, capsys):
    from gradviz.cli import main

    bad = tmp_path / "bad.gradviz"
    bad.write_bytes(b"not a run file")
    assert main(["view", str(bad)]) == 2
    assert main(["view", str(tmp_path / "absent.gradviz")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
