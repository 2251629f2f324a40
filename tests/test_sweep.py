"""Sweeps: the grid's parsing and limits, the shared-prefix probes against one-by-one probes, the
theory against the measured sweep, the named sweeps' computed verdicts, and the CLI contract."""

import json
import math

import numpy as np
import pytest

from gradviz import cli
from gradviz.config import ConfigError, RunConfig
from gradviz.signal import probe as signal
from gradviz.signal.family import measure_family
from gradviz.sweeps.grid import (
    SERIES_FIELDS,
    X_FIELDS,
    SweepResult,
    SweepSpec,
    parse_axis,
    run_init,
)
from gradviz.sweeps.named import SWEEP_PRESETS, judge_he, judge_learning_rate_law
from support.helpers import make_dataset

DATA = make_dataset(n_train=16, n_val=32, seed=5)


def test_axes_parse_lists_and_linear_and_log_ranges_and_round_whole_numbers():
    assert parse_axis("depth=2,4,8", X_FIELDS, "x").values == (2, 4, 8)
    assert parse_axis("depth=1:10:4", X_FIELDS, "x").values == (1, 4, 7, 10)
    assert parse_axis("depth=1:3:5", X_FIELDS, "x").values == (1, 2, 3)  # 1, 1.5, 2, 2.5, 3 rounded, once each
    stds = parse_axis("init_std=0.01:1:3:log", X_FIELDS, "x").values
    assert stds == pytest.approx((0.01, 0.1, 1.0))
    assert parse_axis("activation=relu,tanh", SERIES_FIELDS, "series").values == ("relu", "tanh")
    assert parse_axis("batch_norm=true,false", SERIES_FIELDS, "series").values == (True, False)


@pytest.mark.parametrize("text, needle", [
    ("init_std=0,0.1", "init_std='0' is not valid"),
    ("init_std=-1:1:3:log", "a log range needs start and stop > 0"),
    ("depth=1:99:3", "depth='99' is not valid"),
    ("speed=1,2", "x='speed' is not valid: one of depth"),
    ("depth", "FIELD=SPEC"),
    ("depth=2:50:1000", "a count from 2 to 400"),
    ("depth=a:b:3", "start and stop are numbers"),
])
def test_bad_axes_name_the_field_and_the_rule(text, needle):
    with pytest.raises(ConfigError) as error:
        parse_axis(text, X_FIELDS, "x")
    assert needle in str(error.value)


def test_a_sweep_is_checked_before_it_runs():
    base = RunConfig(width=16)
    with pytest.raises(ConfigError, match="only random_normal and random_uniform read it"):
        SweepSpec(base, parse_axis("init_std=0.1,0.2", X_FIELDS, "x")).check()
    with pytest.raises(ConfigError, match="only rnn, lstm and gru read it"):
        SweepSpec(base, parse_axis("step_pixels=7,14", X_FIELDS, "x")).check()
    too_many = SweepSpec(base, parse_axis("depth=1:40:40", X_FIELDS, "x"), parse_axis("activation=relu,tanh",
                         SERIES_FIELDS, "series"), train=True)
    with pytest.raises(ConfigError, match="at most 40 points trained"):
        too_many.check()
    spec = SweepSpec(base.replace(train_size=2000, epochs=1), parse_axis("depth=1:5:5", X_FIELDS, "x"), train=True)
    with pytest.raises(ConfigError, match="at most 6,000 per request"):
        spec.check(max_examples=6000)
    fitted = spec.within_budget(6000)
    assert fitted.check(max_examples=6000) and fitted.base.train_size * fitted.base.epochs * 5 <= 6000


def test_a_family_of_depths_and_scales_is_the_same_as_each_config_probed_alone():
    """The shared forward pass and the stacked backward pass give the numbers of measure() per
    config: kernels drawn once at std 1 and scaled are Keras' own kernels at that std."""
    config = RunConfig(width=24, activation="tanh", initializer="random_normal", seed=3)
    depths, stds = [1, 2, 5], [0.05, 0.2, 0.7]
    family = measure_family(config, DATA.x_val, DATA.y_val, depths, stds)
    for depth in depths:
        for std in stds:
            alone = signal.measure(config.replace(depth=depth, init_std=std), DATA.x_val, DATA.y_val)
            together = family[(depth, std)]
            for key in ("preact_rms", "forward_rms", "grad_norm", "grad_norm_per_example", "delta_rms"):
                np.testing.assert_allclose(getattr(together, key), getattr(alone, key), rtol=1e-4, err_msg=key)
    relu = measure_family(RunConfig(width=24), DATA.x_val, DATA.y_val, [2, 3])  # one std: eager, He init
    np.testing.assert_allclose(relu[(3, 0.05)].grad_norm, signal.measure(RunConfig(width=24, depth=3), DATA.x_val,
                                                                          DATA.y_val).grad_norm, rtol=1e-4)


