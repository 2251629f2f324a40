"""`python -m gradviz bench --watch`: model.fit with gradviz.watch against plain model.fit, end to end."""

from __future__ import annotations

import gc
import resource
import statistics
import time

import numpy as np

from gradviz.data import Dataset
from gradviz.training.bench import paired_share
from gradviz.training.tf_setup import keras
from gradviz.yourmodel.step_record import forget_record_graphs
from gradviz.yourmodel.watch import watch

BATCH, EPOCHS = 128, 3


def _mlp() -> keras.Model:
    layers = [keras.layers.Dense(256, activation="relu") for _ in range(10)]
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), *layers, keras.layers.Dense(10)])


def _cnn() -> keras.Model:
    conv = keras.layers.Conv2D
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Reshape((28, 28, 1)),
                             conv(16, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(),
                             conv(32, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(),
                             keras.layers.Flatten(), keras.layers.Dense(10)])


MODELS = {"10 x 256 MLP (ReLU, Adam)": _mlp, "small CNN (2 conv layers, Adam)": _cnn}


def _cpu_seconds() -> float:
    """This process's CPU time so far, every thread (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fit_seconds(build, data: Dataset, watched: bool) -> tuple[float, float]:
    """One fit's wall and CPU seconds from the same initial weights (seeded), tracing included, as a
    user's first fit of a model would be (the watch's record graph, otherwise kept per shape, is
    traced anew each time). The garbage earlier fits left (traced graphs hold reference cycles) is
    collected first: left in, its collection lands inside whichever fit comes next, and moved a
    fit's first step by ±0.3 s."""
    forget_record_graphs()
    gc.collect()
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    started, cpu = time.perf_counter(), _cpu_seconds()  # the callback's construction counts: part of the fit
    callbacks = [watch(model, x=data.x_train)] if watched else []
    model.fit(data.x_train, data.y_train, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    return time.perf_counter() - started, _cpu_seconds() - cpu


def run_watch_bench(data: Dataset, repeats: int = 5) -> dict:
    """Per model: median seconds of `fit` with and without the callback (given `x`: activation
    statistics every epoch), alternated run by run, and the callback's share of a fit
    (gradviz.training.bench.paired_share) in wall time and in the process's CPU time. The CPU
    share is the steadier one here: another tenant of this VM moves a fit's wall time by up to
    ±40 % from one fit to the next, its CPU time far less, and a fit keeps ~1-1.3 of the 2 cores
    busy, so the two agree on average."""
    out = {"images": len(data.y_train), "batch_size": BATCH, "epochs": EPOCHS, "repeats": repeats, "models": {}}
    for name, build in MODELS.items():
        times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        _fit_seconds(build, data, False)  # the process's first fit of this shape pays Keras' own set-up
        for i in range(repeats):
            for watched in (False, True) if i % 2 else (True, False):
                times[watched].append(_fit_seconds(build, data, watched))
        wall = {w: [t for t, _ in times[w]] for w in times}
        cpu = {w: [c for _, c in times[w]] for w in times}
        share, spread = paired_share(wall[True], wall[False])
        cpu_share, cpu_spread = paired_share(cpu[True], cpu[False])
        out["models"][name] = {"fit_seconds": round(statistics.median(wall[False]), 3),
                               "fit_with_watch_seconds": round(statistics.median(wall[True]), 3),
                               "overhead": share, "overhead_range": spread,
                               "cpu_seconds": round(statistics.median(cpu[False]), 3),
                               "cpu_with_watch_seconds": round(statistics.median(cpu[True]), 3),
                               "cpu_overhead": cpu_share, "cpu_overhead_range": cpu_spread,
                               "pairs": [[round(w / p - 1, 3), round(cw / cp - 1, 3)] for w, p, cw, cp  # wall, CPU
                                         in zip(wall[True], wall[False], cpu[True], cpu[False])],
                               "steps": int(np.ceil(len(data.y_train) / BATCH)) * EPOCHS}
    return out
