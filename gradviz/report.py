"""RunResult + findings -> the JSON summary that `python -m gradviz run --json` prints."""

from __future__ import annotations

from gradviz.diagnosis.diagnose import Finding
from gradviz.presets import Preset, verdict
from gradviz.result import RunResult, finite_or_none


def summary(result: RunResult, findings: list[Finding], preset: Preset | None = None) -> dict:
    """The CLI contract's JSON object (DESIGN.md), plus `preset` with a computed verdict."""
    data = {k: result.data[k] for k in ("source", "split", "train_size", "val_size")}
    out = {
        "config": result.config.to_dict(),
        "data": data,
        "final": result.final(),
        "diverged_at_step": result.diverged_at_step,
        "first_bad_layer": result.first_bad_layer,
        "grad_norm_ratio_first_last": finite_or_none(result.grad_norm_ratio_first_last()),
        "diagnosis": [_clean(f.to_dict()) for f in findings],
        "timing": result.timing(),
    }
    if result.config.time_steps:
        out["time_profile"] = {
            "time_steps": result.config.time_steps,
            "first_last_ratio": finite_or_none(result.time_ratio_first_last()),
            "median_grad_norm_epoch1": [finite_or_none(float(v)) for v in result.time_profile()],
        }
    if preset is not None:
        outcome, why = verdict(preset, findings)
        out["preset"] = {"name": preset.name, "claim": preset.claim, "expect": preset.expect,
                         "verdict": outcome, "why": why}
    return out


def _clean(value):
    """Make a finding JSON-safe: numpy scalars to floats, NaN/Inf to null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    try:
        return finite_or_none(float(value))
    except (TypeError, ValueError):
        return str(value)