def test_the_order_to_chaos_sweep_agrees_with_the_theory(real_data_or_skip):
    """Stated tolerance: over the 12 x 10 grid (tanh, width 256, 64 MNIST images), the measured
    log10 of the gradient reaching layer 1 over the last is within 0.3 + 10 % of the theory's."""
    from gradviz.data import probe_batch

    real_data_or_skip(100)
    x, y, where = probe_batch(64)
    preset = SWEEP_PRESETS["order-to-chaos"]
    result = run_init(preset.spec, x, y, where)
    assert len(result.points) == 120
    for p in result.points:
        measured, predicted = math.log10(p["delta_ratio_first_last"]), math.log10(p["predicted_delta_ratio"])
        assert abs(measured - predicted) <= 0.3 + 0.1 * abs(predicted), p
    assert preset.judge(result)[0] == "reproduced"


@pytest.mark.parametrize("name", [n for n in SWEEP_PRESETS if n not in ("order-to-chaos", "learning-rate-law")])
def test_the_named_sweeps_verdicts_are_computed_from_the_measured_points(name, real_data_or_skip):
    from gradviz.data import probe_batch

    real_data_or_skip(100)
    x, y, where = probe_batch(64)
    preset = SWEEP_PRESETS[name]
    outcome, why = preset.judge(run_init(preset.spec, x, y, where))
    assert outcome == "reproduced", why
    assert "per layer" in why


def test_a_verdict_follows_the_numbers():
    """judge_he on constructed points: a Glorot line that does not fade is not the paper's result."""
    def points(glorot_factor):
        return [{"x": d, "series": s, "forward_rms_last": (glorot_factor if s == "glorot_uniform" else 1.0) ** d}
                for d in (5, 10, 20) for s in ("glorot_uniform", "he_normal")]
    spec = SWEEP_PRESETS["he2015-depth"].spec
    assert judge_he(SweepResult(spec, points(0.7)))[0] == "reproduced"
    assert judge_he(SweepResult(spec, points(1.0)))[0] == "partly"


def _lr_points(learns_up_to: float, stable_below: bool = True):
    rates = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28]
    return [{"x": lr, "series": None, "stable_lr": 0.07, "val_accuracy": 0.6 if lr <= learns_up_to else 0.1,
             "diverged_at_step": None, "loss_fell": stable_below or lr >= 0.07} for lr in rates]


def test_the_learning_rate_verdict_follows_the_numbers():
    spec = SWEEP_PRESETS["learning-rate-law"].spec
    outcome, why = judge_learning_rate_law(SweepResult(spec, _lr_points(0.16)))
    assert outcome == "reproduced" and "2/λ = 0.07" in why and "from 0.32 up (4.6× 2/λ)" in why and "catapult" in why
    assert judge_learning_rate_law(SweepResult(spec, _lr_points(10.0)))[0] == "not reproduced"  # never stops
    assert judge_learning_rate_law(SweepResult(spec, _lr_points(0.16, stable_below=False)))[0] == "partly"
    assert judge_learning_rate_law(SweepResult(spec, [{**p, "stable_lr": None} for p in _lr_points(0.16)]))[0] \
        == "not reproduced"  # without the sharpness there is no bound to judge against


def test_the_learning_rate_sweep_is_drawn_with_its_bound():
    from gradviz.sweeps.charts import sweep_chart

    spec = sweep_chart(_lr_points(0.16), "accuracy", "learning_rate").to_dict()
    rules = [layer for layer in spec["layer"] if layer["mark"] == {"type": "rule", "strokeDash": [2, 3],
                                                                   "strokeWidth": 2, "color": "#555"}]
    assert len(rules) == 1 and "2/λ" in spec["title"]
    data = spec["datasets"][rules[0]["data"]["name"]]
    assert data == [{"x": 0.07, "label": "2/λ"}]


def test_the_learning_rate_law_on_mnist(trained):
    """The named sweep trained: λ is the same at every point (one initialization), 2/λ is the bound
    of the λ measured, and the verdict is computed from the runs."""
    from gradviz.sweeps.grid import run_trained

    preset = SWEEP_PRESETS["learning-rate-law"]
    result = run_trained(preset.spec, trained)
    lambdas = {p["lambda_max_init"] for p in result.points}
    assert len(lambdas) == 1 and result.points[0]["stable_lr"] == pytest.approx(2 / lambdas.pop())
    outcome, why = preset.judge(result)
    assert outcome == "reproduced", why


