"""TensorFlow imported once per process, on a thread of its own: a page draws what needs no
TensorFlow first (controls, the theory's curves), then starts the 3-5 s import and waits for it.
Once it is loaded, the same thread traces the default MLP's sharpness graph (the λ line)."""

from __future__ import annotations

import logging
import threading

_loaded = threading.Event()
_started = threading.Lock()
_thread: threading.Thread | None = None
LOG = logging.getLogger("gradviz")


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
    _warm_sharpness()


def _warm_sharpness() -> None:
    """The default view's λ line then costs one graph call (~20-40 ms), not the graph's trace (~0.4 s)."""
    try:
        from gradviz.data import PROBE_IMAGES, probe_batch
        from gradviz.signal.sharpness import warm_view_sharpness

        warm_view_sharpness(*probe_batch(PROBE_IMAGES)[:2])
    except Exception:  # noqa: BLE001 - a head start only: without it the first view traces it
        LOG.warning("the sharpness graph was not traced ahead", exc_info=True)


def ready() -> bool:
    return _loaded.is_set()


def wait(timeout: float | None = None) -> bool:
    start()
    return _loaded.wait(timeout)
