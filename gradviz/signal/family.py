"""Init-time probes of many plain MLPs at once: a depth sweep, or a (random_normal std x depth)
phase diagram, each point the probe gradviz.signal.probe.measure would give that config.

The rule that makes it cheap: gradviz seeds every layer's initializer by its position, so an MLP
of depth D is the first D hidden layers of a deeper one plus an output layer of its own; and a
random_normal kernel at std s is s times the one drawn at std 1 (TensorFlow draws s * z from the
same z). So one forward pass per std serves every depth, and the gradients of all the depths are
backpropagated together: at each layer the networks that reach it are stacked into one matmul.
With several stds the computation is traced once per (activation, depths, width, images) and
called once per std.
"""

from __future__ import annotations

import time

import numpy as np

from gradviz.architecture import CLASSES, INPUT_PIXELS, mlp_kernel_names
from gradviz.config import RunConfig
from gradviz.serving.limits import check_memory
from gradviz.serving.lru import BoundedLRU
from gradviz.signal.probe import LayerSignals, SignalProbe, fast_path, kernel_stats, probe_from
from gradviz.training.init_draws import initial_kernel
from gradviz.training.tf_setup import keras, tf

# Traced family graphs, counted against the process's cache budget (a guess from their size: a few
# ops per layer and per network, like the training graphs of gradviz.serving.cost).
TRACES: BoundedLRU = BoundedLRU("sweep traces", lambda kept: kept[1])


def measure_family(config: RunConfig, x: np.ndarray, y: np.ndarray, depths: list[int],
                   stds: list[float] | None = None, data: dict | None = None) -> dict[tuple[int, float], SignalProbe]:
    """{(depth, init_std): probe} for every depth, and every std (random_normal only; otherwise
    the config's own std), of the plain MLP `config`."""
    if not fast_path(config):
        raise ValueError("measure_family is for plain MLPs (no batch norm, no skips)")
    depths = sorted(set(depths))
    check_memory(config.replace(depth=max(depths)), "probe")  # the deepest network's kernels are all held
    scaled = stds is not None and config.initializer == "random_normal"
    stds = sorted(set(stds)) if scaled else [config.init_std]
    x_t, y_t = tf.constant(x, tf.float32), tf.constant(y, tf.int32)
    # Traced once and called per std when there are several (a phase diagram: 2.3 s for 12 x 10 at
    # width 256, 0.6 s with the trace reused); a single std runs eagerly (a depth sweep: no trace).
    numbers = (_traced(config.activation, tuple(depths), config.width, len(y)) if len(stds) > 2
               else _family_graph(config.activation, tuple(depths)))
    unit = config.replace(init_std=1.0)
    base_hidden = [initial_kernel(unit if scaled else config, i,
                                  (INPUT_PIXELS if i == 1 else config.width, config.width))
                   for i in range(1, max(depths) + 1)]
    base_out = [initial_kernel(unit if scaled else config, d + 1, (config.width, CLASSES)) for d in depths]
    found = {}
    for std in stds:
        started = time.perf_counter()
        scale = tf.constant(std if scaled else 1.0, tf.float32)
        pre, post, logits_rms, stats = (t.numpy() for t in numbers(
            x_t, y_t, [k * scale for k in base_hidden], [k * scale for k in base_out]))
        each = (time.perf_counter() - started) / len(depths)
        for d, depth in enumerate(depths):
            rows = stats[_rows_of(depths, d)]
            logits = [float(logits_rms[d])]
            signals = LayerSignals(mlp_kernel_names(depth), pre[:depth].tolist() + logits,
                                   post[:depth].tolist() + logits,
                                   grad_norm=rows[:, 0].tolist(), grad_norm_per_example=rows[:, 1].tolist(),
                                   delta_rms=rows[:, 2].tolist())
            found[(depth, std)] = probe_from(config.replace(depth=depth, init_std=std), x_t, signals, each, data)
    return found


def _rows_of(depths: list[int], d: int) -> list[int]:
    """Where network d's kernels (input -> output) sit in the stats rows the graph returns: one row
    per (network, kernel), laid out as _family_graph appends them."""
    layout = _layout(depths)
    return [layout[(d, k)] for k in range(depths[d] + 1)]


def _layout(depths: list[int]) -> dict[tuple[int, int], int]:
    """(network, kernel index) -> row, in _family_graph's order: the output kernels first, then
    each layer from the deepest down, the networks that reach it in the order they joined."""
    rows, at = {}, 0
    for d, depth in enumerate(depths):
        rows[(d, depth)] = at
        at += 1
    members = []
    for layer in range(max(depths), 0, -1):
        members += [d for d, depth in enumerate(depths) if depth == layer]
        for d in members:
            rows[(d, layer - 1)] = at
            at += 1
    return rows


def _traced(activation: str, depths: tuple[int, ...], width: int, batch: int):
    key = (activation, depths, width, batch)
    found = TRACES.get(key)
    if found is None:
        found = TRACES.put(key, (tf.function(_family_graph(activation, depths), autograph=False),
                                 int((8 + 0.5 * max(depths) + 0.5 * len(depths)) * 2**20)))
    return found[0]


def _family_graph(activation: str, depths: tuple[int, ...]):
    """The forward pass through max(depths) layers, and every depth's backward pass, stacked."""
    act = keras.activations.get(activation)

    def numbers(x, y, hidden, outs):
        batch = tf.cast(tf.shape(y)[0], tf.float32)
        h = tf.reshape(x, (-1, INPUT_PIXELS))
        inputs, slopes, pre, post = [], [], [], []
        for kernel in hidden:
            inputs.append(h)
            z = tf.matmul(h, kernel)
            with tf.GradientTape() as tape:
                tape.watch(z)
                h = act(z)
            slopes.append(tape.gradient(h, z))  # phi'(z): the activations are elementwise
            pre.append(tf.sqrt(tf.reduce_mean(tf.square(z))))
            post.append(tf.sqrt(tf.reduce_mean(tf.square(h))))
        inputs.append(h)
        onehot = tf.one_hot(y, CLASSES)
        stats, logits_rms, entering = [], [], {}
        for d, depth in enumerate(depths):  # each network's output layer, and the gradient it sends back
            logits = tf.matmul(inputs[depth], outs[d])
            logits_rms.append(tf.sqrt(tf.reduce_mean(tf.square(logits))))
            d_out = (tf.nn.softmax(logits) - onehot) / batch
            stats.append(kernel_stats(inputs[depth], d_out[None], batch))
            entering[depth] = entering.get(depth, []) + [tf.matmul(d_out, outs[d], transpose_b=True)]
        stacked = None
        for layer in range(max(depths), 0, -1):
            if stacked is not None:  # the deeper networks' gradients, one layer further back
                n, width = tf.shape(stacked)[0], tf.shape(stacked)[2]
                flat = tf.matmul(tf.reshape(stacked, (-1, width)), hidden[layer], transpose_b=True)
                stacked = tf.reshape(flat, (n, -1, tf.shape(hidden[layer])[0])) * slopes[layer - 1]
            if layer in entering:  # networks whose last hidden layer this is
                fresh = tf.stack(entering[layer]) * slopes[layer - 1]
                stacked = fresh if stacked is None else tf.concat([stacked, fresh], 0)
            stats.append(kernel_stats(inputs[layer - 1], stacked, batch))
        return tf.stack(pre), tf.stack(post), tf.stack(logits_rms), tf.concat(stats, 0)

    return numbers