def test_sweep_cli_json_contract(capsys, real_data_or_skip):
    real_data_or_skip(100)
    assert cli.main(["sweep", "--x", "depth=2:6:3", "--series", "activation=relu,tanh", "--set", "width=32",
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"config", "x", "series", "y", "mode", "points", "seconds"} <= set(report)
    assert report["x"] == {"field": "depth", "values": [2, 4, 6]}
    assert report["series"] == {"field": "activation", "values": ["relu", "tanh"]} and report["y"] is None
    assert report["mode"] == "init" and len(report["points"]) == 6
    for point in report["points"]:
        assert {"x", "series", "y", "ratio_first_last", "forward_rms_last", "predicted_ratio"} <= set(point)
        assert isinstance(point["ratio_first_last"], float) and isinstance(point["predicted_ratio"], float)
    assert cli.main(["sweep", "--sweep", "he2015-depth", "--json"]) == 0
    named = json.loads(capsys.readouterr().out)
    assert named["sweep"]["verdict"] == "reproduced" and named["series"]["field"] == "initializer"


def test_a_trained_sweep_from_the_cli(capsys, real_data_or_skip):
    real_data_or_skip(500)
    assert cli.main(["sweep", "--x", "learning_rate=0.001,0.01", "--set", "width=16", "--set", "depth=2",
                     "--set", "train_size=500", "--train", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "trained" and report["config"]["train_size"] == 500 and report["config"]["epochs"] == 1
    assert [p["x"] for p in report["points"]] == [0.001, 0.01]
    assert all(0 <= p["val_accuracy"] <= 1 and p["diverged_at_step"] is None for p in report["points"])


@pytest.mark.parametrize("args, needle", [
    (["sweep"], "sweep needs --x"),
    (["sweep", "--x", "init_std=0.1,0.2"], "only random_normal and random_uniform read it"),
    (["sweep", "--x", "depth=1:40:40", "--series", "activation=relu,tanh", "--train"], "at most 40 points trained"),
    (["sweep", "--sweep", "no-such"], "sweep='no-such' is not valid"),
])
def test_bad_sweeps_exit_2_with_a_message(args, needle, capsys):
    assert cli.main(args) == 2
    assert needle in capsys.readouterr().err


def open_sweeps(params: dict):
    from streamlit.testing.v1 import AppTest

    from support.apptest import APP

    at = AppTest.from_file(APP, default_timeout=300)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page("pages/Sweeps.py")
    return at.run()


def test_the_sweeps_page_draws_a_named_phase_diagram_with_its_verdict(real_data_or_skip):
    from support.apptest import charts, leaves, no_exception

    real_data_or_skip(100)
    at = open_sweeps({"sweep": "order-to-chaos"})
    no_exception(at)
    spec, rows = next(v for k, v in charts(at).items() if str(k).startswith("Order to chaos"))
    cells, boundary = leaves(spec)
    assert cells["encoding"]["href"]["field"] == "link" and rows[0] == 120  # each cell opens the explorer there
    assert boundary["mark"]["strokeDash"] == [6, 3] and rows[1] == 10  # the chi = 1 line, one point per depth
    assert any(s.value.startswith("**order-to-chaos: reproduced.**") for s in at.success)
    assert at.query_params["sweep"] == "order-to-chaos" and at.query_params["y"].startswith("depth=")


def test_the_sweeps_page_reads_its_link_and_refuses_a_bad_one(real_data_or_skip, monkeypatch):
    from support.apptest import charts, no_exception
    from support.helpers import displayed

    real_data_or_skip(100)
    at = open_sweeps({"x": "depth=2,4,6", "series": "activation=relu,sigmoid", "width": "32"})
    no_exception(at)
    found = charts(at)
    spec, rows = next(v for k, v in found.items() if "solid: measured" in str(k))
    assert rows[0] == 6 and at.query_params["x"] == "depth=2,4,6"
    bad = open_sweeps({"x": "init_std=0.1,0.2", "width": "32"})
    no_exception(bad)
    assert any("only random_normal and random_uniform read it" in displayed(w.value) for w in bad.warning)


def test_a_trained_sweep_over_the_budget_offers_the_largest_that_fits(real_data_or_skip, monkeypatch):
    from gradviz.serving.results import COORDINATOR
    from support.apptest import charts, no_exception
    from support.helpers import displayed

    real_data_or_skip(2000)
    monkeypatch.setenv("GRADVIZ_MAX_EXAMPLES", "3000")
    at = open_sweeps({"x": "depth=1,2,3", "mode": "trained", "width": "16", "train_size": "2000", "epochs": "1",
                      "seed": "77"})
    no_exception(at)
    assert any("at most 3,000 per request" in displayed(w.value) for w in at.warning)
    before = COORDINATOR.trainings_started
    offer = next(b for b in at.button if b.label.startswith("Sweep with 1,000 images x 1 epoch(s) per point"))
    offer.click().run()
    no_exception(at)
    train = next(b for b in at.button if b.label == "Train the sweep")
    train.click().run()
    no_exception(at)
    assert COORDINATOR.trainings_started == before + 3
    assert at.number_input(key="cfg_epochs").value == 1 and at.select_slider(key="cfg_train_size").value == 1000
    # the points are drawn (as each lands, into one slot): one accuracy and one gradient-ratio chart, 3 points each
    drawn = {title: rows for title, (_, rows) in charts(at).items() if str(title).endswith("(measured)")}
    assert set(drawn) == {"validation accuracy (measured)", "first kernel's gradient / output kernel's (measured)"}
    assert all(max(rows) == 3 for rows in drawn.values())  # no theory is claimed for trained points
