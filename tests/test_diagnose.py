"""Diagnosis on constructed results: each rule fires on its evidence, and only then."""

import numpy as np
import pytest

from gradviz.config import RunConfig
from gradviz.diagnose import diagnose
from gradviz.presets import PRESETS, verdict
from gradviz.result import RunResult

LAYERS = ["hidden_01", "hidden_02", "output"]
ACTS = ["hidden_01_act", "hidden_02_act"]


def fake_result(config=RunConfig(depth=2), grad_first=1.0, grad_last=1.0, loss=(2.3, 0.3), val_accuracy=0.9,
                update_first=1e-3, global_norm=None, act_stats=None, diverged_at=None, steps=100, per_epoch=50):
    s = steps if diverged_at is None else diverged_at + 1
    grad = np.ones((s, 3))
    grad[:, 0], grad[:, -1] = grad_first, grad_last
    update = np.full((s, 3), 1e-3)
    update[:, 0] = update_first
    pre = np.ones(s) if global_norm is None else np.asarray(global_norm, float)[:s]
    step_loss = np.linspace(loss[0], loss[-1], s)
    if diverged_at is not None:
        step_loss[-1] = grad[-1, :] = np.nan
    snaps = 1 + (s // per_epoch if diverged_at is None else 1)
    stats = np.zeros((snaps, 2, 4)) if act_stats is None else np.broadcast_to(act_stats, (snaps, 2, 4))
    return RunResult(
        config=config, data={}, layers=LAYERS, act_layers=ACTS, steps_per_epoch=per_epoch, total_steps=steps,
        step=np.arange(s), loss=step_loss, accuracy=np.full(s, 0.5), grad_norm=grad, update_ratio=update,
        global_norm_pre=pre, global_norm_post=pre.copy(),
        epoch=np.arange(snaps, dtype=float), epoch_step=np.arange(snaps) * per_epoch,
        train_loss=np.linspace(loss[0], loss[-1], snaps), train_accuracy=np.full(snaps, 0.5),
        val_loss=np.linspace(loss[0], loss[-1], snaps), val_accuracy=np.linspace(0.1, val_accuracy, snaps),
        weight_edges=np.zeros((3, 2)), weight_hist=np.zeros((snaps, 3, 1)), act_edges=np.zeros((2, 2)),
        pooled_edges=np.zeros(2), pooled_hist=np.zeros((snaps, 1)),
        act_hist=np.zeros((snaps, 2, 1)), act_stats=stats, steps_done=s, diverged_at_step=diverged_at,
        first_bad_layer="hidden_02" if diverged_at is not None else None,
        divergence_origin="forward" if diverged_at is not None else None,
    )


def kinds(findings):
    return [(f.kind, f.severity) for f in findings]


def test_healthy():
    findings = diagnose(fake_result())
    assert kinds(findings) == [("healthy", "info")]
    assert findings[0].fix == {}
    assert "90%" in findings[0].message


def test_vanishing_and_not_learning_is_critical_with_numbers_and_fix():
    result = fake_result(RunConfig(depth=2, activation="sigmoid", initializer="glorot_uniform"),
                         grad_first=1e-7, loss=(2.45, 2.31), val_accuracy=0.1, update_first=5e-5)
    findings = diagnose(result)
    assert kinds(findings) == [("vanishing", "critical")]
    f = findings[0]
    assert "1.0e-07" in f.message and "10%" in f.message
    assert f.evidence["grad_norm_ratio_first_last"] == pytest.approx(1e-7)
    assert f.fix == {"activation": "relu", "initializer": "he_normal"}


def test_tiny_gradient_that_still_learns_is_not_critical():
    """Adam: a small gradient ratio with a falling loss and a moving first layer is only info."""
    findings = diagnose(fake_result(grad_first=1e-4, update_first=3e-3))
    assert ("vanishing", "info") in kinds(findings) and ("healthy", "info") in kinds(findings)
    assert "Adam" in next(f for f in findings if f.kind == "vanishing").message


def test_learning_but_first_layer_frozen_is_a_warning():
    findings = diagnose(fake_result(grad_first=1e-5, update_first=1e-6))
    assert kinds(findings)[0] == ("vanishing", "warning")
    assert not any(f.kind == "healthy" for f in findings)


def test_exploding_without_nan():
    growing = np.geomspace(1, 1e4, 100)
    findings = diagnose(fake_result(global_norm=growing, loss=(2.3, 2.2), val_accuracy=0.12))
    assert kinds(findings)[0] == ("exploding", "critical")
    assert "grew" in findings[0].message
    spiky = np.ones(100)
    spiky[70] = 1e3
    assert kinds(diagnose(fake_result(global_norm=spiky)))[0] == ("exploding", "warning")
    big_first = diagnose(fake_result(grad_first=1e3))
    assert kinds(big_first)[0] == ("exploding", "warning")


def test_exploding_fix_targets_the_cause():
    sgd = RunConfig(depth=2, optimizer="sgd", learning_rate=0.01)
    assert diagnose(fake_result(sgd, grad_first=1e3))[0].fix == {"clipnorm": 1.0}
    big_init = RunConfig(depth=2, width=256, activation="tanh", initializer="random_normal", init_std=1.0)
    assert diagnose(fake_result(big_init, grad_first=1e4))[0].fix == {"initializer": "glorot_uniform"}
    adam = RunConfig(depth=2, learning_rate=0.01)
    assert diagnose(fake_result(adam, grad_first=1e3))[0].fix == {"learning_rate": 0.001}


def test_diverged_names_step_and_layer():
    sgd = RunConfig(depth=2, optimizer="sgd", learning_rate=0.01)
    findings = diagnose(fake_result(sgd, diverged_at=30))
    assert kinds(findings)[0] == ("diverged", "critical")
    f = findings[0]
    assert "step 30" in f.message and "hidden_02" in f.message
    assert f.evidence["diverged_at_step"] == 30 and f.fix == {"clipnorm": 1.0}
    assert not any(k == "exploding" for k, _ in kinds(findings))  # one story, not two
    adam = diagnose(fake_result(RunConfig(depth=2, learning_rate=0.1), diverged_at=30))[0]
    assert adam.fix == {"learning_rate": pytest.approx(0.01)}


def test_dead_units():
    stats = np.array([[0.1, 0.2, 0.8, np.nan], [0.1, 0.2, 0.1, np.nan]])
    findings = diagnose(fake_result(RunConfig(depth=2, learning_rate=0.05), act_stats=stats))
    dead = next(f for f in findings if f.kind == "dead_units")
    assert "80%" in dead.message and "hidden_01_act" in dead.message
    assert dead.fix == {"learning_rate": pytest.approx(0.005)}
    calm = diagnose(fake_result(act_stats=np.array([[0.1, 0.2, 0.3, np.nan]] * 2)))
    assert not any(f.kind == "dead_units" for f in calm)


def test_saturation():
    stats = np.array([[0.0, 0.9, np.nan, 0.4], [0.0, 0.9, np.nan, 0.7]])
    config = RunConfig(depth=2, activation="tanh", initializer="glorot_uniform")
    findings = diagnose(fake_result(config, act_stats=stats, loss=(20, 19), val_accuracy=0.12))
    sat = next(f for f in findings if f.kind == "saturation")
    assert "70%" in sat.message and "hidden_02_act" in sat.message
    assert sat.fix == {"activation": "relu", "initializer": "he_normal"}


def test_flowing_but_not_learning_is_a_warning():
    findings = diagnose(fake_result(RunConfig(depth=2, learning_rate=1e-6), loss=(2.3, 2.29), val_accuracy=0.11))
    assert kinds(findings) == [("healthy", "warning")]
    assert findings[0].fix == {"learning_rate": pytest.approx(1e-5)}


def test_adam_clipping_note():
    config = RunConfig(depth=2, clipnorm=1.0)
    result = fake_result(config)
    result.global_norm_post = result.global_norm_pre * 0.5  # clipped on every step
    message = diagnose(result)[0].message
    assert "Clipping was active on 100% of steps" in message and "Adam" in message


def test_verdicts_are_computed_from_findings():
    vanishing = PRESETS["seed-vanishing-sigmoid"]
    critical = diagnose(fake_result(grad_first=1e-7, loss=(2.45, 2.31), val_accuracy=0.1))
    assert verdict(vanishing, critical)[0] == "reproduced"
    assert verdict(vanishing, diagnose(fake_result(grad_first=1e-4, update_first=3e-3)))[0] == "partly"
    assert verdict(vanishing, diagnose(fake_result()))[0] == "not reproduced"
    exploding = PRESETS["seed-exploding-linear"]
    outcome, why = verdict(exploding, diagnose(fake_result()))
    assert outcome == "not reproduced" and why.startswith("No exploding finding on this data.")
    healthy = PRESETS["exploding-linear-clipped"]
    assert verdict(healthy, diagnose(fake_result()))[0] == "reproduced"
    assert verdict(healthy, diagnose(fake_result(diverged_at=3)))[0] == "not reproduced"
