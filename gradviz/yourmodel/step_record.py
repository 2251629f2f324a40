"""One watched step's record (its row of numbers, the step count and first bad step, and the bad
batch's fingerprint), computed by a graph traced once per model shape.

The rule: the record is a function of tensors only (the loss, every gradient, each kernel before
and after its update, the running status and the batch's first input), so it lives in its own
tf.function, keyed by those tensors' shapes and dtypes. Inside Keras' train step it is one call
between the weights' reads and the writes of its outputs. Keras traces its step twice per fit (the
last short batch retraces it) and again for a fresh model of the same shape (the next fit in a
notebook), while this graph is traced once per shape and process. Its ops are few by design: an
op costs ~0.5-1 ms to build while tracing and a few microseconds every step, and tracing and
first running these were most of what the callback added to a 10 x 256 MLP's first fit
(measured). Each sum of squares is one `l2_loss` op, the square roots, ratios and NaN
placeholders are taken on stacked vectors, not per kernel, and the NaN batch's row sums only at
the first bad step (a tf.cond).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

from gradviz.training.tf_setup import tf

STEP_BUFFER = 512  # steps held in the graph between reads into the host's StepLog
FINGERPRINT_ROWS = 4096  # a NaN batch's rows remembered (by each row's sum and sum of squares)
FIXED = ("loss", "global_norm", "finite")  # a step row: these, then each kernel's norm, then each ratio
# The int64 status vector: steps taken, the first bad step (-1: none), the fingerprint's rows.
STATUS = ("taken", "first_bad", "fingerprint_rows")

_GRAPHS: OrderedDict = OrderedDict()  # signature -> traced record function; small, numbers-free
_GRAPHS_SIZE = 32
_LOCK = threading.Lock()


class Layout(NamedTuple):
    """A step's static structure: which gradient is each kernel's (-1: none), whether the optimizer
    was handed each kernel (its ratio is NaN otherwise), whether the loss is known (False where a
    custom train_step never called compute_loss: NaN is recorded), whether the inputs are kept."""

    kernel_slots: tuple[int, ...]
    moved: tuple[bool, ...]
    loss_known: bool
    fingerprinted: bool


class Record(NamedTuple):
    """What a step writes: `row` at `slot` of the ring of STEP_BUFFER rows, the new status, and the
    fingerprint (None where the inputs are not kept)."""

    slot: tf.Tensor  # [1, 1] int64
    row: tf.Tensor  # [1, 3 + 2 x kernels] float32
    status: tf.Tensor  # [3] int64, as STATUS
    fingerprint: tf.Tensor | None  # [FINGERPRINT_ROWS, 2] float32


def step_record(layout: Layout, loss, gradients: list, before: list, after: list, status, first_input=None,
                fingerprint=None) -> Record:
    """The step's record: its row [loss, global norm, finite, each kernel's gradient norm, each
    kernel's update/weight ratio], its slot in the ring, and the status and fingerprint after it.

    Args:
        layout: the step's static structure (see Layout).
        loss: the batch's loss (a scalar tensor; ignored where `layout.loss_known` is False).
        gradients: every variable's gradient that exists, dense (an embedding's IndexedSlices
            summed per row first: see dense_for_norm).
        before, after: the weights before and after the update of each kernel handed over.
        status: the status before this step, as STATUS.
        first_input, fingerprint: the batch's first input and the fingerprint kept so far (given
            where `layout.fingerprinted`): at the first bad step each row's sum and sum of squares
            replace it, the first FINGERPRINT_ROWS rows.
    Returns:
        A Record.
    """
    specs = (_specs(gradients), _specs(before))
    function = _record_function(layout, *specs, _spec(first_input, any_batch=True) if layout.fingerprinted else None)
    args = [tf.cast(loss, tf.float32), list(gradients), list(before), list(after), status]
    if layout.fingerprinted:
        args += [first_input, fingerprint]
    return Record(*function(*args), *([] if layout.fingerprinted else [None]))


def forget_record_graphs() -> None:
    """Drop every traced record function (the bench's first fits)."""
    with _LOCK:
        _GRAPHS.clear()


def dense_for_norm(gradient):
    """A gradient whose sum of squares is the norm's: an IndexedSlices' rows named twice added
    up first (they add in the update), never made dense."""
    if isinstance(gradient, tf.IndexedSlices):
        unique, position = tf.unique(gradient.indices)
        return tf.math.unsorted_segment_sum(gradient.values, position, tf.size(unique))
    return gradient


def _spec(tensor, any_batch: bool = False) -> tf.TensorSpec:
    """The tensor's spec; `any_batch`: any size along the first axis (the last batch is shorter)."""
    shape = [None, *tensor.shape[1:]] if any_batch and tensor.shape.rank else tensor.shape
    return tf.TensorSpec(shape, tensor.dtype)


def _specs(tensors: list) -> tuple:
    return tuple(_spec(t) for t in tensors)


def _record_function(layout: Layout, gradient_specs: tuple, kernel_specs: tuple, input_spec):
    inputs = (input_spec,) if input_spec else ()
    key = (layout, _described(gradient_specs), _described(kernel_specs), _described(inputs))
    with _LOCK:
        found = _GRAPHS.get(key)
        if found is not None:
            _GRAPHS.move_to_end(key)
            return found
    signature = [tf.TensorSpec([], tf.float32), list(gradient_specs), list(kernel_specs), list(kernel_specs),
                 tf.TensorSpec([len(STATUS)], tf.int64)]
    if layout.fingerprinted:
        signature += [input_spec, tf.TensorSpec([FINGERPRINT_ROWS, 2], tf.float32)]
    found = tf.function(lambda *args: _record(layout, *args), input_signature=signature, autograph=False)
    with _LOCK:
        _GRAPHS[key] = found
        while len(_GRAPHS) > _GRAPHS_SIZE:
            _GRAPHS.popitem(last=False)
    return found


def _described(specs: tuple) -> tuple:
    return tuple((None if s.shape.rank is None else tuple(s.shape.as_list()), s.dtype.name) for s in specs)


def _halves(tensors) -> tf.Tensor:
    """Each tensor's sum of squares / 2 (one l2_loss op each), stacked."""
    return tf.stack([tf.nn.l2_loss(tf.cast(t, tf.float32)) for t in tensors]) if tensors else tf.zeros([0])


def _placed(values: tf.Tensor, index: list[int]) -> tf.Tensor:
    """values[i] for each i of `index`, NaN where i is -1 (one gather from the values and a NaN)."""
    nan_at = values.shape[0]
    padded = tf.concat([values, tf.constant([float("nan")])], 0)
    return tf.gather(padded, tf.constant([nan_at if i < 0 else i for i in index], tf.int32))


def _record(layout: Layout, loss, gradients, before, after, status, first_input=None, fingerprint=None):
    squares = 2.0 * _halves(gradients)
    global_norm = tf.sqrt(tf.reduce_sum(squares))
    loss = loss if layout.loss_known else tf.constant(float("nan"))
    finite = tf.math.is_finite(global_norm) & (tf.math.is_finite(loss) if layout.loss_known else True)
    norms = _placed(tf.sqrt(squares), list(layout.kernel_slots))
    ratios = tf.sqrt(_halves([a - b for b, a in zip(before, after)]) / _halves(before))
    handed = iter(range(len(before)))
    ratios = _placed(ratios, [next(handed) if moved else -1 for moved in layout.moved])
    row = tf.concat([tf.stack([loss, global_norm, tf.cast(finite, tf.float32)]), norms, ratios], 0)

    taken, bad, kept_rows = tf.unstack(status)
    first_bad = tf.logical_not(finite) & (bad < 0)
    slot, bad = tf.reshape(taken % STEP_BUFFER, [1, 1]), tf.where(first_bad, taken, bad)
    if not layout.fingerprinted:
        return slot, row[None], tf.stack([taken + 1, bad, kept_rows])

    def kept_now():  # at the first bad step only: ~10 ops a step fewer than computing and discarding them
        first = tf.cast(first_input, tf.float32)
        rows = tf.reshape(first, [tf.shape(first)[0], -1])[:FINGERPRINT_ROWS]
        pairs = tf.stack([tf.reduce_sum(rows, 1), tf.reduce_sum(tf.square(rows), 1)], 1)
        return (tf.pad(pairs, [[0, FINGERPRINT_ROWS - tf.shape(pairs)[0]], [0, 0]]),
                tf.cast(tf.shape(pairs)[0], tf.int64))

    fingerprint, kept_rows = tf.cond(first_bad, kept_now, lambda: (fingerprint, kept_rows))
    return slot, row[None], tf.stack([taken + 1, bad, kept_rows]), fingerprint
