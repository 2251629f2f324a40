"""Bounded per-step record: when full it halves its resolution, so long runs keep constant memory."""

from __future__ import annotations

import numpy as np

DEFAULT_CAPACITY = 4096  # rows; charts bin further to <= 200 step bins


class StepLog:
    """Rows of per-step numbers. Each row covers `stride` consecutive steps starting at `steps[i]`
    and holds their mean; NaN/Inf propagate, so a bad step stays visible after merging."""

    def __init__(self, width: int, capacity: int = DEFAULT_CAPACITY):
        if capacity < 2 or capacity % 2:
            raise ValueError("capacity must be an even number >= 2")
        self.width, self.capacity = width, capacity
        self.stride = 1  # steps per full row; always a power of two, rows aligned to multiples of it
        self._rows = np.empty((capacity, width), dtype=np.float64)
        self._steps = np.empty(capacity, dtype=np.int64)
        self._count = 0  # filled rows
        self._pending_sum = np.zeros(width)  # steps not yet making up a full row
        self._pending_count = 0
        self._pending_start = 0

    def append(self, first_step: int, rows: np.ndarray) -> None:
        """Add consecutive steps first_step, first_step + 1, ... (rows: [n, width])."""
        for offset, row in enumerate(np.asarray(rows, dtype=np.float64).reshape(-1, self.width)):
            if not self._pending_count:
                self._pending_start = first_step + offset
            self._pending_sum = self._pending_sum + row
            self._pending_count += 1
            if self._pending_count == self.stride:
                self._complete_row()

    def _complete_row(self) -> None:
        if self._count == self.capacity:
            # Full: merge neighbours, doubling the stride. The row just completed is now only the
            # first half of a row at the new stride, so it stays pending.
            self._halve()
            return
        self._rows[self._count] = self._pending_sum / self._pending_count
        self._steps[self._count] = self._pending_start
        self._count += 1
        self._pending_sum = np.zeros(self.width)
        self._pending_count = 0

    def _halve(self) -> None:
        half = self.capacity // 2
        self._rows[:half] = 0.5 * (self._rows[0::2] + self._rows[1::2])
        self._steps[:half] = self._steps[0::2]
        self._count = half
        self.stride *= 2

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, rows), including a trailing partial row so the last steps are never hidden."""
        steps, rows = self._steps[: self._count].copy(), self._rows[: self._count].copy()
        if self._pending_count:
            steps = np.append(steps, self._pending_start)
            rows = np.vstack([rows, self._pending_sum / self._pending_count])
        return steps, rows
