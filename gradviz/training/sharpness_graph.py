"""The traced sharpness graph (λ_max by Lanczos on Hessian-vector products), one per model shape.

The rule: λ depends on the model and its weights, never on how it is trained, so the graph is
keyed by the model alone (MODEL_NEUTRAL fields set to their defaults): the At-initialization
view, an SGD run, a momentum run, a clipped one and one at another batch size of the same
network all share one trace. Tracing it costs 0.4-0.8 s of single-threaded Python (a 6 x 128 to
a 10 x 256 MLP), a call 15-100 ms, so whichever of them meets a shape first traces it for the
others: the view, drawn before a run, leaves the run only the call. The graphs are kept in a
budget of their own, half of GRADVIZ_CACHE_MB: counted in the shared one, they crowded out
cached runs a page still needed (docs/hosting.md).
"""

from __future__ import annotations

import threading

from gradviz.config import RunConfig
from gradviz.serving.cost import parameter_count
from gradviz.serving.lru import BoundedLRU, CacheBudget
from gradviz.training import lanczos
from gradviz.training.models import model_inputs
from gradviz.training.steps import LABELS, PIXELS, SCALAR
from gradviz.training.tf_setup import keras, tf

# What does not change the network the loss is a function of: how it is trained, and where its
# weights start (they are an argument of the graph).
MODEL_NEUTRAL = ("optimizer", "learning_rate", "clipnorm", "global_clipnorm", "clipvalue", "batch_size", "epochs",
                 "train_size", "seed", "initializer", "init_std", "init_gain", "recurrent_initializer",
                 "recurrent_std")
MB = 1 << 20


def model_key(config: RunConfig) -> RunConfig:
    """The config with everything that does not change the network set to the defaults."""
    default = RunConfig()
    return config.replace(**{field: getattr(default, field) for field in MODEL_NEUTRAL})


def sharpness_graph_bytes(config: RunConfig) -> int:
    """What keeping one network's sharpness graph costs a process: +27 MB of RSS kept for a 6 x 128
    MLP (184 k parameters), +187 MB for a 20 x 256 one (1.45 M): ~4 MB + 126 bytes a parameter."""
    return int(4 * MB + 126 * parameter_count(config))


def kept(config: RunConfig) -> bool:
    """Whether `config`'s network's graph fits its budget (with the default 320 MB cache, up to
    ~1.2 M parameters: a 17 x 256 MLP); a larger one is traced for one run and dropped."""
    return sharpness_graph_bytes(config) <= SHARPNESS_GRAPHS.budget.budget_bytes


class SharpnessGraph:
    """λ_max of one model shape's loss at any weights, traced on first use from a template model of
    that shape (let go once traced: the cache holds the graph, not a model)."""

    def __init__(self, model: keras.Model, size_bytes: int):
        self._template, self._concrete, self._lock = model, None, threading.Lock()
        self.bytes = size_bytes

    @property
    def traced(self) -> bool:
        return self._concrete is not None

    @property
    def failed(self) -> bool:
        """Its trace raised: it has neither a graph nor a model to trace one from."""
        return self._concrete is None and self._template is None

    def __call__(self, x, y, seed: int, steps: int, trainable: list, non_trainable: list) -> float:
        """The top Ritz value after `steps` Lanczos steps at the weights given (tensors, in the
        order of the model's trainable and non-trainable variables)."""
        with self._lock:
            if self._concrete is None:
                template = [self._template]  # emptied once traced, so the cached graph does not keep the model
                try:
                    self._concrete = tf.function(lambda *args: _top_eigenvalue(template[0], *args),
                                                 autograph=False).get_concrete_function(
                        PIXELS, LABELS, SCALAR, SCALAR, [tf.TensorSpec(v.shape, v.dtype) for v in trainable],
                        [tf.TensorSpec(v.shape, v.dtype) for v in non_trainable])
                finally:  # a failed trace keeps no model either (sharpness_graph gives the next caller a new entry)
                    template.clear()
                    self._template = None
            concrete = self._concrete
        value, _ = concrete(tf.constant(x), tf.constant(y), tf.constant(seed, tf.int32), tf.constant(steps, tf.int32),
                            list(trainable), list(non_trainable))
        return float(value)


_PUT_LOCK = threading.Lock()


SHARPNESS_GRAPHS: BoundedLRU[SharpnessGraph] = BoundedLRU(
    "sharpness graphs", lambda graph: graph.bytes, budget=CacheBudget(share=0.5, label="for sharpness graphs"))


def sharpness_graph(model: keras.Model, config: RunConfig) -> SharpnessGraph:
    """The shared sharpness graph of `config`'s network; `model` (built from `config`) becomes its
    template when there is none yet. One larger than the budget is returned but not kept: a run
    holds on to the one it got (CompiledSteps), so it traces it at most once."""
    key = model_key(config)
    with _PUT_LOCK:  # two sessions meeting a new network at once trace one graph, not two
        found = SHARPNESS_GRAPHS.get(key)
        if found is None or found.failed:
            found = SHARPNESS_GRAPHS.put(key, SharpnessGraph(model, sharpness_graph_bytes(config)))
    return found


def sharpness_traced(config: RunConfig) -> bool:
    """Whether `config`'s network has its sharpness graph traced in this process."""
    found = SHARPNESS_GRAPHS.get(model_key(config))
    return found is not None and found.traced


def _top_eigenvalue(model, x, y, seed, steps, weights, moving):
    """The top eigenvalue of H, the Hessian of the batch-mean loss on (x, y) at `weights` (and
    batch norm's `moving` statistics): `steps` Lanczos steps (gradviz.training.lanczos) from a
    normal start drawn from `seed`, each a Hessian-vector product by double backpropagation.
    Returns the top Ritz values after the last step and the one before (their gap says how far it
    converged)."""
    inputs = model_inputs(model, x)
    start = [tf.random.stateless_normal(w.shape, seed=tf.stack([seed, i])) for i, w in enumerate(weights)]
    mapping = list(zip(model.trainable_variables, weights)) + list(zip(model.non_trainable_variables, moving))

    def product(vector):
        with tf.GradientTape() as outer:
            outer.watch(weights)
            with tf.GradientTape() as inner:
                inner.watch(weights)
                with keras.StatelessScope(state_mapping=mapping):
                    logits = model(inputs, training=True)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(inner.gradient(loss, weights), vector)])
        return outer.gradient(dot, weights)

    return lanczos.top_eigenvalue(product, start, steps)
