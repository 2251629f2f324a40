"""MNIST loading: IDX (gz and raw) and npz folders, split reporting, corrupt files, the offline error."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from gradviz import data
from gradviz.data import (
    VAL_SIZE,
    DataUnavailable,
    MnistFiles,
    locate,
    make_dataset,
    probe_batch,
    read_idx,
)
from support.helpers import ROOT


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def fake_split(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    x, y = fake_split(50, 1)
    write_idx(tmp_path / "img", x, gz)
    write_idx(tmp_path / "lab", y, gz)
    if gz:
        (tmp_path / "img").rename(tmp_path / "img.gz")
        (tmp_path / "lab").rename(tmp_path / "lab.gz")
    suffix = ".gz" if gz else ""
    np.testing.assert_array_equal(read_idx(tmp_path / f"img{suffix}"), x)
    np.testing.assert_array_equal(read_idx(tmp_path / f"lab{suffix}"), y)


def test_test_split_only_folder(tmp_path):
    x, y = fake_split(3000, 2)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y, gz=True)
    dataset = make_dataset(locate(tmp_path), train_size=600)
    assert dataset.split == "test" and dataset.val_split == "test"
    assert len(dataset.y_train) == 600 and len(dataset.y_val) == VAL_SIZE
    assert dataset.x_train.dtype == np.float32 and dataset.x_train.shape == (600, 28, 28)
    assert 0.0 <= dataset.x_train.min() and dataset.x_train.max() <= 1.0
    # train and validation are disjoint rows of the one split
    rows = {r.tobytes() for r in (x.astype(np.float32) / 255.0)}
    train_rows = {r.tobytes() for r in dataset.x_train}
    val_rows = {r.tobytes() for r in dataset.x_val}
    assert train_rows <= rows and val_rows <= rows and not train_rows & val_rows
    # deterministic: the same examples every time, whatever else happened
    again = make_dataset(locate(tmp_path), train_size=600)
    np.testing.assert_array_equal(again.x_train, dataset.x_train)
    assert "test split" in dataset.description and str(tmp_path) in dataset.description


def test_train_size_is_capped_and_said(tmp_path):
    x, y = fake_split(2500, 3)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x, gz=False)  # raw, not gzip
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y, gz=False)
    dataset = make_dataset(locate(tmp_path), train_size=5000)
    assert len(dataset.y_train) == 500
    assert "5,000 requested, only 500 available" in dataset.description
    assert dataset.info()["train_size"] == 500


def test_npz_with_both_splits_trains_on_train(tmp_path):
    (xt, yt), (xs, ys) = fake_split(3000, 4), fake_split(2500, 5)
    np.savez(tmp_path / "mnist.npz", x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    dataset = make_dataset(locate(tmp_path), train_size=3000)
    assert dataset.split == "train" and dataset.val_split == "test"
    assert len(dataset.y_train) == 3000  # the whole train split: validation comes from test
    info = dataset.info()
    assert info | {"description": "", "pixel_second_moment": 0} == {
        "source": str(tmp_path / "mnist.npz"), "split": "train", "train_size": 3000,
        "val_size": VAL_SIZE, "description": "", "pixel_second_moment": 0}
    assert info["pixel_second_moment"] == pytest.approx(np.mean(dataset.x_train[:1000].astype(np.float64) ** 2))
    x, y, where = probe_batch(64, tmp_path)  # the probe's batch: the first validation images, from test
    assert np.array_equal(x, dataset.x_val[:64]) and np.array_equal(y, dataset.y_val[:64])
    assert where == {"source": str(tmp_path / "mnist.npz"), "split": "test"}


def test_env_var_is_read(tmp_path, monkeypatch):
    x, y = fake_split(2100, 6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y, gz=True)
    monkeypatch.setenv("GRADVIZ_DATA_DIR", str(tmp_path))
    assert locate().source == str(tmp_path.resolve())


def test_corrupt_and_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(DataUnavailable, match="No MNIST files in"):
        locate(tmp_path)
    with pytest.raises(DataUnavailable, match="does not exist"):
        locate(tmp_path / "nope")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", fake_split(5, 0)[1], gz=True)
    with pytest.raises(DataUnavailable, match="Could not read|not an MNIST IDX"):
        locate(tmp_path)
    x, _ = fake_split(5, 0)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", fake_split(4, 0)[1], gz=True)
    with pytest.raises(DataUnavailable, match="has 5 images but .* 4 labels"):
        locate(tmp_path)


def test_truncated_idx(tmp_path):
    x, _ = fake_split(5, 0)
    write_idx(tmp_path / "img", x, gz=False)
    (tmp_path / "img").write_bytes((tmp_path / "img").read_bytes()[:-10])
    with pytest.raises(DataUnavailable, match="truncated"):
        read_idx(tmp_path / "img")


def test_keras_cache_is_used_when_no_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADVIZ_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    xs, ys = fake_split(2200, 7)
    np.savez(tmp_path / "datasets" / "mnist.npz", x_test=xs, y_test=ys)
    files = locate(allow_download=False)
    assert isinstance(files, MnistFiles) and files.train is None and len(files.test[1]) == 2200


def test_offline_without_data_says_what_to_do(tmp_path):
    """The real download path with the network unreachable (a closed local proxy port), in a
    fresh process: the CLI exits 2 with the instructions, never a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "GRADVIZ_DATA_DIR"}
    env.update(KERAS_HOME=str(tmp_path), HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", NO_PROXY="", no_proxy="")
    done = subprocess.run([sys.executable, "-m", "gradviz", "run", "--set", "train_size=500", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "MNIST is not available" in done.stderr and "GRADVIZ_DATA_DIR" in done.stderr
    assert "prefetch" in done.stderr and "Traceback" not in done.stderr


def test_real_mnist_when_present(real_data_or_skip):
    dataset = real_data_or_skip(8000)
    assert dataset.x_train.shape[1:] == (28, 28) and len(dataset.y_val) == VAL_SIZE
    assert set(np.unique(dataset.y_train)) == set(range(10))
    assert dataset.split in ("train", "test")
    # MNIST digits are mostly background: a sanity check that we read pixels, not noise
    assert 0.08 < float(dataset.x_train.mean()) < 0.2


def test_memoised_loading_reads_once(tmp_path, monkeypatch):
    x, y = fake_split(2100, 8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y, gz=True)
    first = data.load_files(tmp_path)
    assert data.load_files(tmp_path) is first
