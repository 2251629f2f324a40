"""Traced graphs shared between runs: a reused trace gives the numbers a fresh one gives, reads
only the run's own variables, and is shared exactly when the graph's shape is the same."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from gradviz.config import RunConfig
from gradviz.serving.cost import traced_graph_bytes
from gradviz.serving.lru import BoundedLRU, CacheBudget
from gradviz.training import steps
from gradviz.training.models import build_model
from gradviz.training.steps import (
    CompiledSteps,
    clear_step_graphs,
    graph_key,
    step_graphs,
)
from gradviz.training.train import epoch_order, train

RECORDS = ("loss", "accuracy", "grad_norm", "update_ratio", "global_norm_pre", "global_norm_post", "time_grad",
           "train_loss", "val_loss", "val_accuracy", "weight_hist", "act_hist", "act_stats")
SHAPES = {
    "mlp-towers": RunConfig(depth=3, width=128, activation="tanh", batch_size=128, train_size=256, epochs=2),
    "mlp-bn-residual": RunConfig(depth=4, width=16, batch_norm=True, residual=True, optimizer="momentum",
                                 batch_size=32, train_size=256, epochs=2),
    "cnn": RunConfig(architecture="cnn", depth=2, width=8, batch_norm=True, residual=True, batch_size=32,
                     train_size=256, epochs=1),
    "gru": RunConfig(architecture="gru", width=8, step_pixels=28, batch_size=32, train_size=256, epochs=1),
}


def captures_no_variables(function) -> bool:
    """True when a traced graph reads no variable it was not handed: it can serve any run."""
    return all(t.dtype != tf.resource for t in function.captured_inputs)


def assert_same_records(a, b):
    """Equal to float32 rounding (bit-for-bit on this machine; a graph that read another run's
    weights or hyperparameters would be off in the first digits)."""
    for name in RECORDS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=0, err_msg=name)


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_reused_trace_gives_what_a_fresh_trace_gives(name, tiny_data):
    """The warm run's template is another run with other weights, learning rate and clip
    threshold: if the graph read anything of the template's, the numbers would differ."""
    config = SHAPES[name].replace(learning_rate=0.02, clipnorm=0.5, seed=3)
    clear_step_graphs()
    fresh = train(config, tiny_data)
    clear_step_graphs()
    train(config.replace(learning_rate=0.3, clipnorm=5.0, seed=9, initializer="he_normal"), tiny_data)
    warm = steps.GRAPHS.get(graph_key(config))  # traced by that other run
    compiled = CompiledSteps(build_model(config), config, tiny_data.x_train, tiny_data.y_train)
    assert compiled.graphs is warm
    reused = train(config, tiny_data)
    assert_same_records(fresh, reused)
    assert captures_no_variables(compiled.graphs.chunk_function(compiled.state))
    assert captures_no_variables(compiled.graphs.evaluate_function(compiled.state))


def test_batch_norm_moving_statistics_follow_keras(tiny_data):
    """Batch norm runs inside a stateless scope: its moving statistics must still be written back
    to the run's own variables, as Keras writes them in a training-mode call."""
    config = SHAPES["mlp-bn-residual"]
    ours, theirs, initial = build_model(config), build_model(config), build_model(config)
    order = epoch_order(len(tiny_data.y_train), 0, 0)
    CompiledSteps(ours, config, tiny_data.x_train, tiny_data.y_train).chunk(order, tf.constant(0), tf.constant(1))
    theirs(tiny_data.x_train[np.asarray(order)[:32]], training=True)
    assert ours.non_trainable_variables
    for a, b, start in zip(ours.non_trainable_variables, theirs.non_trainable_variables,
                           initial.non_trainable_variables):
        assert not np.allclose(b.numpy(), start.numpy())  # one step moved them
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_runs_on_two_threads_share_a_trace_and_keep_their_own_numbers(tiny_data, monkeypatch):
    """Two sessions training the same shape at once (the hosted demo): one trace serves both, and
    each gets its own numbers."""
    base = SHAPES["mlp-towers"]
    configs = [base.replace(seed=1), base.replace(seed=2, learning_rate=0.01)]
    clear_step_graphs()
    alone = [train(c, tiny_data) for c in configs]
    traced = steps.GRAPHS.get(graph_key(base))
    built = []
    monkeypatch.setattr(steps, "StepGraphs", lambda *args: built.append(args) or pytest.fail("traced again"))
    together = [None, None]

    def run(i):
        together[i] = train(configs[i], tiny_data)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together):
        assert_same_records(a, b)
    assert built == [] and steps.GRAPHS.get(graph_key(configs[1])) is traced  # both ran on the first trace


