"""python -m gradviz presets | run | probe | sweep | bench | precompute | prefetch | view: the command
line whose output scripts rely on (the contract is docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gradviz.config import ConfigError, RunConfig
from gradviz.data import DataUnavailable
from gradviz.presets import PRESETS, Preset, get_preset
from gradviz.report import format_preview, format_probe, format_report, format_sweep
from gradviz.serving.limits import OUT_OF_MEMORY, MemoryLimit, check_memory
from gradviz.training.quiet import QUIET_ENV

EXIT_OK, EXIT_BAD_INPUT = 0, 2


class BadInput(Exception):
    """Anything the user can fix: a bad flag value, an unknown preset, missing data."""


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """['depth=20', 'activation=tanh'] -> {'depth': '20', 'activation': 'tanh'}."""
    values = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or not field.strip():
            raise BadInput(f"--set expects FIELD=VALUE, got {pair!r}")
        values[field.strip()] = value
    return values


def resolve_config(preset_name: str | None, sets: list[str]) -> tuple[RunConfig, Preset | None]:
    """The preset (or default) config with --set overrides applied; ConfigError on bad values."""
    preset = get_preset(preset_name) if preset_name else None
    base = preset.config if preset else RunConfig()
    overrides = parse_sets(sets)
    config = RunConfig.from_strings(overrides, base=base)
    # A preset's claim is about the preset as written; with overrides it is a different experiment.
    return config, preset if preset and config == preset.config else None


def _load(config: RunConfig, data_dir: str | None):
    from gradviz.data import load_dataset

    return load_dataset(config.train_size, data_dir)


def cmd_presets(args) -> int:
    width = max(len(name) for name in PRESETS)
    for preset in PRESETS.values():
        print(f"{preset.name:<{width}}  {preset.summary}")
    return EXIT_OK


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def _progress_printer(progress) -> None:
    print(f"\r  step {progress.step:>6}/{progress.total_steps}  loss {progress.loss:.4g}   ",
          end="", file=sys.stderr, flush=True)


def _check_training(config: RunConfig, data_dir: str | None) -> None:
    """MemoryLimit (exit 2) before any data, model or TensorFlow is loaded, for the images the data holds."""
    from gradviz.data import available_train_images

    check_memory(config, "training", images=available_train_images(data_dir))


def cmd_run(args) -> int:
    config, preset = resolve_config(args.preset, args.set)
    _check_training(config, args.data_dir)
    dataset = _load(config, args.data_dir)  # missing data fails here, before anything is sent anywhere
    from gradviz.diagnosis.diagnose import diagnose
    from gradviz.report import summary
    from gradviz.serving import cluster

    def train_one(c: RunConfig, progress=None):
        data = dataset if c.train_size == config.train_size else _load(c, args.data_dir)
        return cluster.train(c, lambda _: data, on_progress=progress, on_note=_note)

    result = train_one(config, None if args.json else _progress_printer)
    findings = diagnose(result)
    if args.save:
        result.save(args.save)
    report = summary(result, findings, preset)
    if args.find_fix:
        report.update(_find_fix(result, findings, train_one, quiet=args.json))
    if args.json:
        print(json.dumps(report))
    else:
        print(file=sys.stderr)
        print(format_report(report, config))
    return EXIT_OK


def _find_fix(result, findings, train_one, quiet: bool) -> dict:
    """`fix_search` and `verified_fix` (docs/cli.md): each candidate change trained on this config."""
    from gradviz.diagnosis.fix_search import plan_search, run_search

    search = plan_search(result, findings, result.sharpness_at_init())
    if search is None:
        return {"fix_search": [], "verified_fix": None}
    if not quiet:
        _note(f"looking for a fix: {search.budget_text()}")
    for trial in run_search(search, train_one):
        if not quiet:
            _note(f"{trial.change}: val accuracy {trial.val_accuracy}, learned: {trial.learned}")
    return search.to_json()


def cmd_probe(args) -> int:
    """Measure the untrained model at initialization beside the mean-field prediction; no training."""
    config, _ = resolve_config(args.preset, args.set)
    check_memory(config, "probe")
    from gradviz.data import load_files

    load_files(args.data_dir)  # missing data fails here, with the message, before TensorFlow loads
    from gradviz.data import PROBE_IMAGES, probe_batch
    from gradviz.signal.probe import probe
    from gradviz.signal.sharpness import measure_sharpness

    report = probe(config, args.data_dir).to_json()
    x, y, _ = probe_batch(PROBE_IMAGES, args.data_dir)
    report["sharpness"] = measure_sharpness(config, x, y).to_json()  # the learning-rate law beside the init's
    return emit(report, args.json, format_probe)


def emit(report: dict, as_json: bool, formatter) -> int:
    """One JSON object on stdout, or the report as a person reads it."""
    print(json.dumps(report) if as_json else formatter(report))
    return EXIT_OK


def sweep_spec(args):
    """The sweep the flags describe (a named sweep, or --x/--series/--y over a preset or the defaults)."""
    from gradviz.sweeps.grid import (
        SERIES_FIELDS,
        TRAINED_BUDGET,
        X_FIELDS,
        SweepSpec,
        parse_axis,
    )
    from gradviz.sweeps.named import get_sweep_preset

    named = get_sweep_preset(args.sweep) if args.sweep else None
    if named is None and not args.x:
        raise BadInput("sweep needs --x FIELD=SPEC (or --sweep NAME; see --help)")
    base = named.spec.base if named else resolve_config(args.preset, [])[0]
    if args.train:  # a trained sweep's points are short runs, unless the flags say otherwise
        base = base.replace(**{k: v for k, v in TRAINED_BUDGET.items() if k not in parse_sets(args.set)})
    base = RunConfig.from_strings(parse_sets(args.set), base=base)
    x = parse_axis(args.x, X_FIELDS, "x") if args.x else named.spec.x
    series = parse_axis(args.series, SERIES_FIELDS, "series") if args.series else (named.spec.series if named else None)
    y = parse_axis(args.y, X_FIELDS, "y") if args.y else (named.spec.y if named else None)
    return SweepSpec(base, x, series, y, train=args.train or bool(named and named.spec.train)), named


def cmd_sweep(args) -> int:
    """A grid of configs measured at initialization (instant) or trained (--train)."""
    spec, named = sweep_spec(args)
    spec.check()  # a bad sweep is refused before any data or TensorFlow is loaded
    spec.check_memory()
    from gradviz.data import PROBE_IMAGES, load_dataset, probe_batch
    from gradviz.sweeps.grid import run_init, run_trained

    if spec.train:
        from gradviz.serving import cluster

        # On a cluster every point is sent at once, so the workers share them; held until the sweep ends.
        held = [cluster.submit(config) for *_, config in spec.points()]
        result = run_trained(spec, lambda c: cluster.train(c, lambda d: load_dataset(d.train_size, args.data_dir),
                                                           on_note=_note))
        del held
    else:
        x, y, where = probe_batch(PROBE_IMAGES, args.data_dir)
        result = run_init(spec, x, y, where)
    report = result.to_json()
    if named is not None and spec == named.spec:  # the named sweep as written: its verdict applies
        outcome, why = named.judge(result)
        report["sweep"] = {"name": named.name, "claim": named.claim, "verdict": outcome, "why": why}
    return emit(report, args.json, format_sweep)


def cmd_bench(args) -> int:
    if args.preview:
        return _bench_preview(args)
    if args.sweeps:
        return _bench_sweeps(args)
    if args.fix_search:
        return _bench_fix_search(args)
    if args.watch:
        return _bench_watch(args)
    config, _ = resolve_config(args.preset, args.set)
    _check_training(config, args.data_dir)
    dataset = _load(config, args.data_dir)
    from gradviz.training.bench import FIRST_RUNS, RERUNS, run_bench

    report = run_bench(config, dataset, repeats=args.repeats)
    if args.json:
        print(json.dumps(report))
        return EXIT_OK
    print(f"model: {args.preset or 'default config'}; data: {dataset.description}; median of {args.repeats} runs")
    print(f"{'method':<18} {'steps':>6} {'seconds':>8} {'steps/s':>8} {'steady steps/s':>15}")
    for name, row in report["methods"].items():
        steady = row["steady_steps_per_second"]
        print(f"{name:<18} {row['steps']:>6} {row['seconds']:>8.2f} {row['steps_per_second']:>8.1f} "
              f"{'-' if steady is None else f'{steady:.1f}':>15}")
    for prefix, label, others in (
            ("", "gradviz, first run of its shape (traces), end to end", FIRST_RUNS),
            ("steady_", "gradviz, first run, steady state (epoch 2 on)", FIRST_RUNS),
            ("rerun_", "gradviz_rerun (traced graphs reused) against the reruns, end to end", RERUNS),
            ("rerun_steady_", "gradviz_rerun against the reruns, steady state", RERUNS)):
        print(f"{label}: " + "  ".join(f"speedup_vs_{name} {report[f'{prefix}speedup_vs_{name}']}" for name in others))
    return EXIT_OK


def _bench_preview(args) -> int:
    """The At-initialization view's latency per control change, for each kind of model."""
    from gradviz.data import PROBE_IMAGES, probe_batch

    x, y, _ = probe_batch(PROBE_IMAGES, args.data_dir)
    from gradviz.training.bench import run_preview_bench

    return emit(run_preview_bench(x, y, repeats=args.repeats), args.json, format_preview)


