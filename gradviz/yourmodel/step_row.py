"""One watched step's row of numbers (loss, global norm, finite, each kernel's gradient norm and
update/weight ratio), computed by a graph traced once per model shape.

The rule: the row is a function of tensors only (the loss, every gradient, each kernel before and
after its update), so it lives in its own tf.function, keyed by those tensors' shapes and dtypes.
Called from inside Keras' train step it is one call in that graph: Keras traces its step twice
per fit, and a fresh model of the same shape (the next fit in a notebook) traces it again, while
this graph is traced once per shape and process. Written inline, its ~10 ops per kernel were most
of what the callback added to a fit's tracing (~0.4 s of a 10 x 256 MLP's ~5 s fit, measured).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from gradviz.training.tf_setup import tf

_GRAPHS: OrderedDict = OrderedDict()  # signature -> traced row function; small, numbers-free
_GRAPHS_SIZE = 32
_LOCK = threading.Lock()


def step_row(loss, gradients: list, kernel_slots: tuple[int, ...], moved: tuple[bool, ...], before: list,
             after: list, loss_known: bool) -> tf.Tensor:
    """The step's row: [loss, global norm, finite, each kernel's gradient norm, each kernel's ratio].

    Args:
        loss: the batch's loss (a scalar tensor; ignored where `loss_known` is False).
        gradients: every variable's gradient that exists, dense (an embedding's IndexedSlices
            summed per row first: see dense_for_norm).
        kernel_slots: for each kernel, the position of its gradient in `gradients` (-1: none).
        moved: for each kernel, whether the optimizer was handed it (its ratio is NaN otherwise).
        before, after: the weights before and after the update of each kernel handed over.
        loss_known: False where a custom train_step never computed the loss: NaN is recorded.
    Returns:
        A float32 vector of 3 + 2 x kernels.
    """
    function = _row_function(tuple(_spec(t) for t in gradients), kernel_slots, moved,
                             tuple(_spec(t) for t in before), loss_known)
    return function(tf.cast(loss, tf.float32), list(gradients), list(before), list(after))


def forget_row_graphs() -> None:
    """Drop every traced row function (the bench's first fits)."""
    with _LOCK:
        _GRAPHS.clear()


def dense_for_norm(gradient):
    """A gradient whose sum of squares is the norm's: an IndexedSlices' rows named twice added
    up first (they add in the update), never made dense."""
    if isinstance(gradient, tf.IndexedSlices):
        unique, position = tf.unique(gradient.indices)
        return tf.math.unsorted_segment_sum(gradient.values, position, tf.size(unique))
    return gradient


def _spec(tensor) -> tf.TensorSpec:
    return tf.TensorSpec(tensor.shape, tensor.dtype)


def _row_function(gradient_specs: tuple, kernel_slots: tuple, moved: tuple, kernel_specs: tuple, loss_known: bool):
    key = (_described(gradient_specs), kernel_slots, moved, _described(kernel_specs), loss_known)
    with _LOCK:
        found = _GRAPHS.get(key)
        if found is not None:
            _GRAPHS.move_to_end(key)
            return found
    signature = [tf.TensorSpec([], tf.float32), list(gradient_specs), list(kernel_specs), list(kernel_specs)]
    found = tf.function(lambda *args: _row(*args, kernel_slots=kernel_slots, moved=moved, loss_known=loss_known),
                        input_signature=signature, autograph=False)
    with _LOCK:
        _GRAPHS[key] = found
        while len(_GRAPHS) > _GRAPHS_SIZE:
            _GRAPHS.popitem(last=False)
    return found


def _described(specs: tuple) -> tuple:
    return tuple((None if s.shape.rank is None else tuple(s.shape.as_list()), s.dtype.name) for s in specs)


def _row(loss, gradients, before, after, kernel_slots, moved, loss_known):
    squares = [tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in gradients]
    global_norm = tf.sqrt(tf.add_n(squares)) if squares else tf.constant(0.0)
    loss = loss if loss_known else tf.constant(float("nan"))
    finite = tf.math.is_finite(global_norm) & (tf.math.is_finite(loss) if loss_known else True)
    nan = tf.constant(float("nan"))
    norms = [nan if slot < 0 else tf.sqrt(squares[slot]) for slot in kernel_slots]
    pairs, ratios = iter(zip(before, after)), []
    for handed in moved:
        b, a = next(pairs) if handed else (None, None)
        # squared_difference: one pass over both copies, where a - b, its square and its sum are three
        ratios.append(tf.cast(tf.sqrt(tf.reduce_sum(tf.math.squared_difference(a, b)) / tf.reduce_sum(tf.square(b))),
                              tf.float32) if handed else nan)
    return tf.stack([loss, global_norm, tf.cast(finite, tf.float32), *norms, *ratios])
