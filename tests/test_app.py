"""The explorer page under Streamlit's AppTest: real script runs, real training, charts read back
from their Vega-Lite specs."""

import json
import re

import pytest

from gradviz.config import RunConfig
from gradviz.presets import PRESETS
from gradviz.serving.results import COORDINATOR
from gradviz.ui import export
from gradviz.urlstate import parse_query
from support.apptest import (
    SMALL,
    charts,
    headline_text,
    heatmap,
    leaves,
    no_exception,
    open_app,
    series_values,
)
from support.helpers import displayed


def test_first_visit_shows_the_deep_sigmoid_story():
    at = open_app()
    no_exception(at)
    assert headline_text(at).startswith("### Vanishing")
    claim = next(c.value for c in at.caption if "seed-vanishing-sigmoid" in c.value)
    assert "heatmap" in claim
    assert at.query_params["preset"] == "seed-vanishing-sigmoid"
    assert any("test split" in c.value for c in at.caption)  # the data in use is named
    spec, rows = heatmap(at)
    layers = spec["layer"][0]
    assert layers["mark"]["type"] == "rect"
    assert layers["encoding"]["y"]["sort"][0] == "hidden_01" and layers["encoding"]["y"]["sort"][-1] == "output"
    assert layers["encoding"]["color"]["field"] == "log10"
    assert rows[0] == 11 * 186  # 186 steps -> 186 bins (< 200) x 11 kernel layers


def test_small_preset_run_yields_charts_and_findings():
    at = open_app({"preset": "exploding-linear", **SMALL})
    no_exception(at)
    assert headline_text(at).startswith("### Diverged")
    found = charts(at)
    spec, rows = heatmap(at)
    marks = [layer.get("mark", {}).get("type") if isinstance(layer.get("mark"), dict) else layer.get("mark")
             for layer in spec["layer"]]
    assert marks == ["rect", "rect", "rule"]  # finite cells, NaN/Inf cells, the divergence step
    assert spec["layer"][1]["mark"]["color"] == "#e4002b"
    assert spec["layer"][2]["encoding"]["x"]["field"] == "step"
    assert rows[0] == 21 * 2 and rows[1] == 21  # two finite steps; the bad step marked on every layer
    assert rows[2] == 1
    loss_layers = leaves(found["Loss"][0])
    assert [leaf["encoding"]["y"]["scale"]["type"] for leaf in loss_layers[:2]] == ["log", "log"]
    assert loss_layers[-1]["mark"]["type"] == "rule"  # the divergence step, marked on the loss too
    assert {"Gradient norm per layer", "Gradient norm across depth", "Update / weight ratio per step (guide: 1e-3)",
            "Accuracy (chance = 10%)"} <= set(found)
    assert re.search(r"diverged at step 2 .*first bad layer is hidden_\d\d", at.error[0].value)
    # one button, the fix search's: a change it trained on this run and saw learn (the table above it)
    fix = [b for b in at.button if b.label.startswith("Apply fix")]
    assert len(fix) == 1 and fix[0].key == "verified_fix"
    assert any("What each change did" in m.value for m in at.markdown)


def test_apply_fix_changes_the_controls_and_shows_the_run_the_search_trained():
    at = open_app({"preset": "seed-vanishing-sigmoid", **SMALL})
    before = COORDINATOR.trainings_started
    button = next(b for b in at.button if b.label.startswith("Apply fix"))
    change = dict(pair.split("=") for pair in button.label.removeprefix("Apply fix: ").split(", "))
    button.click().run()
    no_exception(at)
    linked = parse_query(at.query_params)[0].config  # the link reproduces the fixed config
    assert linked.to_strings() == {**PRESETS["seed-vanishing-sigmoid"].config.to_strings(), **SMALL, **change}
    assert linked.depth == 10 and headline_text(at).startswith("### Healthy")
    assert COORDINATOR.trainings_started == before  # the search trained it already: shown at once


