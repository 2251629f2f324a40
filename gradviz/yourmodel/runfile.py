"""The .gradviz run file: a RunResult's numbers, one file, never pickle, checked field by field on load.

The rule: a run file is a zip of .npy arrays (numpy's .npz), one per RunResult array, plus `meta`,
a JSON text, with a format version. Loading reads nothing before it has checked the zip's listing
(names, and sizes before decompression: a zip bomb is refused unread), loads with
allow_pickle=False (an object array, a pickle, is refused), then checks every array's type, rank
and shape against the others (S step rows, L kernels, E snapshots, A activation layers) and every
bound below; anything else is refused with one line (RunFileError) and nothing is kept. Step
histories are already bounded by the StepLog (at most 4,096 rows: longer runs are merged to
coarser rows), so a file stays under ~2 MB for a 50-layer model.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from gradviz.result import RunResult
from gradviz.training.steplog import DEFAULT_CAPACITY

RUN_FILE_VERSION = 1
VIEW_FILE = "GRADVIZ_VIEW_FILE"  # `python -m gradviz view FILE` hands its file to the server it starts in this
MAX_FILE_BYTES = 16 * 1024 * 1024  # what load() reads and "Open a run" accepts (.streamlit/config.toml's maxUploadSize)
MAX_UNPACKED_BYTES = 128 * 1024 * 1024  # the arrays once decompressed
MAX_ROWS, MAX_LAYERS, MAX_SNAPSHOTS, MAX_BINS = DEFAULT_CAPACITY + 1, 2048, 10_001, 512
META_FIELDS = {"data": dict, "layers": list, "act_layers": list, "steps_per_epoch": int, "total_steps": int,
               "step_stride": int, "steps_done": int, "diverged_at_step": (int, type(None)),
               "first_bad_layer": (str, type(None)), "divergence_origin": (str, type(None)), "stopped": bool,
               "seconds": (int, float), "meta": dict}
# Each array: its dimensions by name (S steps, L kernels, E snapshots, A activation layers, W/B bins).
SHAPES = {"step": "S", "loss": "S", "accuracy": "S", "grad_norm": "SL", "update_ratio": "SL",
          "global_norm_pre": "S", "global_norm_post": "S", "epoch": "E", "epoch_step": "E", "train_loss": "E",
          "train_accuracy": "E", "val_loss": "E", "val_accuracy": "E", "weight_edges": "Lw", "weight_hist": "ELW",
          "pooled_edges": "w", "pooled_hist": "EW", "act_edges": "Ab", "act_hist": "EAB", "act_stats": "EA4",
          "time_grad": "ST", "sharpness": "K2", "halves": "H"}
BOUNDS = {"S": MAX_ROWS, "L": MAX_LAYERS, "E": MAX_SNAPSHOTS, "A": MAX_LAYERS, "W": MAX_BINS, "w": MAX_BINS + 1,
          "B": MAX_BINS, "b": MAX_BINS + 1, "T": 784, "K": 64, "H": 2}


class RunFileError(ValueError):
    """A run file that is not one gradviz wrote (or was cut short, or is too large); one line says why."""


def save_run(result: RunResult, path: str | Path) -> Path:
    """Write `result` to `path` (conventionally `name.gradviz`) as one compressed file; returns the path."""
    arrays, meta = {}, {"format_version": RUN_FILE_VERSION}
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if field.name == "config":
            meta["config"] = None if value is None else value.to_dict()
        elif isinstance(value, np.ndarray):
            arrays[field.name] = np.asarray(value)
        else:
            meta[field.name] = value
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays, meta=np.array(json.dumps(meta, allow_nan=True, default=_plain)))
    target = Path(path)
    target.write_bytes(buffer.getvalue())
    return target


def load(path: str | Path) -> RunResult:
    """Read a run file written by `result.save("name.gradviz")`.

    Args:
        path: the file (at most MAX_FILE_BYTES).
    Returns:
        The RunResult, checked as read_run checks it.
    Raises:
        RunFileError: no such file, too large, or not a run file gradviz wrote (one line says why).
    """
    target = Path(path)
    if not target.is_file():
        raise RunFileError(f"{target}: no such file")
    if target.stat().st_size > MAX_FILE_BYTES:
        raise RunFileError(f"{target.name}: {target.stat().st_size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
    return read_run(target.read_bytes())


def read_run(data: bytes) -> RunResult:
    """A RunResult from a run file's bytes, checked as the module's docstring says.

    Args:
        data: the file's contents.
    Returns:
        The RunResult (`config` None for a user's model, a RunConfig for a gradviz run).
    Raises:
        RunFileError: anything but a run file gradviz wrote, within the bounds; the message is one line.
    """
    if len(data) > MAX_FILE_BYTES:
        raise RunFileError(f"{len(data):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
    names = _listing(data)
    _check_headers(data)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            loaded = {name: archive[name] for name in names}
    except ValueError as error:  # an object array: numpy would need pickle to read it
        raise RunFileError(f"not a gradviz run file: {str(error).splitlines()[0][:200]}") from None
    except (OSError, zipfile.BadZipFile, EOFError, MemoryError) as error:
        raise RunFileError(f"not a readable run file ({type(error).__name__})") from None
    if not all(isinstance(value, np.ndarray) for value in loaded.values()):
        raise RunFileError("not a gradviz run file: a member is not a numpy array")
    meta = _meta(loaded.pop("meta"))
    arrays = _checked_arrays(loaded)
    _check_meta_against_arrays(meta, arrays)
    config = meta.pop("config")
    if config is not None:
        from gradviz.config import RunConfig

        try:
            config = RunConfig.from_dict(config)
        except Exception as error:  # noqa: BLE001 - any invalid config is one line, not a traceback
            raise RunFileError(f"its config is not valid: {str(error).splitlines()[0][:200]}") from None
    return RunResult(config=config, **meta, **arrays)


def _listing(data: bytes) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError):
        raise RunFileError("not a gradviz run file (not a zip of arrays, or cut short)") from None
    names = [info.filename.removesuffix(".npy") for info in infos]
    expected = set(SHAPES) | {"meta"}
    if set(names) != expected or len(names) != len(expected):
        unknown, missing = sorted(set(names) - expected), sorted(expected - set(names))
        raise RunFileError("not a gradviz run file: " + "; ".join(
            part for part in (f"unexpected {', '.join(unknown[:5])}" if unknown else "",
                              f"missing {', '.join(missing[:5])}" if missing else "",
                              "repeated entries" if not unknown and not missing else "") if part))
    unpacked = sum(info.file_size for info in infos)
    if unpacked > MAX_UNPACKED_BYTES:
        raise RunFileError(f"its arrays unpack to {unpacked:,} bytes, over the {MAX_UNPACKED_BYTES:,}-byte limit")
    return names


def _check_headers(data: bytes) -> None:
    """Each member's .npy header (its dtype and shape) before numpy allocates what it declares."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                try:
                    major, _ = np.lib.format.read_magic(member)
                    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(member)
                except Exception:  # noqa: BLE001 - any malformed header is one refusal
                    raise RunFileError(f"not a gradviz run file: {info.filename} is not a numpy array") from None
            if dtype.hasobject:
                raise RunFileError(f"not a gradviz run file: {info.filename} holds Python objects (a pickle)")
            if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > MAX_UNPACKED_BYTES:
                raise RunFileError(f"{info.filename} declares {shape}, over the {MAX_UNPACKED_BYTES:,}-byte limit")


def _meta(value: np.ndarray) -> dict:
    if value.dtype.kind != "U" or value.ndim != 0:
        raise RunFileError("not a gradviz run file: its metadata is not text")
    try:
        meta = json.loads(str(value))
    except json.JSONDecodeError:
        raise RunFileError("not a gradviz run file: its metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise RunFileError("not a gradviz run file: its metadata is not an object")
    version = meta.pop("format_version", None)
    if version != RUN_FILE_VERSION:
        raise RunFileError(f"run file format {version!r}; this gradviz reads format {RUN_FILE_VERSION}")
    expected = set(META_FIELDS) | {"config"}
    if set(meta) != expected:
        raise RunFileError(f"not a gradviz run file: metadata fields {sorted(set(meta) ^ expected)[:5]} differ")
    for name, kind in META_FIELDS.items():
        if isinstance(meta[name], bool) and kind is not bool or not isinstance(meta[name], kind):
            raise RunFileError(f"not a gradviz run file: metadata field {name} has the wrong type")
    if not all(isinstance(n, str) and len(n) <= 300 for n in meta["layers"] + meta["act_layers"]):
        raise RunFileError("not a gradviz run file: a layer name is not a short text")
    if not meta["layers"]:
        raise RunFileError("not a gradviz run file: it records no kernel")
    if any(abs(meta[name]) > 10**12 for name in ("steps_per_epoch", "total_steps", "step_stride", "steps_done")):
        raise RunFileError("not a gradviz run file: a step count is out of range")
    _check_user_meta(meta["meta"])
    return meta


def _check_user_meta(meta: dict) -> None:
    """The fields gradviz.watch writes and the page reads: the right types, or refused."""
    kinds = {"model": (str, type(None)), "optimizer": (str, type(None)), "learning_rate": (int, float, type(None)),
             "activations": dict, "nan": (dict, type(None))}
    for name, kind in kinds.items():
        if name in meta and (isinstance(meta[name], bool) or not isinstance(meta[name], kind)):
            raise RunFileError(f"not a gradviz run file: meta.{name} has the wrong type")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.get("activations", {}).items()):
        raise RunFileError("not a gradviz run file: meta.activations is not names to names")
    nan = meta.get("nan") or {}
    rows = nan.get("rows")
    if rows is not None and not (isinstance(rows, list) and all(type(r) is int for r in rows)):
        raise RunFileError("not a gradviz run file: meta.nan.rows is not a list of row numbers")
    if any(nan.get(k) is not None and not isinstance(nan[k], str) for k in ("layer", "origin")):
        raise RunFileError("not a gradviz run file: meta.nan names a layer or origin that is not text")


def _checked_arrays(loaded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sizes: dict[str, int] = {"2": 2, "4": 4}
    for name, dims in SHAPES.items():
        array = loaded[name]
        if array.dtype.kind not in "fiu" or array.ndim != len(dims):
            raise RunFileError(f"not a gradviz run file: {name} is {array.dtype} with {array.ndim} dimensions")
        if name == "time_grad" and array.size == 0:  # a feed-forward run: [0, 0] or [S, 0]
            dims, array = "T", array.reshape(0)
        for dim, size in zip(dims, array.shape):
            if sizes.setdefault(dim, size) != size:
                raise RunFileError(f"not a gradviz run file: {name}'s shape {array.shape} disagrees with the others")
            if size > BOUNDS.get(dim, size):
                raise RunFileError(f"{name} has {size:,} entries along one axis, over the bound of {BOUNDS[dim]:,}")
    if not sizes.get("E"):
        raise RunFileError("not a gradviz run file: it holds no snapshot")
    if sizes.get("w") != sizes.get("W", -1) + 1 or (sizes.get("A") and sizes.get("b") != sizes.get("B", -1) + 1):
        raise RunFileError("not a gradviz run file: histogram edges and counts disagree")
    return {name: loaded[name] for name in SHAPES}  # time_grad as stored


def _check_meta_against_arrays(meta: dict, arrays: dict) -> None:
    if len(meta["layers"]) != arrays["grad_norm"].shape[1] or len(meta["act_layers"]) != arrays["act_stats"].shape[1]:
        raise RunFileError("not a gradviz run file: its layer names and its arrays disagree")


def _plain(value):
    """JSON for numpy scalars in metadata (a NaN report's step, say)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