def _bench_sweeps(args) -> int:
    """A phase diagram and trained sweeps against the same points one by one."""
    from gradviz.data import PROBE_IMAGES, load_dataset, probe_batch

    x, y, _ = probe_batch(PROBE_IMAGES, args.data_dir)
    dataset = load_dataset(2000, args.data_dir)
    from gradviz.training.bench import run_sweep_bench

    return emit(run_sweep_bench(x, y, dataset), args.json,
                lambda report: "\n".join(f"{key:<48} {value}" for key, value in report.items()))


def _bench_fix_search(args) -> int:
    """The fix search on failing default-size MLPs, and the sharpness' share of an SGD run."""
    from gradviz.data import load_dataset

    dataset = load_dataset(RunConfig().train_size, args.data_dir)
    from gradviz.training.bench import run_fix_search_bench

    return emit(run_fix_search_bench(dataset), args.json, lambda report: json.dumps(report, indent=1))


def _bench_watch(args) -> int:
    """model.fit with gradviz.watch against plain model.fit (a 10 x 256 MLP, a small CNN)."""
    from gradviz.data import load_dataset

    dataset = load_dataset(RunConfig().train_size, args.data_dir)
    from gradviz.yourmodel.bench import run_watch_bench

    return emit(run_watch_bench(dataset, repeats=args.repeats), args.json, lambda report: json.dumps(report, indent=1))


