"""What the command line prints: a run's JSON summary (`run --json`), and the reports of run,
probe, sweep and bench --preview as a person reads them."""

from __future__ import annotations

from gradviz.config import RunConfig
from gradviz.diagnosis.diagnose import Finding
from gradviz.presets import Preset, verdict
from gradviz.result import RunResult, finite_or_none


def summary(result: RunResult, findings: list[Finding], preset: Preset | None = None) -> dict:
    """The `run --json` object (the contract: docs/cli.md), plus `preset` with a computed verdict."""
    data = {k: result.data[k] for k in ("source", "split", "train_size", "val_size")}
    out = {
        "config": result.config.to_dict(),
        "data": data,
        "final": result.final(),
        "diverged_at_step": result.diverged_at_step,
        "first_bad_layer": result.first_bad_layer,
        "grad_norm_ratio_first_last": finite_or_none(result.grad_norm_ratio_first_last()),
        "diagnosis": [_clean(f.to_dict()) for f in findings],
        "sharpness": [{"step": int(step), "lambda_max": finite_or_none(float(lam))} for step, lam in result.sharpness],
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


def format_report(report: dict, config: RunConfig) -> str:
    """The human-readable version of the JSON summary."""
    final, timing = report["final"], report["timing"]
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
    changed = " ".join(f"{k}={v}" for k, v in config.to_strings(only_changed=True).items())
    lines = [
        f"config: {changed or 'defaults'}",
        f"data:   {report['data']['split']} split, {report['data']['train_size']} train / "
        f"{report['data']['val_size']} val, from {report['data']['source']}",
        f"trained {timing['steps']} steps in {timing['seconds']} s ({timing['steps_per_second']} steps/s)",
        f"final:  train loss {fmt(final['train_loss'], '.4g')}, val loss {fmt(final['val_loss'], '.4g')}, "
        f"val accuracy {fmt(final['val_accuracy'], '.1%')}",
        f"gradient norm ratio first/last layer (epoch 1 median): {fmt(report['grad_norm_ratio_first_last'], '.2e')}",
    ]
    if "time_profile" in report:
        t = report["time_profile"]
        lines.append(f"through time: gradient at step 1 / step {t['time_steps']} (epoch 1 median): "
                     f"{fmt(t['first_last_ratio'], '.2e')}")
    if report["diverged_at_step"] is not None:
        lines.append(f"diverged at step {report['diverged_at_step']}, first bad layer {report['first_bad_layer']}")
    for finding in report["diagnosis"]:
        lines.append(f"[{finding['severity']}] {finding['kind']}: {finding['message']}")
        if finding["fix"]:
            lines.append("    fix: " + " ".join(f"--set {k}={v}" for k, v in finding["fix"].items()))
    if report.get("sharpness"):
        lines.append("sharpness λ_max: " + ", ".join(f"step {s['step']}: {fmt(s['lambda_max'], '.3g')}"
                                                      for s in report["sharpness"]))
    if "fix_search" in report:
        lines.extend(_fix_search_lines(report))
    if "preset" in report:
        p = report["preset"]
        lines.append(f"claim ({p['name']}): {p['claim']}\nverdict on this data: {p['verdict']}")
    return "\n".join(lines)


def _fix_search_lines(report: dict) -> list[str]:
    if not report["fix_search"]:
        return ["fix search: nothing to fix"]
    lines = ["fix search (each change trained on this config):"]
    for row in report["fix_search"]:
        change = " ".join(f"{k}={v}" for k, v in row["change"].items())
        accuracy = "n/a" if row["val_accuracy"] is None else f"{row['val_accuracy']:.1%}"
        outcome = "learned" if row["learned"] else "did not learn"
        lines.append(f"    {change:40s} val {accuracy:>6s}  {outcome}  ({', '.join(row['kinds']) or 'no problem'})")
    fix = report["verified_fix"]
    lines.append("verified fix: " + (" ".join(f"--set {k}={v}" for k, v in fix.items()) if fix
                                     else "none - no single change tried made it learn"))
    return lines


def format_probe(report: dict) -> str:
    """The probe as a table a learner can read: measured per layer, and the theory's line."""
    predicted = report["predicted"]
    relative = predicted["grad_norm_relative"] if predicted else [None] * len(report["layers"])
    per_example = report["grad_norm_per_example"] or [None] * len(report["layers"])
    fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    lines = [f"{'layer':<18} {'preact rms':>10} {'forward rms':>11} {'grad norm':>10} {'per example':>11} "
             f"{'predicted (rel.)':>16}"]
    for i, name in enumerate(report["layers"]):
        lines.append(f"{name:<18} {fmt(report['preact_rms'][i]):>10} {fmt(report['forward_rms'][i]):>11} "
                     f"{fmt(report['grad_norm'][i]):>10} {fmt(per_example[i]):>11} {fmt(relative[i]):>16}")
    ratio = fmt(report["ratio_first_last"])
    lines.append(f"first/last gradient ratio: measured {ratio}"
                 + (f", predicted {fmt(predicted['ratio_first_last'])} (per example: measured "
                    f"{fmt(report['ratio_first_last_per_example'])})" if predicted else ""))
    lines.append(report["law"])
    if report.get("sharpness"):
        lines.append(sharpness_line(report["sharpness"]))
    lines.append(f"measured on {report['data'].get('probe_size')} {report['data'].get('split')} images in "
                 f"{report['seconds'] * 1000:.0f} ms")
    return "\n".join(lines)


def sharpness_line(sharpness: dict) -> str:
    """λ and the step it allows, as a learner reads it."""
    lam, optimizer = sharpness["lambda_max"], sharpness["optimizer"]
    if lam is None or lam <= 0:
        return "sharpness: the loss's top curvature at initialization is not positive here; no step bound follows"
    line = f"sharpness at initialization: λ = {lam:.3g}, so plain SGD is stable for steps below 2/λ = {2 / lam:.3g}"
    if sharpness["stable_lr"] is not None and optimizer != "sgd":
        line += f"; with {optimizer} below {sharpness['stable_lr']:.3g}"
    elif sharpness["stable_lr"] is None:
        line += f" ({optimizer} rescales each step by the gradient's size: no bound in the learning rate alone)"
    return line


def format_sweep(report: dict) -> str:
    fmt = lambda v: "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))  # noqa: E731
    keys = ["ratio_first_last", "delta_ratio_first_last", "predicted_delta_ratio", "forward_rms_last"]
    if report["mode"] == "trained":
        keys = ["val_accuracy", "diverged_at_step", "ratio_first_last"]
    names = [report["x"]["field"]] + [a["field"] for a in (report["series"], report["y"]) if a] + keys
    lines = ["  ".join(f"{n:>14}" for n in names)]
    for p in report["points"]:
        cells = ([p["x"]] + [p[k] for k, a in (("series", report["series"]), ("y", report["y"])) if a]
                 + [p[k] for k in keys])
        lines.append("  ".join(f"{fmt(c):>14}" for c in cells))
    if "sweep" in report:
        lines.append(f"claim ({report['sweep']['name']}): {report['sweep']['claim']}")
        lines.append(f"verdict: {report['sweep']['verdict']} - {report['sweep']['why']}")
    lines.append(f"{len(report['points'])} points in {report['seconds']:.2f} s")
    return "\n".join(lines)


def format_preview(report: dict) -> str:
    lines = [f"At-initialization view, a model not seen before: probe + both charts "
             f"(median of {next(iter(report['preview'].values()))['repeats']})"]
    for name, row in report["preview"].items():
        lines.append(f"{name:<26} {row['median_ms']:>8.1f} ms   (probe {row['probe_ms']:.1f} ms; "
                     f"{row['min_ms']:.1f}-{row['max_ms']:.1f} ms)")
    lines.append("A control change on a network already drawn (its initial weights re-used)")
    for name, row in report["redraw"].items():
        lines.append(f"{name:<26} {row['median_ms']:>8.1f} ms   (first draw {row['first_draw_ms']:.1f} ms; "
                     f"{row['min_ms']:.1f}-{row['max_ms']:.1f} ms)")
    return "\n".join(lines)