def test_url_params_load_into_the_controls():
    at = open_app({"depth": "3", "width": "32", "activation": "tanh", "learning_rate": "0.003",
                   "batch_norm": "true", "clipvalue": "0.5", "seed": "7", **SMALL})
    no_exception(at)
    assert at.slider(key="cfg_depth").value == 3
    assert at.select_slider(key="cfg_width").value == 32
    assert at.selectbox(key="cfg_activation").value == "tanh"
    assert at.select_slider(key="cfg_learning_rate").value == 0.003
    assert at.toggle(key="cfg_batch_norm").value is True
    assert at.selectbox(key="clip_mode").value == "clipvalue" and at.select_slider(key="clip_value").value == 0.5
    assert at.number_input(key="cfg_seed").value == 7
    assert not at.warning
    assert heatmap(at)[1][0] == 4 * 8  # 3 hidden + output layers x 8 steps


def test_every_control_type_can_be_set_and_lands_in_the_url():
    at = open_app({"depth": "2", "width": "16", **SMALL})
    at.slider(key="cfg_depth").set_value(4)
    at.select_slider(key="cfg_width").set_value(64)
    at.selectbox(key="cfg_activation").set_value("elu")
    at.radio(key="cfg_architecture").set_value("mlp")
    at.toggle(key="cfg_residual").set_value(True)
    at.selectbox(key="cfg_initializer").set_value("random_normal").run()
    at.select_slider(key="cfg_init_std").set_value(0.1)
    at.selectbox(key="cfg_optimizer").set_value("momentum")
    at.select_slider(key="cfg_learning_rate").set_value(0.01)
    at.selectbox(key="clip_mode").set_value("global_clipnorm").run()
    at.select_slider(key="clip_value").set_value(5.0)
    at.number_input(key="cfg_epochs").set_value(2)
    at.number_input(key="cfg_seed").set_value(3)
    at.run()
    no_exception(at)
    expected = {"depth": "4", "width": "64", "activation": "elu", "residual": "true", "initializer": "random_normal",
                "init_std": "0.1", "optimizer": "momentum", "learning_rate": "0.01", "global_clipnorm": "5",
                "epochs": "2", "seed": "3", "train_size": "1024"}
    assert {k: at.query_params.get(k) for k in expected} == expected
    assert any("press **Run**" in i.value for i in at.info)  # a change does not train by itself
    run = next(b for b in at.sidebar.button if b.label == "Run")
    run.click().run()
    no_exception(at)
    assert heatmap(at)[1][0] == 5 * 16  # 4 hidden + output, 2 epochs x 8 steps


def test_junk_url_params_give_messages_and_a_working_page():
    at = open_app({"depth": "999", "activation": "swish", "learning_rate": "nan", "width": "-8",
                   "preset": "no-such-preset", "dropout": "0.5", "seed": "ünïcødé", "epochs": "1" * 5000,
                   "train_size": "1024", "batch_size": "4096"})
    no_exception(at)
    warnings = " | ".join(displayed(w.value) for w in at.warning)
    for needle in ("Unknown preset 'no-such-preset'", "depth='999' is not valid", "activation='swish'",
                   "learning_rate='nan'", "width='-8'", "unknown link parameter 'dropout'", "seed='ünïcødé'",
                   "epochs='1111111", "batch_size='4096' is not valid"):
        assert needle in warnings, needle
    assert len(warnings) < 3000  # a very long value is cut, not echoed whole
    assert at.slider(key="cfg_depth").value == 6  # fell back to the default
    assert heatmap(at)[1][0] > 0  # and the fallback config trained and drew


def test_a_config_seen_before_is_not_retrained():
    params = {"depth": "2", "width": "8", "activation": "relu", **SMALL}
    first = open_app(params)
    no_exception(first)
    count = COORDINATOR.trainings_started
    second = open_app(params)  # a new session, same config
    no_exception(second)
    assert COORDINATOR.trainings_started == count
    assert heatmap(second)[1] == heatmap(first)[1]


def test_a_run_over_the_servers_budget_is_refused_with_a_way_out(monkeypatch):
    """A link asking for more than GRADVIZ_MAX_EXAMPLES trains nothing, says why, keeps the
    settings, and offers the nearest run that fits; one click trains that."""
    monkeypatch.setenv("GRADVIZ_MAX_EXAMPLES", "2500")
    before = COORDINATOR.trainings_started
    at = open_app({"depth": "2", "width": "16", "train_size": "1024", "epochs": "3", "seed": "31"})
    no_exception(at)
    assert COORDINATOR.trainings_started == before
    assert any("3,072 training examples" in w.value and "at most 2,500" in w.value for w in at.warning)
    assert at.number_input(key="cfg_epochs").value == 3  # nothing the visitor chose was lost
    offer = next(b for b in at.button if b.label.startswith("Train 2 epoch(s)"))
    offer.click().run()
    no_exception(at)
    assert COORDINATOR.trainings_started == before + 1
    assert at.number_input(key="cfg_epochs").value == 2 and parse_query(at.query_params)[0].config.epochs == 2
    assert heatmap(at)[1][0] > 0


