"""RunResult: save -> load round trip, JSON-safe summaries, tidy frames with bounded, consistent rows."""

import dataclasses

import numpy as np

from gradviz.config import RunConfig
from gradviz.training.train import train


def test_save_load_round_trip(tmp_path, tiny_data):
    config = RunConfig(depth=2, width=16, batch_size=32, train_size=256, epochs=2, clipnorm=0.5)
    result = train(config, tiny_data)
    result.save(tmp_path / "run")
    loaded = type(result).load(tmp_path / "run")
    for field in dataclasses.fields(result):
        a, b = getattr(result, field.name), getattr(loaded, field.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=field.name)
            assert a.dtype == b.dtype, field.name
        else:
            assert a == b, field.name
    assert loaded.config == config


def test_frames_are_tidy(tiny_data):
    config = RunConfig(depth=3, width=16, batch_size=32, train_size=256, epochs=2)
    result = train(config, tiny_data)
    steps = result.steps_frame()
    assert len(steps) == len(result.step) * 4
    assert list(steps.columns) == ["step", "layer", "depth", "grad_norm", "update_ratio"]
    first_step = steps[steps.step == 0].sort_values("depth")
    np.testing.assert_array_equal(first_step.grad_norm.to_numpy(), result.grad_norm[0])
    assert list(first_step.layer) == result.layers
    losses = result.loss_frame()
    assert set(losses.split) == {"train", "val"} and len(losses) == 2 * len(result.epoch)
    hist = result.weight_hist_frame()
    assert set(hist["when"]) == {"initial", "current"}
    initial = hist[(hist["when"] == "initial") & (hist.layer == "hidden_01")]
    assert initial["count"].sum() == 784 * 16 and (initial.bin_end > initial.bin_start).all()
    acts = result.act_stats_frame()
    assert len(acts) == len(result.epoch) * 3 and "dead_fraction" in acts


def test_final_and_timing_are_json_safe(tiny_data):
    result = train(RunConfig(depth=1, width=8, batch_size=32, train_size=256, epochs=1), tiny_data)
    final, timing = result.final(), result.timing()
    assert set(final) == {"train_loss", "val_loss", "val_accuracy"}
    assert all(isinstance(v, float) for v in final.values())
    assert timing["steps"] == 8 and timing["seconds"] > 0 and timing["steps_per_second"] > 0
