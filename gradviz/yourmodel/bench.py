"""`python -m gradviz bench --watch`: model.fit with gradviz.watch against plain model.fit, end to end."""

from __future__ import annotations

import gc
import statistics
import time

import numpy as np

from gradviz.data import Dataset
from gradviz.training.bench import paired_share
from gradviz.training.tf_setup import keras
from gradviz.yourmodel.step_row import forget_row_graphs
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


def _fit_seconds(build, data: Dataset, watched: bool) -> float:
    """One fit from the same initial weights (seeded), tracing included, as a user's first fit of a
    model would be (the watch's row graph, otherwise kept per shape, is traced anew each time). The
    garbage earlier fits left (traced graphs hold reference cycles) is collected first: left in,
    its collection lands inside whichever fit comes next, and moved a fit's first step by ±0.3 s."""
    forget_row_graphs()
    gc.collect()
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callbacks = [watch(model, x=data.x_train)] if watched else []
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    return time.perf_counter() - started


def run_watch_bench(data: Dataset, repeats: int = 5) -> dict:
    """Per model: median seconds of `fit` with and without the callback (given `x`: activation
    statistics every epoch), alternated run by run, and the callback's share of a fit
    (gradviz.training.bench.paired_share)."""
    out = {"images": len(data.y_train), "batch_size": BATCH, "epochs": EPOCHS, "repeats": repeats, "models": {}}
    for name, build in MODELS.items():
        times: dict[bool, list[float]] = {False: [], True: []}
        _fit_seconds(build, data, False)  # the process's first fit of this shape pays Keras' own set-up
        for i in range(repeats):
            for watched in (False, True) if i % 2 else (True, False):
                times[watched].append(_fit_seconds(build, data, watched))
        plain, with_watch = statistics.median(times[False]), statistics.median(times[True])
        share, spread = paired_share(times[True], times[False])
        out["models"][name] = {"fit_seconds": round(plain, 3), "fit_with_watch_seconds": round(with_watch, 3),
                               "overhead": share, "overhead_range": spread,
                               "steps": int(np.ceil(len(data.y_train) / BATCH)) * EPOCHS}
    return out