def test_presentation_mode_from_the_url():
    at = open_app({"preset": "exploding-linear", "present": "1", **SMALL})
    no_exception(at)
    assert at.toggle(key="present").value is True
    assert at.query_params["present"] == "1"
    found = charts(at)
    assert "Gradient norm per layer" not in found and "Forward: the signal through depth" not in found  # tucked away
    assert set(found) == {"Gradient norm per layer and step (log10; dark = small, red = NaN/Inf)", "Loss"}
    spec, _ = heatmap(at)
    assert "windowSize()" in spec["config"]["axis"]["labelFontSize"]["expr"]  # type follows the screen's width
    assert spec["autosize"]["type"] == "fit"  # the whole chart fits the box the page gives it
    assert not at.title  # no page title on the stage
    assert any(m.value.startswith("#### Diverged") for m in at.markdown)
    # A fix appears on stage only once the search has verified it on this run (never trained on stage):
    # none yet, and the slide says why; after the Explorer's search, the very change it verified.
    assert not [b for b in at.button if b.label.startswith("Apply fix")]
    assert any(c.value.startswith("No fix shown until one is tried") for c in at.caption)
    explorer = open_app({"preset": "exploding-linear", **SMALL})
    verified = [b.label for b in explorer.button if b.key == "verified_fix"]
    on_stage = [b.label for b in open_app({"preset": "exploding-linear", "present": "1", **SMALL}).button
                if b.label.startswith("Apply fix")]
    assert verified and on_stage == verified


def test_a_talk_walks_through_its_presets_with_previous_and_next():
    at = open_app({"preset": "exploding-linear", "present": "1", "talk": "exploding-linear,no-such,saturated-tanh"})
    no_exception(at)
    assert any("unknown preset 'no-such'" in displayed(w.value) for w in at.warning)
    labels = [b.label for b in at.button if b.key in ("talk_previous", "talk_next")]
    assert labels == ["Next"]  # first of two: Next only, the next slide's network in its tooltip
    next_button = next(b for b in at.button if b.key == "talk_next")
    assert "10 tanh layers of 256" in next_button.help
    next_button.click().run()
    no_exception(at)
    assert (at.query_params["preset"] == "saturated-tanh"
            and at.query_params["talk"] == "exploding-linear,saturated-tanh")  # the unknown item is gone
    assert any(m.value.startswith("#### ") for m in at.markdown)  # its run is shown (trained now, or cached)
    assert any(m.value.startswith("10 tanh layers of 256") for m in at.markdown)  # the network in words
    assert [b.label for b in at.button if b.key in ("talk_previous", "talk_next")] == ["Previous"]


