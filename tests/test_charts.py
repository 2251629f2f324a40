"""The chart builders, read back from their specs: bounded rows however long the run, log scales
where the numbers span decades, NaN/Inf in red, legends that name only what is drawn, whole-number
axes for whole-number fields."""

import numpy as np
import pytest

from gradviz import charts
from gradviz.config import RunConfig
from gradviz.signal.charts import signal_charts
from gradviz.sweeps.charts import phase_chart, sweep_chart
from support.results import fake_result


def spec(chart) -> dict:
    return chart.to_dict()


def layers(chart_spec: dict) -> list[dict]:
    """The unit specs inside nested layers."""
    if "layer" not in chart_spec:
        return [chart_spec]
    return [leaf for sub in chart_spec["layer"] for leaf in layers(sub)]


def rows(chart_spec: dict) -> dict[str, int]:
    return {name: len(values) for name, values in chart_spec.get("datasets", {}).items()}


def test_the_heatmap_has_at_most_200_step_bins_per_layer_however_long_the_run():
    long_run = fake_result(steps=10_000, per_epoch=2_000)
    frame = charts.binned_layers(long_run)
    assert len(frame) <= charts.MAX_STEP_BINS * len(long_run.layers)
    assert frame.step_start.min() == 0 and frame.step_end.max() == long_run.steps_done
    assert max(rows(spec(charts.heatmap_chart(long_run))).values()) <= charts.MAX_STEP_BINS * len(long_run.layers)


def test_non_finite_cells_are_drawn_red_and_the_divergence_step_marked():
    diverged = fake_result(diverged_at=40, steps=100)
    chart = spec(charts.heatmap_chart(diverged))
    marks = [leaf.get("mark") for leaf in layers(chart)]
    assert {"type": "rect", "color": charts.NONFINITE_COLOR} in marks
    bad = charts.binned_layers(diverged)
    assert bad.nonfinite.any() and not np.isfinite(bad[bad.nonfinite].value).any()
    assert any(isinstance(m, dict) and m.get("type") == "rule" for m in marks)  # the divergence step


def test_several_heatmaps_share_one_colour_scale():
    small, large = fake_result(grad_first=1e-6), fake_result(grad_first=1e3)
    domain = charts.shared_log10_domain([small, large])
    assert domain[0] <= -6 and domain[1] >= 3
    colour = layers(spec(charts.heatmap_chart(small, color_domain=domain)))[0]["encoding"]["color"]
    assert colour["scale"]["domain"] == list(domain)


def test_loss_and_gradient_lines_use_log_scales():
    run = fake_result()
    for chart in (charts.loss_chart(run), charts.grad_lines_chart(run), charts.depth_profile_chart(run)):
        scales = [leaf["encoding"]["y"].get("scale", {}) for leaf in layers(spec(chart)) if "y" in leaf["encoding"]]
        assert any(s.get("type") == "log" for s in scales)


@pytest.mark.parametrize("at_init,expected", [(None, ["first epoch", "last epoch"]),
                                              ([0.5, 1.0, 2.0], ["at initialization", "first epoch", "last epoch"])])
def test_the_depth_profile_legend_names_only_the_lines_it_draws(at_init, expected):
    colour = spec(charts.depth_profile_chart(fake_result(), at_init=at_init))["encoding"]["color"]
    assert colour["scale"]["domain"] == expected and len(colour["scale"]["range"]) == len(expected)


def test_the_init_view_draws_the_theory_alone_before_the_measurement():
    config = RunConfig(depth=5, width=64, activation="tanh", initializer="glorot_uniform")
    (forward, forward_spec), (backward, _) = signal_charts(config, None, 0.1)
    assert set(forward.kind) == {"theory"} and set(backward.kind) == {"theory"}
    assert len(forward) == config.depth + 1 and forward_spec["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
    assert "(theory, relative)" in forward_spec["layer"][0]["encoding"]["y"]["title"]


def _points(xs, series=(None,), measured=lambda x: 10.0 ** -x):
    return [{"x": x, "series": s, "y": None, "ratio_first_last": measured(x), "delta_ratio_first_last": measured(x),
             "forward_rms_last": 1.0, "predicted_ratio": 2 * measured(x), "predicted_delta_ratio": 2 * measured(x),
             "predicted_forward_rms_last": 1.0} for s in series for x in xs]


def test_a_sweep_over_a_whole_number_field_has_whole_number_ticks():
    x = spec(sweep_chart(_points([2, 3, 4]), "delta", "depth"))["layer"][1]["encoding"]["x"]
    assert x["axis"] == {"format": "d", "tickMinStep": 1} and x["scale"]["type"] == "linear"
    x = spec(sweep_chart(_points([0.001, 0.01]), "delta", "learning_rate"))["layer"][1]["encoding"]["x"]
    assert x["scale"]["type"] == "log" and "axis" not in x


def test_a_sweep_drops_what_a_log_axis_cannot_show_and_draws_the_theory_dashed():
    points = _points([1, 2, 3], measured=lambda x: 0.0 if x == 2 else 10.0 ** -x)
    chart = spec(sweep_chart(points, "kernel", "depth"))
    measured = sweep_chart(points, "kernel", "depth").layer[1].data
    assert sorted(measured.x) == [1, 3]  # the 0 at x=2 has no place on a log axis
    assert chart["layer"][0]["mark"]["strokeDash"] == [6, 4]


def test_the_phase_diagram_has_one_cell_per_point_and_the_chi_1_line():
    points = [{"x": s, "y": d, "series": None, "delta_ratio_first_last": s ** d, "predicted_delta_ratio": s ** d}
              for s in (0.05, 0.1) for d in (2, 5, 10)]
    chart = phase_chart(points, RunConfig(width=100, initializer="random_normal"), "init_std", "depth",
                        critical=[(1.0, 2), (1.0, 10)])
    cells, line = chart.layer
    assert len(cells.data) == 6 and len(line.data) == 2
    assert cells.data.link.str.startswith("./?").all()
    assert spec(chart)["layer"][0]["encoding"]["y"]["axis"] == {"format": "d", "tickMinStep": 1}


def test_the_sharpness_chart_draws_lambda_against_two_over_eta():
    result = fake_result(RunConfig(depth=2, optimizer="sgd", learning_rate=0.5), sharpness=[(0, 8.0), (100, 2.0)])
    spec = charts.sharpness_chart(result).to_dict()
    points, rule = spec["layer"]
    assert [row["lambda_max"] for row in spec["datasets"][points["data"]["name"]]] == [8.0, 2.0]
    assert spec["datasets"][rule["data"]["name"]] == [{"lambda_max": 4.0}]  # 2 / 0.5
    assert points["encoding"]["y"]["scale"]["type"] == "log" and "2/η = 4" in spec["title"]
