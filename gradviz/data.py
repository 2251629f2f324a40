"""MNIST from GRADVIZ_DATA_DIR (IDX or mnist.npz), the Keras cache, or a Keras download, in that order."""

from __future__ import annotations

import contextlib
import functools
import gzip
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VAL_SIZE = 2000
PROBE_IMAGES = 64  # the init-time probe's batch: the first validation images (gradviz.signal.probe)
# The held-out validation set and the training pool come from one fixed shuffle, independent of
# the run's seed, so that every config is scored on the same examples.
SPLIT_SEED = 20261124
IDX_MAGIC = {2051: 3, 2049: 1}  # images (n, rows, cols), labels (n,)


class DataUnavailable(RuntimeError):
    """MNIST could not be found or read; the message says where to put the files."""


@dataclass(frozen=True)
class MnistFiles:
    """The splits one source holds (either may be missing, not both)."""

    source: str
    train: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray] | None


@dataclass(frozen=True)
class Dataset:
    """Scaled train/validation arrays for one run, and an honest account of where they came from."""

    x_train: np.ndarray  # float32, (n, 28, 28), in [0, 1]
    y_train: np.ndarray  # int32, (n,)
    x_val: np.ndarray
    y_val: np.ndarray
    source: str
    split: str  # the official split training examples come from: "train" or "test"
    val_split: str  # where validation comes from; disjoint from training when it is the same split
    requested_train_size: int

    @property
    def description(self) -> str:
        what = f"MNIST {self.split} split"
        if self.val_split == self.split:
            what += f" ({len(self.y_train) + len(self.y_val):,} used; train and validation disjoint)"
        else:
            what += f", validation from the {self.val_split} split"
        note = ""
        if self.requested_train_size > len(self.y_train):
            note = f"; {self.requested_train_size:,} requested, only {len(self.y_train):,} available"
        return f"{what}: {len(self.y_train):,} train / {len(self.y_val):,} val, from {self.source}{note}"

    def info(self) -> dict:
        return {
            "source": self.source,
            "split": self.split,
            "train_size": int(len(self.y_train)),
            "val_size": int(len(self.y_val)),
            "description": self.description,
            # E[x_i^2] over the training pixels: the input's scale, which mean-field theory starts from.
            "pixel_second_moment": float(np.mean(np.square(self.x_train[:1000], dtype=np.float64))),
        }


