"""The CLI contract: presets, run (--json shape, exit codes, --save), bench; and the acceptance runs
of the seed presets on real MNIST."""

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from gradviz import cli
from gradviz.config import RunConfig
from gradviz.presets import PRESETS
from gradviz.result import RunResult
from gradviz.training import bench
from gradviz.training.models import build_model
from support.helpers import ROOT

TINY = ["--set", "depth=2", "--set", "width=16", "--set", "train_size=512", "--set", "epochs=1"]
JSON_KEYS = {"config", "data", "final", "diverged_at_step", "first_bad_layer", "grad_norm_ratio_first_last",
             "diagnosis", "sharpness", "timing"}
KINDS = {"vanishing", "exploding", "diverged", "dead_units", "saturation", "healthy", "symmetric_init",
         "signal_collapse", "signal_blowup", "not_learning", "step_too_large", "chaotic", "narrow",
         "early_steps_ignored", "slow_learning"}


def gradviz(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "gradviz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def run_json(capsys, *args) -> dict:
    assert cli.main(["run", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object on stdout
    return json.loads(out)


def test_presets_lists_every_name_with_a_line():
    done = gradviz("presets", timeout=60)
    assert done.returncode == 0
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)
    assert all(len(line.split(None, 1)[1]) > 10 for line in lines)


@pytest.mark.parametrize("args,needle", [
    (["run", "--set", "depth=abc"], "depth='abc' is not valid: a whole number from 1 to 50"),
    (["run", "--set", "depth"], "--set expects FIELD=VALUE"),
    (["run", "--set", "warp=9"], "warp='9' is not valid: unknown field"),
    (["run", "--preset", "nope"], "preset='nope' is not valid: one of seed-vanishing-sigmoid"),
    (["run", "--set", "clipnorm=1", "--set", "clipvalue=1"], "only one of clipnorm"),
    (["run", "--data-dir", "/nonexistent/folder"], "does not exist"),
    (["run", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["explode"], "invalid choice"),
    (["bench", "--set", "epochs=-1"], "epochs='-1' is not valid"),
    (["probe", "--set", "init_std=0", "--set", "initializer=random_normal"], "init_std='0' is not valid"),
    (["probe", "--set", "activation=swish"], "activation='swish' is not valid"),
    (["probe", "--set", "init_gain=-1"], "init_gain='-1' is not valid"),
])
def test_bad_input_exits_2_with_a_message_and_no_traceback(args, needle):
    done = gradviz(*args, timeout=120)
    assert done.returncode == 2
    assert needle in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_run_json_shape(capsys):
    report = run_json(capsys, *TINY, "--set", "clipnorm=1")
    assert set(report) == JSON_KEYS  # no preset key: this is not a preset as written
    assert report["config"]["depth"] == 2 and report["config"]["clipnorm"] == 1.0
    assert set(report["data"]) == {"source", "split", "train_size", "val_size"}
    assert report["data"]["train_size"] == 512 and report["data"]["val_size"] == 2000
    assert set(report["final"]) == {"train_loss", "val_loss", "val_accuracy"}
    assert report["diverged_at_step"] is None and report["first_bad_layer"] is None
    assert isinstance(report["grad_norm_ratio_first_last"], float)
    for finding in report["diagnosis"]:
        assert set(finding) == {"kind", "severity", "message", "evidence", "fix"}
        assert finding["kind"] in KINDS and finding["severity"] in ("critical", "warning", "info")
    assert report["timing"]["steps"] == 4 and report["timing"]["steps_per_second"] > 0
    assert report["sharpness"] == []  # Adam: the learning-rate law's bound does not apply, nothing measured


def test_run_json_sharpness_for_sgd_matches_the_eager_power_iteration(capsys, real_data_or_skip):
    """SGD: λ_max before the first step and after the epoch; step 0's is the eager oracle's."""
    from gradviz.data import load_dataset
    from gradviz.signal.sharpness import measure_sharpness

    report = run_json(capsys, *TINY, "--set", "optimizer=sgd", "--set", "learning_rate=0.05")
    assert [row["step"] for row in report["sharpness"]] == [0, 4]  # before the first step and at the end
    data = load_dataset(512)
    oracle = measure_sharpness(RunConfig.from_strings({"depth": "2", "width": "16", "optimizer": "sgd"}),
                               data.x_val[:64], data.y_val[:64], iterations=60, tolerance=1e-6)
    assert report["sharpness"][0]["lambda_max"] == pytest.approx(oracle.lambda_max, rel=0.02)


def test_run_find_fix_json_contract(capsys, real_data_or_skip):
    """A run with a too-large Adam step: the search's rows, and a verified fix that learned."""
    report = run_json(capsys, "--set", "depth=2", "--set", "width=32", "--set", "train_size=2000",
                      "--set", "epochs=1", "--set", "learning_rate=10", "--find-fix")
    assert report["diagnosis"][0]["kind"] == "step_too_large"
    rows = report["fix_search"]
    assert rows and all(set(row) == {"change", "val_accuracy", "diverged_at_step", "kinds", "learned"} for row in rows)
    winner = report["verified_fix"]
    assert winner is not None and winner in [row["change"] for row in rows if row["learned"]]
    row = next(row for row in rows if row["change"] == winner)
    assert row["val_accuracy"] >= 0.3 and row["diverged_at_step"] is None


PROBE_KEYS = {"config", "layers", "preact_rms", "forward_rms", "grad_norm", "ratio_first_last", "predicted", "law",
              "seconds"}


def probe_json(capsys, *args) -> dict:
    assert cli.main(["probe", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return json.loads(out)


def test_probe_json_contract(capsys, real_data_or_skip):
    real_data_or_skip(100)
    report = probe_json(capsys, "--preset", "seed-vanishing-sigmoid")
    assert PROBE_KEYS <= set(report)
    assert report["layers"] == [f"hidden_{i:02d}" for i in range(1, 11)] + ["output"]
    for key in ("preact_rms", "forward_rms", "grad_norm"):
        assert len(report[key]) == 11 and all(isinstance(v, float) for v in report[key])
    assert report["ratio_first_last"] == pytest.approx(report["grad_norm"][0] / report["grad_norm"][-1])
    predicted = report["predicted"]
    assert len(predicted["preact_var"]) == 11 and isinstance(predicted["grad_factor_per_layer"], float)
    assert predicted["grad_factor_per_layer"] < 0.3 and predicted["ratio_first_last"] < 1e-5  # sigmoid: <= 1/4
    assert report["ratio_first_last"] == pytest.approx(predicted["ratio_first_last"], rel=0.5)
    assert "χ" in report["law"] and report["seconds"] > 0
    sharpness = report["sharpness"]  # the learning-rate law beside the initialization's
    assert {"lambda_max", "stable_lr", "optimizer", "batch"} <= set(sharpness) and sharpness["batch"] == 64
    assert sharpness["lambda_max"] > 0 and sharpness["optimizer"] == "adam" and sharpness["stable_lr"] is None
    assert sharpness["sgd_lr"] == pytest.approx(2 / sharpness["lambda_max"])
    cnn = probe_json(capsys, "--preset", "seed-fixed-resnet")
    assert cnn["predicted"] is None and "convolutions" in cnn["law"]  # the theory says where it stops
    assert len(cnn["grad_norm"]) == len(cnn["layers"])


def test_probe_human_output(capsys, real_data_or_skip):
    real_data_or_skip(100)
    assert cli.main(["probe", "--preset", "he2015-relu-glorot"]) == 0
    out = capsys.readouterr().out
    assert "hidden_30" in out and "both fade" in out and "first/last gradient ratio: measured" in out


def test_run_save_and_human_output(capsys, tmp_path):
    assert cli.main(["run", *TINY, "--save", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "final:" in out and "gradient norm ratio" in out
    assert re.search(r"^\[(critical|warning|info)\] (" + "|".join(KINDS) + "): ", out, re.M)
    loaded = RunResult.load(tmp_path / "r")
    assert loaded.config.depth == 2 and loaded.steps_done == 4


def test_seed_vanishing_sigmoid_reproduces(capsys, real_data_or_skip):
    real_data_or_skip(8000)
    report = run_json(capsys, "--preset", "seed-vanishing-sigmoid")
    assert report["final"]["val_accuracy"] < 0.2  # chance is 10 %
    assert report["grad_norm_ratio_first_last"] < 1e-3
    assert report["diagnosis"][0]["kind"] == "vanishing" and report["diagnosis"][0]["severity"] == "critical"
    assert report["diagnosis"][0]["fix"] == {"activation": "relu", "initializer": "he_normal"}
    assert report["preset"]["verdict"] == "reproduced"


def test_exploding_linear_diverges_in_a_fresh_process(real_data_or_skip):
    real_data_or_skip(8000)
    done = gradviz("run", "--preset", "exploding-linear", "--json")
    assert done.returncode == 0, done.stderr  # a diverging run is a finding, not a failure
    report = json.loads(done.stdout)
    assert isinstance(report["diverged_at_step"], int) and report["diverged_at_step"] < 62  # first epoch
    assert report["first_bad_layer"].startswith("hidden_")
    assert report["diagnosis"][0]["kind"] == "diverged"
    assert report["final"]["train_loss"] is None
    assert report["preset"]["verdict"] == "reproduced"


def test_exploding_linear_clipped_learns(capsys, real_data_or_skip):
    real_data_or_skip(8000)
    report = run_json(capsys, "--preset", "exploding-linear-clipped")
    assert report["diverged_at_step"] is None
    assert report["final"]["val_accuracy"] > 0.5
    assert not any(f["kind"] in ("diverged", "exploding") for f in report["diagnosis"])


def test_seed_exploding_linear_is_reported_honestly(capsys, real_data_or_skip):
    """The article's literal deep-linear/Adam config does not blow up on this data: the verdict
    must say so rather than claim a reproduction."""
    real_data_or_skip(8000)
    report = run_json(capsys, "--preset", "seed-exploding-linear")
    exploded = report["diverged_at_step"] is not None or any(
        f["kind"] == "exploding" and f["severity"] != "info" for f in report["diagnosis"])
    assert report["preset"]["verdict"] == ("reproduced" if exploded else "not reproduced")


def test_bench_json(capsys):
    two_epochs = [*TINY, "--set", "epochs=2", "--set", "batch_size=64"]
    assert cli.main(["bench", *two_epochs, "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["methods"]) == {"fit", "fit_rerun", "seed_recipe", "seed_recipe_rerun", "gradviz",
                                      "gradviz_rerun"}
    steps = {row["steps"] for row in report["methods"].values()}
    assert steps == {16}  # the same full batches for every method
    assert report["speedup_vs_fit"] > 0 and report["speedup_vs_seed_recipe"] > 0
    assert all(row["steady_steps_per_second"] > 0 for row in report["methods"].values())
    assert report["steady_speedup_vs_fit"] > 0 and report["steady_speedup_vs_seed_recipe"] > 0
    for prefix in ("rerun_", "rerun_steady_"):
        assert report[prefix + "speedup_vs_fit_rerun"] > 0 and report[prefix + "speedup_vs_seed_recipe_rerun"] > 0
    assert report["machine"]["cpus"] >= 1 and report["repeats"] == 1


def test_bench_rates_leave_epoch_one_out_of_the_steady_state():
    started = time.perf_counter() - 6.0  # as if the method began 6 s ago and its epochs ended as below
    one = bench._rate(10, started, [started + 1.0])
    assert one["steady_steps_per_second"] is None and one["steps"] == 10
    three = bench._rate(10, started, [started + 5.0, started + 5.5, started + 6.0])
    assert three["steady_steps_per_second"] == 20.0  # 20 steps in the 1.0 s after epoch 1
    assert three["steps_per_second"] <= 5.0  # end to end: 30 steps in the >= 6 s since it began


def test_bench_speedups_are_none_without_a_rate():
    rows = {"fit": {"r": 10.0}, "seed_recipe": {"r": None}, "gradviz": {"r": 25.0}}
    assert bench._speedups(rows, "gradviz", bench.FIRST_RUNS, "r", "x_") == {"x_speedup_vs_fit": 2.5,
                                                                            "x_speedup_vs_seed_recipe": None}


def test_bench_keras_rerun_reuses_the_compiled_model_with_fresh_state(tiny_data):
    """fit_rerun and seed_recipe_rerun keep Keras' traced train step, as gradviz_rerun keeps its
    graphs, but start from new initial weights and a zeroed optimizer, like a first run."""
    config = RunConfig(depth=2, width=16, batch_size=32, train_size=256, epochs=1, learning_rate=0.01)
    first = bench.compiled_model(config)
    first.fit(tiny_data.x_train, tiny_data.y_train, batch_size=32, verbose=0)
    again = bench.compiled_model(config, rerun=True)
    assert again is first
    for ours, fresh in zip(again.get_weights(), build_model(config, tapped=False).get_weights()):
        np.testing.assert_array_equal(ours, fresh)
    state = {v.name: np.asarray(v.numpy()) for v in again.optimizer.variables}
    assert state.pop("learning_rate") == np.float32(0.01) and state.pop("iteration") == 0
    assert state and all(not value.any() for value in state.values())  # every moment estimate zeroed
    assert bench.compiled_model(config) is not first  # without rerun: a new model


def test_bench_first_run_traces_and_the_rerun_reuses(tiny_data, monkeypatch):
    """'gradviz' pays for tracing like fit does; only 'gradviz_rerun' finds graphs already traced."""
    from gradviz.training import steps

    found = []
    real_train = bench.train

    def noting_train(config, data, **kwargs):
        found.append(steps.graph_key(config) in steps.GRAPHS)
        return real_train(config, data, **kwargs)

    monkeypatch.setattr(bench, "train", noting_train)
    config = RunConfig(depth=2, width=16, batch_size=32, train_size=256, epochs=1)
    for method in (bench.time_gradviz, bench.time_gradviz_rerun, bench.time_gradviz):
        method(config, tiny_data)
    assert found == [False, True, False]


def test_bench_redraw_reuses_every_initial_weight(tiny_data):
    """The redraw timing probes one network again with another activation: every kernel (three
    hidden, one output) must come from the kept draw, on each of the two flips."""
    row = bench.time_redraw(RunConfig(depth=3, width=32), tiny_data.x_val[:16], tiny_data.y_val[:16], repeats=2)
    assert row["draws_reused"] == 4 * 2 and row["repeats"] == 2
    assert row["median_ms"] > 0 and row["first_draw_ms"] > 0
