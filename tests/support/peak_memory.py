"""The measured peak memory of one training or probe, in a fresh process: what the cost model
(gradviz.serving.cost) is checked against.

    python tests/support/peak_memory.py training "depth=20; width=1024; batch_size=512"

prints one JSON object: the RSS with TensorFlow, gradviz and the MNIST files loaded (the
baseline), and the peak RSS above it while the work ran (Linux: VmHWM, reset at the baseline by
writing 5 to /proc/self/clear_refs). A training stops after its first chunk of steps: its peak
(weights, optimizer slots, one step's activations, one evaluation) is reached by then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(what: str, changes: str) -> dict:
    """Run `what` ("training" or "probe") for the config `changes` ('field=value; ...') here."""
    sys.path.insert(0, str(ROOT))
    os.environ["GRADVIZ_MAX_MEMORY_MB"] = str(10**9)  # measured, not refused: the cap is what is checked
    import gradviz.signal.probe
    import gradviz.training.train
    from gradviz.config import RunConfig
    from gradviz.data import available_train_images, load_dataset, load_files
    from gradviz.sweeps.compare import parse_changes

    load_files()
    config = RunConfig.from_strings(parse_changes(changes))
    Path("/proc/self/clear_refs").write_text("5")  # the peak so far becomes the RSS now
    baseline, started = status_mb("VmRSS"), time.perf_counter()
    images, steps = available_train_images(), 0
    if what == "training":
        chunks = []
        result = gradviz.training.train.train(config, load_dataset(config.train_size), on_progress=chunks.append,
                                              should_stop=lambda: bool(chunks))
        steps = result.steps_done
    else:
        gradviz.signal.probe.probe(config)
    return {"what": what, "config": changes, "baseline_mb": round(baseline), "images": images, "steps": steps,
            "peak_mb": round(status_mb("VmHWM") - baseline, 1), "seconds": round(time.perf_counter() - started, 2)}


def measure_in_subprocess(what: str, changes: str, env: dict | None = None, timeout: float = 600) -> dict:
    """measure() in a fresh interpreter, so nothing an earlier measurement left counts."""
    done = subprocess.run([sys.executable, __file__, what, changes], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {what} of {changes!r} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2])))
