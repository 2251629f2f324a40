"""Side-by-side throughput: plain model.fit, the seed article's recipe, and gradviz's trainer."""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import platform
import statistics
import time

import numpy as np

from gradviz.config import RunConfig
from gradviz.data import Dataset
from gradviz.training.models import build_model, tracked_kernels
from gradviz.training.optim import keras_optimizer
from gradviz.training.steps import available_cores, clear_step_graphs
from gradviz.training.tf_setup import keras, tf
from gradviz.training.train import measures_sharpness, train

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _whole_batches(data: Dataset, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Every method sees the same examples in the same number of full batches."""
    n = len(data.y_train) // batch * batch
    return data.x_train[:n], data.y_train[:n]


class _EpochClock(keras.callbacks.Callback):
    """Notes the time each epoch of a `fit` ends."""

    def __init__(self, ends: list[float]):
        super().__init__()
        self.ends = ends

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


_last_compiled: dict[RunConfig, keras.Model] = {}  # the latest compiled Keras model, for the *_rerun methods


def compiled_model(config: RunConfig, rerun: bool = False) -> keras.Model:
    """A compiled Keras model for `config`, with fresh initial weights and optimizer state.

    A new model is always built (it is timed, as inside gradviz's train()). With `rerun`, its
    weights go into the model compiled by the previous method of this config, whose optimizer
    state is zeroed: Keras keeps that model's traced train step, as gradviz_rerun keeps its graphs.
    """
    model = build_model(config, tapped=False)
    previous = _last_compiled.get(config) if rerun else None
    if previous is None:
        model.compile(keras_optimizer(config), LOSS)
        _last_compiled.clear()  # one model kept: this bench's config
        _last_compiled[config] = model
        return model
    previous.set_weights(model.get_weights())
    for variable in previous.optimizer.variables:  # step count and slots to zero; the rate stays
        variable.assign(config.learning_rate if variable.name == "learning_rate"
                        else np.zeros(variable.shape, variable.dtype))
    return previous


def time_fit(config: RunConfig, data: Dataset, rerun: bool = False) -> dict:
    """Plain, uninstrumented Keras: compile + fit, nothing recorded."""
    x, y = _whole_batches(data, config.batch_size)
    epoch_ends: list[float] = []
    started = time.perf_counter()
    model = compiled_model(config, rerun)
    model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, shuffle=True, verbose=0,
              callbacks=[_EpochClock(epoch_ends)])
    return _rate(len(y) // config.batch_size, started, epoch_ends)


def time_seed_recipe(config: RunConfig, data: Dataset, rerun: bool = False) -> dict:
    """The seed article's way to get per-layer norms: fit one epoch at a time, then an eager
    GradientTape pass over the whole training set to measure each layer's gradient."""
    x, y = _whole_batches(data, config.batch_size)
    epoch_ends: list[float] = []
    started = time.perf_counter()
    model = compiled_model(config, rerun)
    kernels = [kernel for _, kernel in tracked_kernels(model)]
    norms = []
    for _ in range(config.epochs):
        model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=True, verbose=0)
        per_layer = np.zeros(len(kernels))
        for start in range(0, len(y), config.batch_size):
            with tf.GradientTape() as tape:
                loss = LOSS(y[start:start + config.batch_size],
                            model(x[start:start + config.batch_size], training=True))
            grads = tape.gradient(loss, kernels)
            per_layer += [float(tf.norm(g)) for g in grads]
        norms.append(per_layer / (len(y) // config.batch_size))
        epoch_ends.append(time.perf_counter())
    return _rate(len(y) // config.batch_size, started, epoch_ends)


def time_gradviz(config: RunConfig, data: Dataset) -> dict:
    """gradviz's trainer, recording everything it always records, on the first run of this
    model's shape in the process: tracing its step graphs is on the clock, as for fit."""
    clear_step_graphs()
    return time_gradviz_rerun(config, data)


def time_gradviz_rerun(config: RunConfig, data: Dataset) -> dict:
    """gradviz's trainer on a later run of the same shape (a new model, new weights): the graphs
    traced by an earlier run are reused, as in the app after the first run of an architecture."""
    x, y = _whole_batches(data, config.batch_size)
    trimmed = dataclasses.replace(data, x_train=x, y_train=y, requested_train_size=len(y))
    steps_per_epoch = len(y) // config.batch_size
    epoch_ends: list[float] = []

    def note_epoch_end(progress) -> None:  # called after each compiled chunk; the epoch's validation follows
        if progress.step % steps_per_epoch == 0:
            epoch_ends.append(time.perf_counter())

    started = time.perf_counter()
    result = train(config, trimmed, on_progress=note_epoch_end)
    return _rate(steps_per_epoch, started, epoch_ends, steps=result.steps_done)  # fewer if it diverged


def _rate(steps_per_epoch: int, started: float, epoch_ends: list[float], steps: int | None = None) -> dict:
    """End-to-end steps/s (from before the model is built until the method returns: what a user
    waits for) and steady-state steps/s (from the end of epoch 1 to the end of the last: building,
    tracing and other one-off costs, which all land in epoch 1, left out; None for one epoch).
    `steps` defaults to every epoch's."""
    seconds = time.perf_counter() - started
    steps = steps_per_epoch * len(epoch_ends) if steps is None else steps
    later = epoch_ends[-1] - epoch_ends[0] if len(epoch_ends) > 1 else 0.0
    steady = round(steps_per_epoch * (len(epoch_ends) - 1) / later, 1) if later > 0 else None
    return {"steps": int(steps), "seconds": round(seconds, 3), "steps_per_second": round(steps / seconds, 1),
            "steady_steps_per_second": steady}


# Each *_rerun runs right after its first run, whose compiled model or traced graphs it reuses.
METHODS = {"fit": time_fit, "fit_rerun": functools.partial(time_fit, rerun=True),
           "seed_recipe": time_seed_recipe, "seed_recipe_rerun": functools.partial(time_seed_recipe, rerun=True),
           "gradviz": time_gradviz, "gradviz_rerun": time_gradviz_rerun}


def run_bench(config: RunConfig, data: Dataset, repeats: int = 5) -> dict:
    """Time the three methods in this process on the same model and data, each paying its own
    tracing as a user would. A small warm-up first pays TensorFlow's one-off start-up costs; the
    methods then take turns `repeats` times and each reports its median, so that a burst of other
    load on the machine does not decide the ratio."""
    warm = config.replace(epochs=1, train_size=min(config.train_size, 4 * config.batch_size))
    warm_data = dataclasses.replace(data, x_train=data.x_train[:warm.train_size],
                                    y_train=data.y_train[:warm.train_size],
                                    x_val=data.x_val[:256], y_val=data.y_val[:256],
                                    requested_train_size=warm.train_size)
    for method in METHODS.values():
        method(warm, warm_data)
    runs = {name: [] for name in METHODS}
    for _ in range(repeats):
        for name, method in METHODS.items():
            gc.collect()  # the previous method's models are garbage: none is collected on another's clock
            runs[name].append(method(config, data))
    _last_compiled.clear()  # the reruns are done: no Keras model outlives the bench
    results = {name: _medians(rows) for name, rows in runs.items()}
    return {
        "config": config.to_dict(),
        "data": data.info(),
        "repeats": repeats,
        "machine": {"cpus": available_cores(), "platform": platform.platform(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "keras": keras.__version__},
        "methods": results,
        "all_seconds": {name: [r["seconds"] for r in rows] for name, rows in runs.items()},
        **_speedups(results, "gradviz", FIRST_RUNS, "steps_per_second", ""),
        **_speedups(results, "gradviz", FIRST_RUNS, "steady_steps_per_second", "steady_"),
        **_speedups(results, "gradviz_rerun", RERUNS, "steps_per_second", "rerun_"),
        **_speedups(results, "gradviz_rerun", RERUNS, "steady_steps_per_second", "rerun_steady_"),
    }


def _medians(rows: list[dict]) -> dict:
    """The median run by end-to-end time, with the median of the steady-state rates beside it
    (a run slow to trace is not always slow to step)."""
    median = dict(sorted(rows, key=lambda r: r["seconds"])[len(rows) // 2])
    steady = [r["steady_steps_per_second"] for r in rows if r["steady_steps_per_second"] is not None]
    median["steady_steps_per_second"] = round(statistics.median(steady), 1) if steady else None
    return median


FIRST_RUNS, RERUNS = ("fit", "seed_recipe"), ("fit_rerun", "seed_recipe_rerun")


def _speedups(results: dict, method: str, others: tuple[str, ...], rate: str, prefix: str) -> dict:
    """`method`'s `rate` over each of `others`' (None where a rate is missing)."""
    ours = results[method][rate]
    return {f"{prefix}speedup_vs_{name}": round(ours / results[name][rate], 2) if ours and results[name][rate] else None
            for name in others}




# --- the explorer's At-initialization view ---------------------------------------------------------

def preview_models() -> dict[str, RunConfig]:
    """What a learner can pick, from the default to the largest MLP, and the other architectures."""
    from gradviz.presets import PRESETS

    return {"mlp 6x128 (default)": RunConfig(), "mlp 10x256 sigmoid": PRESETS["seed-vanishing-sigmoid"].config,
            "mlp 50x1024": RunConfig(depth=50, width=1024),
            "cnn (seed-fixed-resnet)": PRESETS["seed-fixed-resnet"].config,
            "gru, 112 steps": PRESETS["rnn-gru"].config,
            "lstm, 28 steps": PRESETS["rnn-lstm"].config.replace(step_pixels=28)}


def time_preview(config: RunConfig, x: np.ndarray, y: np.ndarray, repeats: int) -> dict:
    """What the server does when a control changes to a model it has not seen: measure the new
    model at initialization (a new seed each time, so nothing is drawn before) and build the
    view's two charts down to their Vega-Lite JSON. Milliseconds, median over `repeats`."""
    return _time_probes([config.replace(seed=10_000 + i) for i in range(repeats)], x, y)


def time_redraw(config: RunConfig, x: np.ndarray, y: np.ndarray, repeats: int) -> dict:
    """A control change on a network already drawn: the activation flips back and forth on one
    seed, so the initial weights are re-used (gradviz.training.init_draws) and only the probe runs again."""
    from gradviz.training.init_draws import DRAWS

    DRAWS.clear()
    first = _time_probes([config], x, y)["median_ms"]
    flips = [config.replace(activation=("tanh", "relu")[i % 2]) for i in range(repeats)]
    return dict(_time_probes(flips, x, y), first_draw_ms=first, draws_reused=DRAWS.hits)


def _time_probes(configs: list[RunConfig], x: np.ndarray, y: np.ndarray) -> dict:
    """Probe each config and build its charts: milliseconds, median over the configs."""
    from gradviz.signal.charts import signal_charts
    from gradviz.signal.probe import measure

    second_moment = float(np.mean(np.square(x, dtype=np.float64)))
    probe_ms, total_ms = [], []
    for config in configs:
        started = time.perf_counter()
        probe = measure(config, x, y)
        probed = time.perf_counter()
        for data, spec in signal_charts(probe.config, probe, second_moment):
            json.dumps(spec), data.to_json()  # what a page is sent (Streamlit sends the data as Arrow)
        probe_ms.append(1000 * (probed - started))
        total_ms.append(1000 * (time.perf_counter() - started))
    return {"median_ms": round(statistics.median(total_ms), 1), "probe_ms": round(statistics.median(probe_ms), 1),
            "min_ms": round(min(total_ms), 1), "max_ms": round(max(total_ms), 1), "repeats": len(configs)}


def run_preview_bench(x: np.ndarray, y: np.ndarray, repeats: int = 5) -> dict:
    """Every preview model, after one warm-up probe (TensorFlow loaded, as on a running server)."""
    from gradviz.signal.probe import measure

    measure(RunConfig(depth=2, width=16), x, y)
    return {"preview": {name: time_preview(config, x, y, repeats) for name, config in preview_models().items()},
            "redraw": {"mlp 50x1024": time_redraw(RunConfig(depth=50, width=1024), x, y, repeats)},
            "probe_images": int(len(y)),
            "machine": {"cpus": available_cores(), "platform": platform.platform(), "tensorflow": tf.__version__}}


# --- sweeps ---------------------------------------------------------------------------------------

def run_sweep_bench(x: np.ndarray, y: np.ndarray, data: Dataset) -> dict:
    """Seconds for: the 12 x 10 order-to-chaos phase diagram at initialization (first call, which
    traces, and again with another seed) against the same 120 probes one by one; and a 10-point
    trained sweep whose points share one model shape (learning rates) or not (depths), run as a
    sweep (traced step graphs reused where the shape repeats) against one by one with fresh traces."""
    from gradviz.signal.probe import measure
    from gradviz.sweeps.grid import (
        X_FIELDS,
        SweepSpec,
        parse_axis,
        run_init,
        run_trained,
    )
    from gradviz.sweeps.named import SWEEP_PRESETS

    measure(RunConfig(depth=2, width=16), x, y)  # TensorFlow warmed, as on a running server
    phase = SWEEP_PRESETS["order-to-chaos"].spec
    out = {"phase_diagram_points": len(phase.points())}
    out["phase_diagram_seconds"] = _seconds(lambda: run_init(phase, x, y))
    out["phase_diagram_again_seconds"] = _seconds(lambda: run_init(_reseeded(phase), x, y))
    out["phase_diagram_one_by_one_seconds"] = _seconds(
        lambda: [measure(c.replace(seed=9), x, y) for *_, c in phase.points()])
    base = RunConfig(depth=4, width=128, train_size=2000, epochs=1)
    for name, axis in (("learning_rate", "learning_rate=0.0001:0.01:10:log"), ("depth", "depth=1:10:10")):
        spec = SweepSpec(base, parse_axis(axis, X_FIELDS, "x"), train=True)
        sized = dataclasses.replace(data, x_train=data.x_train[:2000], y_train=data.y_train[:2000],
                                    requested_train_size=2000)
        clear_step_graphs()
        out[f"trained_{name}_sweep_seconds"] = _seconds(lambda: run_trained(spec, lambda c: train(c, sized)))

        def fresh(c):
            clear_step_graphs()
            return train(c, sized)
        out[f"trained_{name}_one_by_one_fresh_traces_seconds"] = _seconds(lambda: run_trained(spec, fresh))
    return out


def _reseeded(spec):
    return dataclasses.replace(spec, base=spec.base.replace(seed=spec.base.seed + 1))


def _seconds(work) -> float:
    return round(_exact_seconds(work), 2)


def _exact_seconds(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


_MEASURES = measures_sharpness


SHARPNESS_KINDS = ("first_run", "first_run_after_view", "rerun", "rerun_after_view")


def sharpness_share(data: Dataset, first_runs: int = 5, reruns: int = 9) -> dict:
    """The sharpness' share of a default SGD MLP's run: the same runs with the measurement on and
    off, alternated (on a busy 2-core machine a run's time drifts by ±15 % over a minute, which
    three runs of one kind after three of the other mistook for the measurement's cost), garbage
    collected before each, each from a fresh starting point. Four kinds, medians: a network's first
    run with every graph traced anew (a CLI run, a cluster worker) and its first run after the
    At-initialization view showed it (the Explorer's order: the view traces the network's sharpness
    graph and measures λ at the start, which the run then takes); reruns (graphs traced) without and
    after the view."""
    from gradviz.signal.sharpness import sharpness_for_view
    from gradviz.training import train as training

    sgd, times = RunConfig(optimizer="sgd", learning_rate=0.05), {}
    train(sgd, data)
    try:
        for k, kind in enumerate(SHARPNESS_KINDS):
            for i in range(first_runs if kind.startswith("first") else reruns):
                for measured in (False, True) if i % 2 else (True, False):
                    training.measures_sharpness = _MEASURES if measured else (lambda c: False)
                    config = sgd.replace(seed=100 * k + 2 * i + measured + 1)  # a fresh start: no view cached
                    if kind.startswith("first"):
                        clear_step_graphs()
                    if kind.endswith("after_view"):
                        sharpness_for_view(config, data.x_val[:64], data.y_val[:64])
                    gc.collect()
                    seconds = train(config, data).seconds
                    times.setdefault(f"{kind}_seconds_{'with' if measured else 'without'}", []).append(seconds)
    finally:
        training.measures_sharpness = _MEASURES
    row = {name: round(statistics.median(values), 3) for name, values in times.items()}
    for kind in SHARPNESS_KINDS:
        share, spread = paired_share(times[f"{kind}_seconds_with"], times[f"{kind}_seconds_without"])
        row[f"share_of_a_{kind}"], row[f"share_of_a_{kind}_range"] = share, spread
    return row


def paired_share(with_: list[float], without: list[float]) -> tuple[float, list[float]]:
    """What the extra work adds to a run: the median over back-to-back pairs of with/without - 1,
    and the pairs' range (on this 2-core VM a run's time drifts by ±15-25 % from one to the next,
    so a pair is the fair comparison)."""
    pairs = [a / b - 1 for a, b in zip(with_, without)]
    return round(statistics.median(pairs), 3), [round(min(pairs), 3), round(max(pairs), 3)]


def view_sharpness_ms(data: Dataset) -> dict:
    """The At-initialization view's λ line (gradviz.signal.sharpness.sharpness_for_view): the default
    MLP after the server's warm-up traced its graph (a first visit), another seed of it, a network
    seen for the first time (its sharpness graph traced there) and another seed of that one. Fresh
    starting points, so nothing is cached."""
    from gradviz.signal import sharpness

    x, y = data.x_val[:64], data.y_val[:64]
    clear_step_graphs()
    sharpness.forget_view_sharpness()
    sharpness.warm_view_sharpness(x, y)
    cases = {"default MLP (warmed)": RunConfig(seed=101), "default MLP, another seed": RunConfig(seed=102),
             "10 x 256 sigmoid, first visit": RunConfig(depth=10, width=256, activation="sigmoid", seed=103),
             "10 x 256 sigmoid, another seed": RunConfig(depth=10, width=256, activation="sigmoid", seed=104)}
    return {name: round(1000 * _exact_seconds(lambda c=config: sharpness.sharpness_for_view(c, x, y)))
            for name, config in cases.items()}

# Failing configs at the app's default size, each with the change a learner would meet first.
FIX_SEARCH_CASES = {
    "adam lr 10": RunConfig(learning_rate=10.0),
    "sgd sigmoid lr 10": RunConfig(optimizer="sgd", learning_rate=10.0, activation="sigmoid"),
    "deep sigmoid": RunConfig(depth=10, width=256, activation="sigmoid", initializer="glorot_uniform"),
}


def run_fix_search_bench(data: Dataset) -> dict:
    """Per failing default-size MLP: seconds to the first row of the fix search and to its end
    (each trial a fresh training; the step graphs already traced by the failing run, as on a page),
    the rows tried and the verified fix. Then the sharpness' cost inside a run: a default MLP's
    first run (traces), its first run after the view, and reruns, SGD with λ measured (at step 0
    and at the end) against the same runs with the measurement switched off (sharpness_share)."""
    from gradviz.diagnosis.diagnose import diagnose
    from gradviz.diagnosis.fix_search import plan_search, run_search

    out: dict = {"fix_search": {}}
    for name, config in FIX_SEARCH_CASES.items():
        clear_step_graphs()
        result = train(config, data)
        search = plan_search(result, diagnose(result), result.sharpness_at_init())
        if search is None:  # nothing to fix here (a later version's diagnosis may see it so)
            out["fix_search"][name] = {"run_seconds": round(result.seconds, 2), "rows": 0, "verified_fix": None}
            continue
        started, first = time.perf_counter(), None
        for _ in run_search(search, lambda c: train(c, data)):
            first = first or round(time.perf_counter() - started, 2)
        out["fix_search"][name] = {"run_seconds": round(result.seconds, 2), "first_row_seconds": first,
                                   "search_seconds": round(time.perf_counter() - started, 2),
                                   "rows": len(search.trials), "verified_fix": search.verified_fix}
    out["sharpness_in_training"] = sharpness_share(data)
    out["sharpness_in_view_ms"] = view_sharpness_ms(data)
    return out
