"""TensorFlow imported once per process, on a thread of its own: a page draws what needs no
TensorFlow first (controls, the theory's curves), then starts the 3-5 s import and waits for it."""

from __future__ import annotations

import threading

_loaded = threading.Event()
_started = threading.Lock()
_thread: threading.Thread | None = None


def start() -> None:
    """Begin importing TensorFlow and gradviz's TensorFlow modules, once per process."""
    global _thread
    with _started:
        if _thread is None:
            _thread = threading.Thread(target=_load, name="gradviz-warmup", daemon=True)
            _thread.start()


def _load() -> None:
    try:
        import gradviz.signal.probe  # noqa: F401 - TensorFlow, Keras, the models and the probe
        import gradviz.training.train  # noqa: F401 - the trainer and its traced steps
    finally:
        _loaded.set()  # a failed import is raised again, with its message, where it is used


def ready() -> bool:
    return _loaded.is_set()


def wait(timeout: float | None = None) -> bool:
    start()
    return _loaded.wait(timeout)
