"""A training's snapshots: histograms on fixed edges, activation statistics, in bounded memory;
checked against numpy's own histogram, mean and std."""

import numpy as np

from gradviz.training import snapshots
from gradviz.training.snapshots import Snapshots, activation_stats, clipped_histogram


def test_activation_stats_dead_and_saturated():
    relu = np.zeros((10, 4))
    relu[:, 0] = np.linspace(0.1, 1, 10)  # one live unit of four
    relu[3, 1] = 0.5  # alive for one input only: not dead
    stats = activation_stats(relu, "relu")
    assert stats[2] == 0.5 and np.isnan(stats[3])
    sig = np.array([[0.001, 0.5], [0.999, 0.6]])
    assert activation_stats(sig, "sigmoid")[3] == 0.5
    tanh = np.array([[-0.995, 0.0, 0.2, 0.99]])
    assert activation_stats(tanh, "tanh")[3] == 0.5
    conv = np.zeros((2, 3, 3, 2))
    conv[1, 2, 2, 1] = 1.0  # channel 1 fires once: alive
    assert activation_stats(conv, "relu")[2] == 0.5


def test_fast_histogram_matches_numpy():
    rng = np.random.default_rng(0)
    edges = np.linspace(-2.0, 2.0, 41)
    values = rng.normal(0, 0.8, 10_000)
    inside = values[(values > -2) & (values < 2)]
    np.testing.assert_array_equal(clipped_histogram(inside, edges), np.histogram(inside, edges)[0])
    wild = np.array([-np.inf, -50.0, np.nan, 0.01, 3.0, np.inf])
    counts = clipped_histogram(wild, edges)
    assert counts.sum() == 5 and counts[0] == 2 and counts[-1] == 2 and counts[20] == 1


def test_chunked_binning_and_statistics_equal_numpy_on_arrays_larger_than_a_chunk(monkeypatch):
    monkeypatch.setattr(snapshots, "CHUNK", 1000)  # many chunks, some of them partial
    rng = np.random.default_rng(1)
    values = rng.normal(0.3, 1.1, (37, 101)).astype(np.float32)
    values[3, 5], values[20, 7] = np.nan, np.inf
    edges = np.linspace(-3.0, 3.0, 61)
    finite = values[np.isfinite(values)]
    inside = np.clip(values[~np.isnan(values)], -3.0, 3.0 - 1e-6)
    np.testing.assert_array_equal(clipped_histogram(values, edges), np.histogram(inside, edges)[0])
    mean, std = activation_stats(values, "linear")[:2]
    np.testing.assert_allclose([mean, std], [finite.mean(dtype=np.float64), finite.std(dtype=np.float64)],
                               rtol=1e-12)
    tanh = np.tanh(values * 3)
    saturated = np.mean((tanh < -0.98) | (tanh > 0.98))
    assert activation_stats(tanh, "tanh")[3] == saturated


def test_edges_are_fixed_from_the_initial_kernels_and_pooled_over_all():
    kernels = [np.array([[0.5, -2.0]]), np.zeros((3, 3)), np.array([[1.0]])]
    snaps = Snapshots(kernels, "relu", ["hidden_01_act"])
    np.testing.assert_allclose(snaps.weight_edges[:, -1], [3.0, 0.05, 1.5])  # 1.5x the largest; zeros: 0.05
    np.testing.assert_allclose(snaps.pooled_edges[[0, -1]], [-3.0, 3.0])  # the largest of all kernels
    assert snaps.act_edges.shape == (1, snapshots.ACT_BINS + 1) and snaps.act_edges[0, -1] == 4.0

