"""Keras-free facts about gradviz's architectures, shared by models, charts and the Keras snippet."""

from __future__ import annotations

import math

ACT_SUFFIX = "_act"  # activation layers are named after the kernel layer they follow
MAX_DOWNSAMPLES = 2  # MNIST is 28x28: the CNN stem halves it, two more halvings reach 4x4


def downsample_blocks(depth: int) -> set[int]:
    """Blocks (1-based) that halve the resolution and double the filters: at 1/3 and 2/3 of depth."""
    if depth < 2:
        return set()
    stage = max(1, math.ceil(depth / (MAX_DOWNSAMPLES + 1)))
    return {1 + stage * k for k in range(1, MAX_DOWNSAMPLES + 1) if 1 + stage * k <= depth}
