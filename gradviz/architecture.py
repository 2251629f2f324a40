"""Keras-free facts about gradviz's architectures, shared by models, charts and the Keras snippet."""

from __future__ import annotations

import math

INPUT_PIXELS = 784  # an MNIST image, flattened: 28 x 28
CLASSES = 10
ACT_SUFFIX = "_act"  # activation layers are named after the kernel layer they follow
MAX_DOWNSAMPLES = 2  # MNIST is 28x28: the CNN stem halves it, two more halvings reach 4x4


def downsample_blocks(depth: int) -> set[int]:
    """Blocks (1-based) that halve the resolution and double the filters: at 1/3 and 2/3 of depth."""
    if depth < 2:
        return set()
    stage = max(1, math.ceil(depth / (MAX_DOWNSAMPLES + 1)))
    return {1 + stage * k for k in range(1, MAX_DOWNSAMPLES + 1) if 1 + stage * k <= depth}


def hidden_name(index: int) -> str:
    """The MLP's kernel layer `index` (1-based, input side first): hidden_01, hidden_02, ..."""
    return f"hidden_{index:02d}"


def mlp_kernel_names(depth: int) -> list[str]:
    """A plain MLP's kernel layers, input to output: hidden_01 ... hidden_<depth>, output."""
    return [hidden_name(i) for i in range(1, depth + 1)] + ["output"]