@pytest.mark.parametrize("chart_name", ["heatmap", "loss"])
def test_export_panel(chart_name):
    at = open_app({"preset": "exploding-linear", **SMALL})
    codes = [c.value for c in at.code]
    link = codes[0]
    assert link.startswith("?") and "optimizer=sgd" in link and "train_size=1024" in link
    snippet = next(c for c in codes if c.startswith("import keras"))
    assert "keras.optimizers.SGD(learning_rate=0.01)" in snippet
    key = RunConfig.from_strings(SMALL, base=PRESETS["exploding-linear"].config).cache_key()
    result = COORDINATOR.cache.get(key)
    assert result is not None
    png = export.chart_file(result, chart_name, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    svg = export.chart_file(result, chart_name, "svg")
    assert svg.lstrip().startswith(b"<svg")
    payload = json.loads(export.run_json(result))
    assert payload["diverged_at_step"] == 2 and len(payload["steps"]) == 3 * 21


def test_a_recurrent_config_in_the_explorer():
    at = open_app({"architecture": "lstm", "width": "16", "step_pixels": "14", **SMALL})
    no_exception(at)
    assert at.selectbox(key="cfg_step_pixels").value == 14
    assert at.slider(key="cfg_depth").disabled
    spec, rows = heatmap(at)
    assert spec["layer"][0]["encoding"]["y"]["sort"] == ["input_kernel", "recurrent_kernel", "output"]
    assert rows[0] == 3 * 8
    assert at.query_params["step_pixels"] == "14"


def test_switching_architectures_back_and_forth_and_leaving_a_preset():
    at = open_app({"preset": "exploding-linear", **SMALL})
    assert at.selectbox(key="preset_pick").value == "(custom)"  # SMALL changed it: not the preset as written
    at = open_app({"preset": "exploding-linear"})
    assert at.selectbox(key="preset_pick").value == "exploding-linear"
    at.slider(key="cfg_depth").set_value(12).run()
    no_exception(at)
    assert at.selectbox(key="preset_pick").value == "(custom)"
    for architecture in ("rnn", "mlp", "lstm", "cnn", "gru"):
        at.radio(key="cfg_architecture").set_value(architecture).run()
        no_exception(at)
        assert at.query_params.get("architecture", "mlp") == architecture


def test_a_full_queue_turns_a_newcomer_away_with_the_closest_run_it_has(monkeypatch):
    """At GRADVIZ_MAX_QUEUE waiting trainings a new request does not queue: the page says the
    server is busy and offers the closest run already there, which shows without training."""
    from support.gate import Holder

    near = {"depth": "2", "width": "16", "activation": "tanh", **SMALL}
    no_exception(open_app(near))  # a run the server has (cached)
    monkeypatch.setenv("GRADVIZ_MAX_QUEUE", "0")
    holder = Holder(COORDINATOR.gate)  # a training is running: with a cap of 0 nobody may wait
    try:
        before = COORDINATOR.trainings_started
        at = open_app({**near, "learning_rate": "0.003"})
        no_exception(at)
        assert any("This server is busy" in w.value and "at most 0" in w.value for w in at.warning)
        offer = next(b for b in at.button if b.label.startswith("Show the closest run it has"))
        assert offer.label == "Show the closest run it has (learning_rate=0.001)"
        offer.click().run()
        no_exception(at)
        assert at.select_slider(key="cfg_learning_rate").value == 0.001
        assert headline_text(at).startswith("###") and heatmap(at)[1][0] == 3 * 8
        assert COORDINATOR.trainings_started == before  # nothing trained: it was there
    finally:
        holder.done()


def test_the_init_view_redraws_on_a_control_change_without_training():
    """Moving a control redraws the At-initialization view for the new model at once: measured
    values that are the probe's, the theory's line beside them, and no training started."""
    from gradviz.signal import probe as signal

    at = open_app({"depth": "3", "width": "32", "activation": "tanh", "initializer": "glorot_uniform", **SMALL})
    no_exception(at)
    before = COORDINATOR.trainings_started
    at.slider(key="cfg_depth").set_value(7).run()
    no_exception(at)
    assert COORDINATOR.trainings_started == before  # no Run pressed: nothing trained
    config = parse_query(at.query_params)[0].config
    assert config.depth == 7
    probe = signal.probe(config)
    forward = series_values(at, "Forward: the signal through depth", "pre-activation RMS (measured)")
    assert forward == pytest.approx(probe.preact_rms)
    backward = series_values(at, "Backward: each kernel's gradient", "batch gradient (measured)")
    assert backward == pytest.approx(probe.grad_norm) and len(backward) == 8
    theory_line = series_values(at, "Forward: the signal through depth", "theory: √q")
    assert theory_line == pytest.approx([q ** 0.5 for q in probe.prediction.preact_var])
    assert any(probe.law == m.value for m in at.markdown)
    at.toggle(key="cfg_batch_norm").set_value(True).run()  # outside the theory: no line, and the law says why
    no_exception(at)
    assert "batch norm" in " ".join(m.value for m in at.markdown)
    assert len(series_values(at, "Forward: the signal through depth", "pre-activation RMS (measured)")) == 8
    with pytest.raises(StopIteration):
        series_values(at, "Forward: the signal through depth", "theory: √q")
    assert COORDINATOR.trainings_started == before