# --- reading files -------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or raw) into a uint8 array, checking magic and size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataUnavailable(f"Could not read {path}: {error}") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic not in IDX_MAGIC:
        raise DataUnavailable(f"{path} is not an MNIST IDX file (magic number {magic}).")
    ndim = IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataUnavailable(f"{path} is truncated or corrupt: expected shape {shape}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, prefix: str, kind: str) -> Path | None:
    dims = "idx3" if kind == "images" else "idx1"
    for sep in ("-", "."):
        for suffix in (".gz", ""):
            path = folder / f"{prefix}-{kind}{sep}{dims}-ubyte{suffix}"
            if path.is_file():
                return path
    return None


def _read_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    images, labels = _find_idx(folder, prefix, "images"), _find_idx(folder, prefix, "labels")
    if images is None or labels is None:
        return None
    x, y = read_idx(images), read_idx(labels)
    if len(x) != len(y):
        raise DataUnavailable(f"{images} has {len(x)} images but {labels} has {len(y)} labels.")
    return x, y


def read_npz(path: Path) -> MnistFiles:
    try:
        with np.load(path) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise DataUnavailable(f"Could not read {path}: {error}") from None
    splits = {}
    for name in ("train", "test"):
        if f"x_{name}" in arrays and f"y_{name}" in arrays:
            splits[name] = (arrays[f"x_{name}"], arrays[f"y_{name}"])
    if not splits:
        raise DataUnavailable(f"{path} holds no x_train/y_train or x_test/y_test arrays.")
    return MnistFiles(str(path), splits.get("train"), splits.get("test"))


def read_folder(folder: Path) -> MnistFiles:
    """Read whatever MNIST splits a folder holds, as IDX (.gz or raw) or mnist.npz."""
    train, test = _read_idx_pair(folder, "train"), _read_idx_pair(folder, "t10k")
    if train is not None or test is not None:
        return MnistFiles(str(folder), train, test)
    if (folder / "mnist.npz").is_file():
        return read_npz(folder / "mnist.npz")
    raise DataUnavailable(
        f"No MNIST files in {folder}. Put t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
        f"(and/or train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz) or mnist.npz there."
    )


# --- locating a source ---------------------------------------------------------------------------


def keras_cache_path() -> Path:
    """Where keras.datasets.mnist.load_data() keeps its copy (honours KERAS_HOME like Keras does)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "mnist.npz"


# A failed download is remembered this long: an offline server asked for MNIST on every rerun of
# every page tried the network 26 times a minute, each time for the same answer.
DOWNLOAD_RETRY_SECONDS = 300.0
_last_failure: dict = {"at": -math.inf, "message": ""}


def download_to_keras_cache(retry: bool = False) -> Path:
    """Fetch MNIST through Keras (needs internet); returns the cached file. After a failure the
    same DataUnavailable is raised without trying again for DOWNLOAD_RETRY_SECONDS (unless `retry`)."""
    if not retry and time.monotonic() - _last_failure["at"] < DOWNLOAD_RETRY_SECONDS:
        raise DataUnavailable(_last_failure["message"])
    from gradviz.training.tf_setup import keras  # lazy: the download path is the only one that needs Keras

    try:
        # Keras announces the download on stdout; `run --json` promises stdout holds only JSON.
        with contextlib.redirect_stdout(sys.stderr):
            keras.datasets.mnist.load_data()
    except Exception as error:  # urllib raises many types; any of them means "no download"
        message = offline_message(f"the download failed ({type(error).__name__}: {error})")
        _last_failure.update(at=time.monotonic(), message=message)
        raise DataUnavailable(message) from None
    return keras_cache_path()


def offline_message(reason: str) -> str:
    return (
        f"MNIST is not available: {reason}.\n"
        f"Either set GRADVIZ_DATA_DIR to a folder holding the IDX files (t10k-images-idx3-ubyte.gz, "
        f"t10k-labels-idx1-ubyte.gz, optionally the train-* pair) or mnist.npz, "
        f"or put mnist.npz at {keras_cache_path()}, "
        f"or run `python -m gradviz prefetch` once on a machine with internet."
    )


def locate(data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> MnistFiles:
    """Find MNIST: explicit folder / GRADVIZ_DATA_DIR, then the Keras cache, then a download."""
    folder = data_dir or os.environ.get("GRADVIZ_DATA_DIR")
    if folder:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise DataUnavailable(offline_message(f"the data folder {path} does not exist"))
        return read_folder(path)
    cached = keras_cache_path()
    if cached.is_file():
        return read_npz(cached)
    if not allow_download:
        raise DataUnavailable(offline_message("no data folder is set and the Keras cache is empty"))
    return read_npz(download_to_keras_cache())


@functools.lru_cache(maxsize=4)
def _cached_files(folder: str | None, keras_cache: str) -> MnistFiles:
    # keras_cache is part of the key so that a changed KERAS_HOME is not served a stale entry.
    return locate(folder)


def load_files(data_dir: str | os.PathLike | None = None) -> MnistFiles:
    """`locate`, memoised per process: reading and unzipping MNIST once is enough."""
    folder = data_dir or os.environ.get("GRADVIZ_DATA_DIR") or None
    return _cached_files(str(folder) if folder else None, str(keras_cache_path()))


# --- building a run's dataset --------------------------------------------------------------------


def _scale(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 255.0).reshape(-1, 28, 28)


@dataclass(frozen=True)
class _Split:
    """Where a run's examples come from: the training pool in a fixed order, and the held-out
    validation examples (the same for every run, whatever its seed or size)."""

    pool: tuple[np.ndarray, np.ndarray]
    pool_order: np.ndarray
    val: tuple[np.ndarray, np.ndarray]
    val_idx: np.ndarray
    split: str
    val_split: str


def _split(files: MnistFiles) -> _Split:
    rng = np.random.default_rng(SPLIT_SEED)
    split = "train" if files.train is not None else "test"
    pool = files.train if files.train is not None else files.test
    if pool is None:
        raise DataUnavailable(f"{files.source} holds no MNIST split.")
    pool_order = rng.permutation(len(pool[1]))
    if files.train is not None and files.test is not None:
        return _Split(pool, pool_order, files.test, rng.permutation(len(files.test[1]))[:VAL_SIZE], split, "test")
    # one split only: hold out part of it, disjoint from training
    return _Split(pool, pool_order[VAL_SIZE:], pool, pool_order[:VAL_SIZE], split, split)


def make_dataset(files: MnistFiles, train_size: int) -> Dataset:
    """Deterministic train/validation arrays from whatever splits `files` holds."""
    s = _split(files)
    take = s.pool_order[:train_size]
    return Dataset(
        x_train=_scale(s.pool[0][take]),
        y_train=s.pool[1][take].astype(np.int32),
        x_val=_scale(s.val[0][s.val_idx]),
        y_val=s.val[1][s.val_idx].astype(np.int32),
        source=files.source,
        split=s.split,
        val_split=s.val_split,
        requested_train_size=train_size,
    )


def probe_batch(size: int, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The first `size` validation images and labels (the ones a run's activation probe starts
    with), without building a run's training arrays, and where they came from."""
    files = load_files(data_dir)
    s = _split(files)
    idx = s.val_idx[:size]
    return _scale(s.val[0][idx]), s.val[1][idx].astype(np.int32), {"source": files.source, "split": s.val_split}


def available_train_images(data_dir: str | os.PathLike | None = None) -> int | None:
    """How many training images the data on this machine holds, without downloading anything (None
    if there is none, or it cannot be read: the caller's own load says why). Cheap after the first
    call: the files are read once per process."""
    if not (data_dir or os.environ.get("GRADVIZ_DATA_DIR") or keras_cache_path().is_file()):
        return None
    try:
        return len(_split(load_files(data_dir)).pool_order)
    except DataUnavailable:
        return None


def load_dataset(train_size: int, data_dir: str | os.PathLike | None = None) -> Dataset:
    """A run's training and validation images, the same for every run of the same size.

    Args:
        train_size: training images asked for (fewer if the data holds fewer; `description` says so).
        data_dir: a folder with MNIST (default: GRADVIZ_DATA_DIR, then the Keras cache, then a download).
    Returns:
        A Dataset: float32 images in [0, 1], int32 labels, and where they came from.
    Raises:
        DataUnavailable: no MNIST could be found or read (the message says where to put it).
    """
    return make_dataset(load_files(data_dir), train_size)