def cmd_view(args) -> int:
    """Check a run file, then start the app on it (its "Open a run" page first). The path reaches the
    server through its environment, never through a link."""
    import subprocess

    from gradviz.yourmodel.runfile import VIEW_FILE, RunFileError, load

    path = Path(args.file).expanduser().resolve()
    try:
        result = load(path)
    except RunFileError as error:
        raise BadInput(str(error)) from None
    app = Path(__file__).resolve().parent.parent / "app.py"
    print(f"{path.name}: {result.steps_done:,} steps, {len(result.layers)} kernels; opening it at "
          f"http://{args.address}:{args.port} (Ctrl+C stops the server)", file=sys.stderr)
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
               "--server.address", args.address, "--server.headless", "true" if args.no_browser else "false"]
    try:
        return subprocess.call(command, env={**os.environ, VIEW_FILE: str(path)}, cwd=app.parent)
    except KeyboardInterrupt:  # Ctrl+C stops the server (it got the signal too): no traceback
        return EXIT_OK


def read_grid(path: str) -> list[tuple[str, RunConfig]]:
    """A grid file: one config per line as 'field=value; field=value' over the defaults; '#' comments."""
    from gradviz.sweeps.compare import parse_changes

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise BadInput(f"cannot read grid file {path}: {error}") from None
    grid = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                grid.append((f"{Path(path).name}:{number}", RunConfig.from_strings(parse_changes(text))))
            except ConfigError as error:
                raise BadInput(f"{path}, line {number}: {error}") from None
    return grid


def lesson_jobs(names: list[str]) -> list[tuple[str, RunConfig]]:
    """Every step's config of the lessons named, and each challenge's solution, each once ("initialization:2")."""
    from gradviz.lessons.library import load_lessons

    if not names:
        return []
    lessons, problems = load_lessons()
    jobs = []
    for name in names:
        if name not in lessons:
            bad = next((p for p in problems if p.startswith(f"{name}.toml")), None)
            raise BadInput(bad or f"lesson={name!r} is not valid: one of " + ", ".join(lessons))
        for i, step in enumerate(lessons[name].steps, 1):
            jobs.append((f"{name}:{i}", step.config))
            if step.challenge is not None:  # what a class will train first, solving it
                jobs.append((f"{name}:{i} solved", step.challenge.solved(step.config)))
    unique: dict[str, tuple[str, RunConfig]] = {}
    for label, config in jobs:
        unique.setdefault(config.cache_key(), (label, config))
    return list(unique.values())


