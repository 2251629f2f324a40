"""gradviz.watch(model): a Keras 3 callback that records, inside model.fit's own compiled train step,
the gradients the optimizer applies, and stops cleanly at the first NaN or Inf.

The rule: for the length of `fit`, the model's `compute_loss` and its optimizer's `apply` are
wrapped (on the instances; the class is untouched and the wrappers are removed at the end). The
loss wrapper hands the batch's loss and inputs on; the apply wrapper, traced into the same train
step, computes each kernel's gradient norm, the global norm, and each kernel's update/weight ratio
||W_after - W_before|| / ||W_before|| from the very tensors Keras passes to `apply` (before the
optimizer's own clipping), and writes one row per step into a ring of STEP_BUFFER rows in a
variable (gradviz.yourmodel.step_record): no extra pass over the data, and a small read before a
quarter of the ring fills, at an epoch's end, when Keras' running loss stops being finite, and
every batch where Keras reports no loss (a custom train_step). At the
first step whose loss or gradients are not finite, training stops, and the model is put back to
its weights at the end of the last whole epoch (before training, for a NaN in the first), not the
NaN the bad step left (the optimizer's own state is not put back). Per epoch (and before the
first step): weight histograms, and, given inputs `x`, activation statistics on their first
SAMPLE_ROWS rows (fewer for wide conv maps: SAMPLE_VALUES).
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from gradviz.result import ACT_STATS, RunResult
from gradviz.training.snapshots import ACT_BINS, Snapshots
from gradviz.training.steplog import DEFAULT_CAPACITY, StepLog
from gradviz.training.tf_setup import keras, tf
from gradviz.yourmodel import layers as model_layers
from gradviz.yourmodel.step_record import FINGERPRINT_ROWS, FIXED, STEP_BUFFER, Layout, dense_for_norm, step_record

SAMPLE_ROWS = 256  # inputs the per-epoch activation statistics are computed on, at most ...
SAMPLE_VALUES = 200_000  # ... and fewer where a layer's outputs would exceed this many values (conv maps)


def watch(model: keras.Model, x=None, layers: list[str] | None = None) -> WatchCallback:
    """A callback for `model.fit(..., callbacks=[gradviz.watch(model)])` (Keras 3, TensorFlow).

    Args:
        model: a compiled Keras model: Sequential, functional or subclassed, any loss and optimizer.
        x: optional, the training inputs given to `fit` (an array, or a list of arrays): their
            first SAMPLE_ROWS rows give each epoch's activation statistics (Sequential and
            functional models), and a NaN batch's rows are found among them.
        layers: optional, the names of the layers whose activations to summarise (default: every
            hidden layer with a nonlinearity, at most 24).
    Returns:
        The callback; after `fit`, `callback.result` is a RunResult (`config` None, `meta`
        naming the model), for gradviz.show, gradviz.diagnose_model and `result.save`.
    Raises:
        ValueError: the model is not compiled, or `layers` names a layer it does not have.
    """
    return WatchCallback(model, x, layers)


class WatchCallback(keras.callbacks.Callback):
    """Records what `fit` applies, step by step; see the module's docstring for the rule."""

    # On the TensorFlow backend Keras calls the batch hooks in the training loop itself (its
    # IS_THREAD_SAFE is False), so a hook that reads the graph holds up the next step: reads are
    # made only when needed (on_train_batch_end). Were the hooks dispatched to a thread of their
    # own, the lock keeps them safe there.
    async_safe = True

    def __init__(self, model: keras.Model, x=None, layers: list[str] | None = None):
        super().__init__()
        if getattr(model, "optimizer", None) is None:
            raise ValueError("gradviz.watch needs a compiled model: call model.compile(...) first")
        self.watched, self.inputs, self.chosen = model, x, layers
        self.result: RunResult | None = None
        self.nan: dict | None = None
        self._stash: dict = {}
        self._installed: dict = {}
        self._lock = threading.Lock()  # Keras runs batch-end hooks on a pool of threads
        remove_leftovers(model)
        if layers is not None and model_layers.is_graph_model(model):
            model_layers.activation_layers(model, layers)  # an unknown name: ValueError now, not mid-fit

    # --- fit's hooks -------------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.watched
        self.status = tf.Variable([0, -1, 0], dtype=tf.int64, trainable=False)  # as step_record.STATUS
        self.fingerprint = tf.Variable(tf.zeros([FINGERPRINT_ROWS, 2]), trainable=False)
        self.read, self.epoch_starts, self.snapshots = 0, [], []
        self.hooks, self.hooks_at_read, self.next_read = 0, 0, 1  # batch hooks seen; the first reads the rate
        self.started, self.ready, self.initial = time.perf_counter(), False, None
        self.kept_weights = model.get_weights() if model.weights else None  # put back after a NaN
        self.acts = model_layers.activation_layers(model, self.chosen) if self.inputs is not None else []
        self.acts_model = model_layers.outputs_model(model, [a.name for a in self.acts]) if self.acts else None
        widest = max((int(np.prod(out.shape[1:])) for out in self.acts_model.outputs), default=1) if self.acts else 1
        self.sample_rows = int(np.clip(SAMPLE_VALUES // max(widest, 1), 16, SAMPLE_ROWS))
        # A model that builds itself in its first call (a subclassed one) has no variables yet: _setup
        # then runs while the step is traced, and the step-0 snapshot comes from the weights the
        # graph keeps at step 0.
        if model.trainable_variables:
            self._setup(model.trainable_variables)
            self._snapshot(epoch=0, logs=None)
        self._install()
        model.make_train_function(force=True)  # trace the step again, with the wrappers in it

    def _setup(self, variables) -> None:
        """The buffers sized by the model's kernels (eagerly, also when called while tracing)."""
        with tf.init_scope():
            self.kernels = model_layers.kernel_variables(variables)
            self.names = [model_layers.kernel_name(k, self.watched) for k in self.kernels]
            self.rows = tf.Variable(tf.zeros([STEP_BUFFER, len(FIXED) + 2 * len(self.kernels)]), trainable=False)
            self.log = StepLog(len(FIXED) + 2 * len(self.kernels), DEFAULT_CAPACITY)
            self.ready = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_starts.append(int(self.status.numpy()[0]))

    def on_train_batch_end(self, batch, logs=None):
        # Keras' running loss in `logs` turns NaN or Inf at a bad step (at once for the forward
        # pass, at the next step for a bad gradient that reaches the weights): the graph's status is
        # read then, every batch where `logs` has no loss, and otherwise when _check planned it.
        # A read every batch cost the loop ~0.3 ms a step.
        self.hooks += 1
        loss = (logs or {}).get("loss")
        if isinstance(loss, float) and math.isfinite(loss) and self.hooks < self.next_read:
            return
        self._check()

    def _check(self) -> None:
        """Drain the ring, stop at a first bad step, and plan the next read: before a quarter of the
        ring fills at the rate of graph steps per batch hook seen so far (above 1 where a custom
        train_step applies the optimizer twice, or with steps_per_execution above 1)."""
        with self._lock:
            taken, bad, _ = (int(v) for v in self.status.numpy())
            rate = max(1.0, (taken - self.read) / max(1, self.hooks - self.hooks_at_read))
            self._drain(taken)
            self.hooks_at_read = self.hooks
            self.next_read = self.hooks + max(1, int(STEP_BUFFER // 4 / rate))
            if bad >= 0 and self.nan is None:
                self.nan = self._locate(bad)
                self.watched.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self._check()  # also a bad gradient late in the epoch whose losses are still finite
        if not self.snapshots and self.initial is not None:
            self._snapshot(epoch=0, logs=None, weights=self.initial)
        self._snapshot(epoch=epoch + 1, logs=logs or {})
        if self.nan is None:
            self.kept_weights = self.watched.get_weights()

    def on_train_end(self, logs=None):
        with self._lock:
            self._drain(int(self.status.numpy()[0]))
        self._uninstall()
        if self.nan is not None and self.kept_weights is not None:  # not the NaN the bad step left
            self.watched.set_weights(self.kept_weights)
        self.watched.train_function = None  # the next fit traces a step without gradviz in it
        self.result = self._result()

    # --- the wrappers, traced into fit's train step ------------------------------------------------

    def _install(self) -> None:
        model = self.watched
        # Under mixed precision the LossScaleOptimizer hands its inner optimizer the unscaled
        # gradients, and only on steps it does not skip for overflow: those are the applied ones.
        optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        original_loss, original_apply = model.compute_loss, optimizer.apply
        kernel_index = {id(k): i for i, k in enumerate(self.kernels)} if self.ready else {}

        def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
            loss = original_loss(x, y, y_pred, sample_weight, **kwargs)
            self._stash.update(loss=loss, x=x)
            return loss

        def apply(grads, trainable_variables=None):
            variables = list(trainable_variables if trainable_variables is not None else optimizer._trainable_variables)
            return self._recorded_apply(original_apply, list(grads), variables, kernel_index)

        compute_loss.__wrapped__ = original_loss  # Keras reads the signature: does it take `training`?
        compute_loss.gradviz_wrapper = apply.gradviz_wrapper = True  # found and removed if fit never ends
        self._installed = {"model": (model, "compute_loss"), "optimizer": (optimizer, "apply")}
        model.compute_loss, optimizer.apply = compute_loss, apply

    def _uninstall(self) -> None:
        for owner, name in self._installed.values():
            if name in vars(owner):
                delattr(owner, name)
        self._installed = {}

    def _recorded_apply(self, original, grads, variables, kernel_index):
        if not self.ready:  # built in this very trace: its variables exist only now
            self._setup(variables)
            with tf.init_scope():
                self.initial = [tf.Variable(tf.zeros(k.shape, k.dtype), trainable=False) for k in self.kernels]
            kernel_index.update({id(k): i for i, k in enumerate(self.kernels)})
        stashed = self._stash.pop("loss", None)  # None: a custom train_step that never called compute_loss
        x = self._stash.pop("x", None)
        present = [(g, v) for g, v in zip(grads, variables) if g is not None]
        position = {id(v): i for i, (_, v) in enumerate(present)}
        handed = [None] * len(self.kernels)
        for v in variables:
            if id(v) in kernel_index:
                handed[kernel_index[id(v)]] = v
        # The kernels before the step, for the ratios: a read held across the update keeps them
        # (TensorFlow copies a variable's buffer on write while a read of it is alive). No tf.cond
        # here: one around the optimizer's update (to skip a bad step), or around copies of the
        # weights at a bad step, cost a 10 x 256 MLP's fit 0.3-1 s (measured).
        before = [tf.convert_to_tensor(v) for v in handed if v is not None]
        original(grads, variables)
        # tf.function orders reads and writes of one variable as written: these read the updated weights.
        after = [tf.convert_to_tensor(v) for v in handed if v is not None]
        layout = Layout(tuple(-1 if v is None else position.get(id(v), -1) for v in handed),
                        tuple(v is not None for v in handed), stashed is not None, x is not None)
        status = tf.convert_to_tensor(self.status)
        fingerprinting = (tf.nest.flatten(x)[0], tf.convert_to_tensor(self.fingerprint)) if x is not None else ()
        record = step_record(layout, tf.constant(np.nan) if stashed is None else stashed,
                             [dense_for_norm(g) for g, _ in present], before, after, status, *fingerprinting)
        writes = [self.rows.scatter_nd_update(record.slot, record.row)]
        if record.fingerprint is not None:
            writes.append(self.fingerprint.assign(record.fingerprint))
        if self.initial is not None:  # a model built in this step: its weights before step 0, kept once
            befores = iter(before)
            writes += [kept.assign(tf.where(status[0] == 0, next(befores), kept))
                       for kept, v in zip(self.initial, handed) if v is not None]
        with tf.control_dependencies(writes):  # a reader that sees the new count sees this step's row
            self.status.assign(record.status)

    # --- the host's side -----------------------------------------------------------------------------

    def _drain(self, taken: int) -> None:
        """Copy the steps taken since the last read from the ring into the StepLog."""
        if taken <= self.read or not self.ready:
            return
        ring = self.rows.numpy()
        steps = np.arange(max(self.read, taken - STEP_BUFFER), taken)
        self.log.append(int(steps[0]), ring[steps % STEP_BUFFER])
        self.read = taken

    def _snapshot(self, epoch: int, logs: dict | None, weights: list | None = None) -> None:
        """Histograms and statistics now (gradviz.training.snapshots, its edges fixed by the first);
        `weights`: the kernels to bin instead (the step-0 copy of a model built during the first
        step, whose activations before it are not known: NaN). Binned here: on a second thread,
        beside TensorFlow's on 2 cores, it cost a fit ~0.25 s more CPU time (measured)."""
        first = weights is not None
        weights = [np.asarray(k) for k in (weights or self.kernels)]
        if not self.snapshots:
            self.binning = Snapshots(weights, [a.activation for a in self.acts], [a.name for a in self.acts])
        summary = self.binning.summarise(weights, [] if first else self._activations())
        if first and self.acts:
            summary.update(act_hist=np.zeros((len(self.acts), ACT_BINS), np.int64),
                           act_stats=np.full((len(self.acts), len(ACT_STATS)), np.nan))
        logs = logs or {}
        self.snapshots.append({
            "epoch": float(epoch), "epoch_step": 0 if first else int(self.status.numpy()[0]),
            "train_loss": float(logs.get("loss", np.nan)), "train_accuracy": _accuracy(logs, ""),
            "val_loss": float(logs.get("val_loss", np.nan)), "val_accuracy": _accuracy(logs, "val_"), **summary})

    def _activations(self) -> list[np.ndarray]:
        if not self.acts:
            return []
        sample = tf.nest.map_structure(lambda a: np.asarray(a)[:self.sample_rows], self.inputs)
        outputs = self.acts_model(model_layers.as_model_inputs(self.watched, sample), training=False)
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]

    def _locate(self, bad: int) -> dict:
        """Where the first non-finite step came from: the step, the epoch and batch (1-based, as
        Keras counts them), forward (the loss overflowed) or backward (the loss was finite, a
        gradient was not), the layer where the evidence shows it, and, given `x`, the batch's rows."""
        steps, rows = self.log.arrays()
        row = rows[np.flatnonzero(steps == bad)[-1]] if (steps == bad).any() else None
        index = max(0, len(self.epoch_starts) - 1)
        batch = bad - (self.epoch_starts[index] if self.epoch_starts else 0) + 1
        where = {"step": bad, "epoch": index + 1, "batch": batch, "origin": None, "layer": None,
                 "rows": self._bad_rows(), "inputs_not_finite": False}
        if row is None:
            return where
        norms = row[len(FIXED):len(FIXED) + len(self.kernels)]
        if not np.isfinite(row[0]):
            where.update(origin="forward", **self._forward_cause(where["rows"]))
        elif not np.isfinite(norms).all() or not np.isfinite(row[1]):
            bad_kernels = np.flatnonzero(~np.isfinite(norms))
            where.update(origin="backward", layer=self.names[int(bad_kernels[-1])] if bad_kernels.size else None)
        return where

    def _bad_rows(self) -> list[int] | None:
        """The bad batch's row indices in `x`, matched by each row's sum and sum of squares (NaN
        matching NaN, Inf matching Inf); None where `x` was not given."""
        count = int(self.status.numpy()[2])
        if self.inputs is None or not count:
            return None
        kept = self.fingerprint.numpy()[:count].astype(np.float64)
        first = np.asarray(tf.nest.flatten(self.inputs)[0])
        found: set[int] = set()
        for start in range(0, len(first), 8192):  # in chunks: never a float64 copy of the whole of x
            chunk = first[start:start + 8192].reshape(min(8192, len(first) - start), -1).astype(np.float64)
            with np.errstate(all="ignore"):
                mine = np.stack([chunk.sum(1), np.square(chunk).sum(1)], 1)
                # float32 sums of a row of d values differ from float64 ones by ~1e-7 · d · its largest |value|
                slack = 1e-6 * chunk.shape[1] * np.sqrt(mine[:, 1:2]) + 1e-6 * np.abs(mine)
                for pair in kept:
                    same = (np.abs(mine - pair) <= slack) | (mine == pair) | (np.isnan(mine) & np.isnan(pair))
                    found.update((start + np.flatnonzero(np.all(same, axis=1))).tolist())
        return sorted(found)

    def _forward_cause(self, rows: list[int] | None) -> dict:
        """The bad batch's inputs not finite, or, while the weights are still finite, the first
        layer whose output on those rows is not (graph models). After the bad step's update the
        weights are NaN and would blame the first layer whatever happened: then no layer is named."""
        if not rows:
            return {}
        sample = tf.nest.map_structure(lambda a: np.asarray(a)[rows], self.inputs)
        if not all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in tf.nest.flatten(sample)):
            return {"inputs_not_finite": True}
        model = self.watched
        if not model_layers.is_graph_model(model) or not all(np.isfinite(w).all() for w in model.get_weights()):
            return {}
        hidden = [layer.name for layer in model.layers if layer.weights]
        outputs = model_layers.outputs_model(model, hidden)(model_layers.as_model_inputs(model, sample), training=True)
        for name, out in zip(hidden, outputs if isinstance(outputs, (list, tuple)) else [outputs]):
            if not np.isfinite(np.asarray(out)).all():
                return {"layer": name}
        return {}

    def _result(self) -> RunResult:
        steps, rows = self.log.arrays()
        n = len(self.kernels)
        taken = int(self.status.numpy()[0])
        bad = self.nan
        if bad:  # steps Keras ran after the bad one (the stop arrives a batch or two late): not shown
            keep = steps <= bad["step"]
            steps, rows, taken = steps[keep], rows[keep], bad["step"] + 1
        snaps = self.snapshots
        per_epoch = self.params.get("steps") or max(taken, 1)
        stack = (lambda key: np.array([s[key] for s in snaps]))  # noqa: E731
        return RunResult(
            config=None, data={"source": "your data"}, layers=self.names, act_layers=[a.name for a in self.acts],
            steps_per_epoch=int(per_epoch), total_steps=int(per_epoch * (self.params.get("epochs") or 1)),
            step=steps, loss=rows[:, 0], accuracy=np.full(len(steps), np.nan),
            grad_norm=rows[:, len(FIXED):len(FIXED) + n], update_ratio=rows[:, len(FIXED) + n:],
            global_norm_pre=rows[:, 1], global_norm_post=np.full(len(steps), np.nan),
            epoch=stack("epoch"), epoch_step=stack("epoch_step"), train_loss=stack("train_loss"),
            train_accuracy=stack("train_accuracy"), val_loss=stack("val_loss"), val_accuracy=stack("val_accuracy"),
            weight_edges=self.binning.weight_edges, weight_hist=np.stack([s["weight_hist"] for s in snaps]),
            pooled_edges=self.binning.pooled_edges, pooled_hist=stack("pooled_hist"),
            act_edges=self.binning.act_edges, act_hist=np.stack([s["act_hist"] for s in snaps]),
            act_stats=np.stack([s["act_stats"] for s in snaps]),
            step_stride=self.log.stride, steps_done=taken - (1 if bad else 0),
            diverged_at_step=bad["step"] if bad else None, first_bad_layer=bad["layer"] if bad else None,
            divergence_origin=bad["origin"] if bad else None, stopped=bad is not None,
            seconds=time.perf_counter() - self.started, time_grad=np.zeros((len(steps), 0)), meta=self._meta())

    def _meta(self) -> dict:
        model, optimizer = self.watched, self.watched.optimizer
        rate = getattr(optimizer, "learning_rate", None)
        try:
            rate = float(np.asarray(rate))
        except (TypeError, ValueError):
            rate = None  # a schedule: no single number
        return {"source": "gradviz.watch", "model": model.name, "model_class": type(model).__name__,
                "optimizer": type(getattr(optimizer, "inner_optimizer", optimizer)).__name__, "learning_rate": rate,
                "activations": {a.name: a.activation for a in self.acts}, "nan": self.nan,
                "graph_model": model_layers.is_graph_model(model), "keras": keras.__version__}


def _accuracy(logs: dict, prefix: str) -> float:
    """The epoch's accuracy where the model was compiled with an accuracy metric, else NaN."""
    for name in ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy"):
        if prefix + name in logs:
            return float(logs[prefix + name])
    return float("nan")


def remove_leftovers(model: keras.Model) -> None:
    """Take off wrappers a fit that never ended left on `model` (an exception or Ctrl+C skips
    on_train_end), and the train step traced with them, so the next fit starts clean."""
    found = False
    for owner, name in ((model, "compute_loss"), (model.optimizer, "apply"),
                        (getattr(model.optimizer, "inner_optimizer", None), "apply")):
        if owner is not None and getattr(vars(owner).get(name), "gradviz_wrapper", False):
            delattr(owner, name)
            found = True
    if found:
        model.train_function = None
