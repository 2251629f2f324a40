"""gradviz: see vanishing and exploding gradients happen, and get fixed, on real MNIST.

The public API for notebooks and scripts (the app is `streamlit run app.py`, the command line
`python -m gradviz`)::

    import gradviz
    config = gradviz.RunConfig(depth=10, width=256, activation="sigmoid", initializer="glorot_uniform")
    print(gradviz.probe(config).law)                      # at initialization, beside the theory
    result = gradviz.train(config, gradviz.load_dataset(config.train_size))
    for finding in gradviz.diagnose(result):
        print(finding.kind, finding.message, finding.fix)
    result.save("run"); again = gradviz.RunResult.load("run")

Your own Keras model (docs/your-model.md)::

    print(gradviz.probe_model(model, x[:256], y[:256]).theory)   # at initialization
    callback = gradviz.watch(model, x=x)
    model.fit(x, y, epochs=3, callbacks=[callback])
    gradviz.show(callback.result)                                # in a notebook
    callback.result.save("mine.gradviz"); gradviz.load("mine.gradviz")

Names are imported on first use, so `import gradviz` loads no TensorFlow (only `train` and
`probe` do).
"""

import importlib
import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lines) hides our own output;
# keep warnings and errors. setdefault: a user who set the variable keeps their choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_WHERE = {
    "RunConfig": "gradviz.config", "ConfigError": "gradviz.config",
    "load_dataset": "gradviz.data", "Dataset": "gradviz.data",
    "train": "gradviz.training.train",
    "probe": "gradviz.signal.probe", "SignalProbe": "gradviz.signal.probe",
    "diagnose": "gradviz.diagnosis.diagnose", "Finding": "gradviz.diagnosis.evidence",
    "RunResult": "gradviz.result",
    "PRESETS": "gradviz.presets", "get_preset": "gradviz.presets",
    "keras_snippet": "gradviz.snippet",
    "estimate_memory": "gradviz.serving.limits", "MemoryLimit": "gradviz.serving.limits",
    # your own Keras model
    "watch": "gradviz.yourmodel.watch", "probe_model": "gradviz.yourmodel.probe_model",
    "diagnose_model": "gradviz.yourmodel.findings", "show": "gradviz.yourmodel.notebook",
    "load": "gradviz.yourmodel.runfile", "RunFileError": "gradviz.yourmodel.runfile",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'gradviz' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