def precompute_jobs(args) -> list[tuple[str, RunConfig]]:
    """The presets and grid configs asked for, checked before anything slow starts."""
    chosen = args.presets.strip().lower()
    if chosen in ("none", ""):
        names = []
    else:
        names = list(PRESETS) if chosen == "all" else [n.strip() for n in args.presets.split(",") if n.strip()]
    jobs = [(name, get_preset(name).config) for name in names] + (read_grid(args.grid) if args.grid else [])
    jobs += lesson_jobs(getattr(args, "lesson", []))
    for label, config in jobs:  # every job is checked before the first one trains
        try:
            _check_training(config, args.data_dir)
        except MemoryLimit as limit:
            raise BadInput(f"{label}: {limit}") from None
    return jobs


def cmd_precompute(args, jobs: list[tuple[str, RunConfig]] | None = None) -> int:
    """Train every preset (and grid config) once, and the fix search of each that fails, and store
    the results for the app to show at once."""
    from gradviz.diagnosis.fix_search import plan_search, run_search
    from gradviz.serving.store import ResultStore

    jobs = precompute_jobs(args) if jobs is None else jobs
    store = ResultStore(args.out)
    for label, config in jobs:
        result = _stored_or_trained(store, label, config, args)
        search = plan_search(result, lambda_max=result.sharpness_at_init())
        if search is not None:
            trials = list(run_search(search, lambda c: _stored_or_trained(store, f"  fix {label}", c, args)))
            verified = search.verified_fix
            print(f"{'  fix search':<28} {len(trials)} change(s) tried; verified fix: "
                  + (" ".join(f"{k}={v}" for k, v in verified.items()) if verified else "none"))
    return EXIT_OK


def _stored_or_trained(store, label: str, config: RunConfig, args):
    from gradviz.data import load_dataset

    dataset = load_dataset(config.train_size, args.data_dir)
    stored = None if args.force else store.get(config, dataset.info())
    if stored is not None:
        print(f"{label:<28} stored already")
        return stored
    from gradviz.training.train import train

    result = train(config, dataset)
    store.put(result)
    print(f"{label:<28} trained {result.steps_done} steps in {result.seconds:.1f} s -> {store.root}")
    return result


def cmd_prefetch(args) -> int:
    """Before a talk, on a machine with internet: put MNIST in the Keras cache, then precompute the
    presets, so that the app needs no network (and, for the presets, no training) afterwards."""

    from gradviz.data import download_to_keras_cache, keras_cache_path, load_files

    jobs = precompute_jobs(args)  # a typo in --presets fails now, not after the download
    if args.data_dir or os.environ.get("GRADVIZ_DATA_DIR"):  # the app reads this folder first: store from it
        where = "(GRADVIZ_DATA_DIR); nothing to download"
    elif keras_cache_path().is_file():
        where = "(already in the Keras cache)"
    else:
        print("MNIST: downloading through Keras ...", flush=True)
        download_to_keras_cache(retry=True)
        where = "(downloaded)"
    # Read once here (memoised for the precompute below): a truncated download fails now, not in class.
    files = load_files(args.data_dir)
    print(f"MNIST: {files.source} {where}")
    cmd_precompute(args, jobs)
    store = args.out or "the default store ($GRADVIZ_STORE_DIR or ~/.cache/gradviz/results)"
    print(f"Ready offline: the app reads MNIST from {files.source} and shows the stored runs from {store} "
          "without training.")
    return EXIT_OK