def test_graphs_are_shared_only_by_the_same_shape():
    base = RunConfig(depth=3, width=32, clipnorm=1.0)
    same = [base.replace(learning_rate=0.5), base.replace(seed=4, epochs=7, train_size=999),
            base.replace(initializer="zeros", init_std=0.3), base.replace(clipnorm=0.01)]
    other = [base.replace(depth=4), base.replace(width=33), base.replace(activation="tanh"),
             base.replace(batch_norm=True), base.replace(residual=True), base.replace(optimizer="sgd"),
             base.replace(clipnorm=None), base.replace(clipnorm=None, clipvalue=1.0), base.replace(batch_size=64),
             base.replace(architecture="cnn")]
    assert all(graph_key(c) == graph_key(base) for c in same)
    assert len({graph_key(c) for c in [base, *other]}) == len(other) + 1


def test_the_cache_keeps_the_most_recent_shapes_within_its_budget(monkeypatch):
    class Untraced:  # no tracing needed here: the cache only reads the config
        def __init__(self, model, config):
            self.config = config

    monkeypatch.setattr(steps, "StepGraphs", Untraced)
    configs = [RunConfig(depth=1, width=8 + i) for i in range(6)]
    each = traced_graph_bytes(configs[0])
    monkeypatch.setattr(steps, "GRAPHS", BoundedLRU("traced graphs", steps.GRAPHS.sizeof, budget=CacheBudget(4 * each)))
    first = [step_graphs(None, c) for c in configs]
    assert len({id(g) for g in first}) == len(configs)  # a new entry for each shape
    assert step_graphs(None, configs[-1]) is first[-1]
    assert step_graphs(None, configs[0]) is not first[0]  # the oldest were dropped
    assert len(steps.GRAPHS) == 4


def test_the_cache_lets_the_template_model_go_once_both_graphs_are_traced(tiny_data):
    """The cache keeps graphs, not a model: the run that traced them can be freed."""
    import gc
    import weakref

    config = SHAPES["mlp-bn-residual"]
    clear_step_graphs()
    model = build_model(config)
    template = weakref.ref(model)
    compiled = CompiledSteps(model, config, tiny_data.x_train, tiny_data.y_train)
    compiled.trace_evaluation()
    compiled.chunk(epoch_order(len(tiny_data.y_train), 0, 0), tf.constant(0), tf.constant(1))
    graphs = compiled.graphs
    del model, compiled
    gc.collect()
    assert template() is None
    assert step_graphs(build_model(config), config) is graphs
    assert_same_records(train(config, tiny_data), train(config, tiny_data))  # still serves runs


@pytest.mark.parametrize("keep", [0, 37, 130])
def test_evaluation_in_small_batches_gives_the_numbers_of_one_call(keep, tiny_data):
    """A wide model is evaluated in batches of a few dozen images (gradviz.serving.cost.eval_batch):
    the loss, the accuracy and the first `keep` images' activations are those of a single call."""
    config = SHAPES["mlp-bn-residual"]
    compiled = CompiledSteps(build_model(config), config, tiny_data.x_train, tiny_data.y_train)
    compiled.eval_batch = 1000
    whole = compiled.evaluate(tiny_data.x_val, tiny_data.y_val, keep=keep)
    compiled.eval_batch = 50  # 128 images: two full calls and a partial one
    parts = compiled.evaluate(tiny_data.x_val, tiny_data.y_val, keep=keep)
    np.testing.assert_allclose(parts[:2], whole[:2], rtol=1e-6)
    assert len(parts[2]) == len(whole[2]) == len(compiled.act_names)
    for a, b in zip(parts[2], whole[2]):
        assert a.shape[0] == min(keep, len(tiny_data.y_val))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
