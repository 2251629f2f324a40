"""StepLog keeps memory constant by merging neighbours, without losing steps or hiding NaN."""

import numpy as np
import pytest

from gradviz.training.steplog import StepLog


def test_small_runs_are_kept_step_by_step():
    log = StepLog(width=2, capacity=8)
    log.append(0, [[1, 10], [2, 20], [3, 30]])
    steps, rows = log.arrays()
    assert log.stride == 1
    np.testing.assert_array_equal(steps, [0, 1, 2])
    np.testing.assert_array_equal(rows, [[1, 10], [2, 20], [3, 30]])


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_long_runs_are_binned_into_exact_means(chunk):
    log = StepLog(width=1, capacity=8)
    values = np.arange(1000, dtype=float)
    for start in range(0, 1000, chunk):
        part = values[start:start + chunk]
        log.append(start, part[:, None])
    steps, rows = log.arrays()
    assert len(steps) <= 8 + 1  # capacity plus one partial row
    stride = log.stride
    assert stride == 128
    for step, row in zip(steps, rows[:, 0]):
        covered = values[step:step + stride]
        assert step % stride == 0
        assert row == pytest.approx(covered.mean())
    assert steps[-1] + stride > 999  # the last steps are visible


def test_nan_survives_merging():
    log = StepLog(width=1, capacity=4)
    data = np.ones((20, 1))
    data[13] = np.nan
    log.append(0, data)
    steps, rows = log.arrays()
    bad = steps[np.isnan(rows[:, 0])]
    assert len(bad) == 1 and bad[0] <= 13 < bad[0] + log.stride


def test_capacity_must_be_even():
    with pytest.raises(ValueError):
        StepLog(width=1, capacity=5)