def _common() -> argparse.ArgumentParser:
    """Flags every command that reads MNIST takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="folder with MNIST (default: $GRADVIZ_DATA_DIR, then the Keras cache)")
    common.add_argument("--verbose", action="store_true", help="let TensorFlow's own start-up lines through to stderr")
    return common


def _config_flags(p: argparse.ArgumentParser, default_preset: str | None, what: str = "the config") -> None:
    p.add_argument("--preset", default=default_preset, help=f"start {what} from a named preset (see `presets`)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override one field; repeatable")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gradviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = _common()
    sub.add_parser("presets", help="list preset names", parents=[common]).set_defaults(func=cmd_presets)
    for name, func, default_preset, help_text in (
        ("run", cmd_run, None, "train one config and print a summary"),
        ("probe", cmd_probe, None, "measure the untrained model's signals at initialization, beside the theory"),
        ("bench", cmd_bench, "seed-vanishing-sigmoid", "compare throughput with model.fit and the seed recipe"),
    ):
        p = sub.add_parser(name, help=help_text, parents=[common])
        _config_flags(p, default_preset)
        if name == "run":
            p.add_argument("--save", metavar="PATH", help="also save the RunResult as PATH.npz + PATH.json")
            p.add_argument("--find-fix", action="store_true",
                           help="after a run with a problem, train each candidate change on it and report which worked")
        elif name == "bench":
            p.add_argument("--repeats", type=int, default=5, choices=range(1, 11), metavar="N",
                           help="timed runs per method, median reported (1-10, default 5)")
            p.add_argument("--preview", action="store_true",
                           help="time the explorer's At-initialization view per control change instead")
            p.add_argument("--sweeps", action="store_true",
                           help="time a phase diagram and trained sweeps against their points one by one instead")
            p.add_argument("--fix-search", action="store_true",
                           help="time the fix search on failing default-size MLPs and the sharpness in training")
            p.add_argument("--watch", action="store_true",
                           help="time model.fit with gradviz.watch against plain model.fit (your own model)")
        p.set_defaults(func=func)
    sw = sub.add_parser("sweep", help="a grid of configs at initialization (instant) or trained (--train)",
                        parents=[common])
    sw.add_argument("--x", metavar="FIELD=SPEC", help="depth, init_std, init_gain, learning_rate, width or "
                    "step_pixels; SPEC: v1,v2,... or start:stop:count[:log]")
    sw.add_argument("--series", metavar="FIELD=V1,V2",
                    help="activation, initializer, optimizer, batch_norm or residual")
    sw.add_argument("--y", metavar="FIELD=SPEC",
                    help="a second numeric field (a phase diagram: --x init_std=... --y depth=...)")
    sw.add_argument("--sweep", metavar="NAME", help="a named sweep: " + ", ".join(_sweep_names()))
    sw.add_argument("--train", action="store_true",
                    help="train every point (short runs: 2,000 images x 1 epoch unless set)")
    _config_flags(sw, None, "the base config")
    sw.set_defaults(func=cmd_sweep)
    for name, func, help_text in (
        ("precompute", cmd_precompute, "train presets (and a grid) once; the app shows them without training"),
        ("prefetch", cmd_prefetch, "download MNIST into the Keras cache and precompute: the app then works offline"),
    ):
        pre = sub.add_parser(name, help=help_text, parents=[common])
        pre.add_argument("--presets", default="all", help="'all', 'none', or comma-separated preset names")
        pre.add_argument("--grid", metavar="FILE", help="more configs, one per line: 'depth=20; activation=tanh'")
        pre.add_argument("--lesson", metavar="NAME", action="append", default=[],
                         help="also every step of this lesson (repeatable; see the Lessons page)")
        pre.add_argument("--out", metavar="DIR",
                         help="store folder (default: $GRADVIZ_STORE_DIR or ~/.cache/gradviz/results)")
        pre.add_argument("--force", action="store_true", help="retrain even if a stored run is there")
        pre.set_defaults(func=func)
    view = sub.add_parser("view", help="open a run file (gradviz.watch's result.save) in the app", parents=[common])
    view.add_argument("file", help="a .gradviz run file")
    view.add_argument("--port", type=_port, default=8501, metavar="PORT", help="the server's port (default 8501)")
    view.add_argument("--address", default="localhost",
                      help="the address to listen on (default localhost: this machine only)")
    view.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    view.set_defaults(func=cmd_view)
    return parser


def _port(text: str) -> int:
    """A TCP port a user may listen on (argparse turns the ValueError into a usage message)."""
    port = int(text)
    if not 1024 <= port <= 65535:
        raise ValueError(text)
    return port


def _sweep_names() -> list[str]:
    from gradviz.sweeps.named import SWEEP_PRESETS

    return list(SWEEP_PRESETS)




def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 with a usage message on garbage flags
    quiet_native_logs(not args.verbose)  # TensorFlow's start-up lines (oneDNN, CPU features) off stderr
    try:
        return args.func(args)
    except (ConfigError, BadInput, DataUnavailable, MemoryLimit) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if type(error).__name__ not in OUT_OF_MEMORY:
            raise
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        print(f"error: out of memory ({type(error).__name__}: {first}). The cost model's estimate was under "
              f"GRADVIZ_MAX_MEMORY_MB but this machine had less free; try a smaller config or a lower cap.",
              file=sys.stderr)
        return EXIT_BAD_INPUT


def quiet_native_logs(quiet: bool) -> None:
    """Ask gradviz.training.tf_setup to import TensorFlow with its C++ start-up lines silenced (or
    not: --verbose). Set in the environment, so processes this one starts do the same."""
    if quiet:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)
