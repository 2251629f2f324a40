"""Diagnosis on constructed results: each rule fires on its evidence, and only then."""

import numpy as np
import pytest

from gradviz.config import RunConfig
from gradviz.diagnosis.diagnose import diagnose
from gradviz.presets import PRESETS, verdict
from gradviz.result import RunResult
from gradviz.signal import theory
from support.results import fake_result


def kinds(findings):
    return [(f.kind, f.severity) for f in findings]


def test_healthy():
    findings = diagnose(fake_result())
    assert kinds(findings) == [("healthy", "info")]
    assert findings[0].fix == {}
    assert "90%" in findings[0].message


def test_a_run_that_learns_slowly_is_not_called_healthy_and_gets_a_hint_without_a_button():
    findings = diagnose(fake_result(loss=(2.3, 1.6), val_accuracy=0.377))
    assert kinds(findings) == [("slow_learning", "info")]
    assert findings[0].fix == {} and "38%" in findings[0].message and "learning rate" in findings[0].message
    assert kinds(diagnose(fake_result(loss=(2.3, 1.0), val_accuracy=0.6))) == [("healthy", "info")]


def test_vanishing_and_not_learning_is_critical_with_numbers_and_fix():
    result = fake_result(RunConfig(depth=2, activation="sigmoid", initializer="glorot_uniform"),
                         grad_first=1e-7, loss=(2.45, 2.31), val_accuracy=0.1, update_first=5e-5)
    findings = diagnose(result)
    assert kinds(findings) == [("vanishing", "critical")]
    f = findings[0]
    assert "1.0e-07" in f.message and "10%" in f.message
    assert f.evidence["grad_norm_ratio_first_last"] == pytest.approx(1e-7)
    assert f.fix == {"activation": "relu", "initializer": "he_normal"}


def test_a_small_gradient_that_adam_still_turns_into_steps_is_not_vanishing():
    """Adam: a small gradient ratio with a falling loss and a moving first layer is healthy, with a note."""
    findings = diagnose(fake_result(grad_first=1e-4, update_first=3e-3))
    assert kinds(findings) == [("healthy", "info")]
    assert "Adam rescales" in findings[0].message and "1.0e-04" in findings[0].message


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
    assert adam.fix == {"learning_rate": pytest.approx(1e-3)}  # a tenth, and at most Adam's usual 1e-3
    big_sgd = diagnose(fake_result(RunConfig(depth=2, optimizer="sgd", learning_rate=3.0), diverged_at=3))[0]
    assert big_sgd.fix == {"learning_rate": pytest.approx(0.3)}  # clipping does not save a huge SGD step
    recurrent = diagnose(fake_result(RunConfig(architecture="rnn", optimizer="sgd", learning_rate=0.01), diverged_at=3))
    assert recurrent[0].fix == {} and "No single change is offered" in recurrent[0].message


def test_dead_units():
    stats = np.array([[0.1, 0.2, 0.8, np.nan], [0.1, 0.2, 0.1, np.nan]])
    findings = diagnose(fake_result(RunConfig(depth=2, learning_rate=0.05), act_stats=stats, init_stats=0))
    dead = next(f for f in findings if f.kind == "dead_units")
    assert "80%" in dead.message and "hidden_01_act" in dead.message
    assert dead.fix == {"learning_rate": pytest.approx(0.001)}
    calm = diagnose(fake_result(act_stats=np.array([[0.1, 0.2, 0.3, np.nan]] * 2)))
    assert not any(f.kind == "dead_units" for f in calm)


def test_saturation():
    stats = np.array([[0.0, 0.9, np.nan, 0.4], [0.0, 0.9, np.nan, 0.7]])
    config = RunConfig(depth=2, activation="tanh", initializer="glorot_uniform")
    findings = diagnose(fake_result(config, act_stats=stats, loss=(20, 19), val_accuracy=0.12))
    sat = next(f for f in findings if f.kind == "saturation")
    assert "70%" in sat.message and "hidden_02_act" in sat.message
    assert sat.fix == {"activation": "relu", "initializer": "he_normal"}


def test_a_model_at_chance_is_never_healthy_and_without_a_cause_gets_no_button():
    findings = diagnose(fake_result(RunConfig(depth=2, learning_rate=1e-6), loss=(2.3, 2.29), val_accuracy=0.11))
    assert kinds(findings) == [("not_learning", "critical")]
    assert findings[0].fix == {} and "No single change is known to fix it" in findings[0].message
    for config in (RunConfig(depth=2), RunConfig(depth=2, activation="tanh", optimizer="sgd")):
        at_chance = diagnose(fake_result(config, loss=(2.3, 2.3), val_accuracy=0.1))
        assert not any(f.kind == "healthy" for f in at_chance)


def init_stats(first_spread: float, last_spread: float) -> np.ndarray:
    """act_stats whose first snapshot (before training) has these activation spreads (std)."""
    stats = np.zeros((1, 2, 4))
    stats[0, :, 1] = first_spread, last_spread
    return stats


def collapsed(config: RunConfig, **kwargs) -> RunResult:
    result = fake_result(config, act_stats=init_stats(0.3, 1e-4), loss=(2.3, 2.3), val_accuracy=0.12, **kwargs)
    result.data["pixel_second_moment"] = 0.1
    return result


def test_zero_weights_are_named_as_the_cause_with_the_activations_initializer():
    for activation, fix in (("relu", {"initializer": "he_normal"}), ("tanh", {"initializer": "glorot_uniform"}),
                            ("selu", {"initializer": "lecun_normal"}), ("gelu", {"initializer": "he_normal"}),
                            ("sigmoid", {"activation": "relu", "initializer": "he_normal"})):  # no init gets chi to 1
        config = RunConfig(depth=2, activation=activation, initializer="zeros")
        findings = diagnose(fake_result(config, grad_first=0.0, loss=(2.3, 2.3), val_accuracy=0.1))
        assert kinds(findings) == [("symmetric_init", "critical")], activation
        assert findings[0].fix == fix and "same gradient" in findings[0].message


def test_a_signal_that_fades_through_depth_names_the_initialization_and_the_theory():
    """He et al. 2015: ReLU with Glorot init. The symptoms that follow (tiny gradients, units at 0)
    are explained by the cause and get no buttons of their own."""
    he_2015 = RunConfig(depth=2, width=256, activation="relu", initializer="glorot_uniform", optimizer="sgd")
    findings = diagnose(collapsed(he_2015, grad_first=1e-5))
    assert kinds(findings) == [("signal_collapse", "critical")]
    f = findings[0]
    assert f.fix == {"initializer": "he_normal"}
    assert f.evidence["signal_ratio"] == pytest.approx(1e-4 / 0.3)
    assert f.evidence["predicted_chi"] == pytest.approx(0.5)  # ReLU halves: chi = sigma_w^2 / 2 = 1/2
    assert "χ" in f.message and "He initialization" in f.message and "hidden_02_act" in f.message


def test_a_random_normal_init_is_fixed_with_the_std_that_puts_chi_at_one():
    small = RunConfig(depth=2, width=256, activation="tanh", initializer="random_normal", init_std=0.01)
    f = diagnose(collapsed(small))[0]
    assert f.kind == "signal_collapse"
    assert f.fix == {"init_std": float(f"{theory.critical_init_std(small, 0.1):.2g}")}
    blown = fake_result(small.replace(activation="linear", init_std=0.2), act_stats=init_stats(0.3, 300.0),
                        val_accuracy=0.5)
    blown.data["pixel_second_moment"] = 0.1
    g = diagnose(blown)[0]
    assert (g.kind, g.severity) == ("signal_blowup", "warning")  # it learns, not well: a warning
    assert g.fix == {"init_std": float(f"{theory.critical_init_std(small.replace(activation='linear'), 0.1):.2g}")}


def test_a_poor_start_the_run_made_up_for_is_told_without_a_fix():
    """A 12-layer GELU net with Glorot and Adam starts with a fading signal and still reaches 91 %:
    the page says so (Adam made up for it) instead of offering a fix the run does not need."""
    config = RunConfig(depth=12, width=128, activation="gelu", initializer="glorot_uniform")
    run = fake_result(config, act_stats=init_stats(1.0, 1e-3), val_accuracy=0.91)
    run.data["pixel_second_moment"] = 0.1
    first, cause = diagnose(run)[:2]
    assert first.kind == "healthy" and (cause.kind, cause.severity, cause.fix) == ("signal_collapse", "info", {})
    assert "learns well (val accuracy 91%)" in cause.message and "with adam" in cause.message
    assert "No single change" not in cause.message
    poor = fake_result(config, act_stats=init_stats(1.0, 1e-3), val_accuracy=0.5)
    poor.data["pixel_second_moment"] = 0.1
    assert diagnose(poor)[0].kind == "signal_collapse" and diagnose(poor)[0].fix  # below 80 %: still fixed


def test_a_fix_names_only_the_fields_it_changes():
    already_he = RunConfig(depth=20, width=32, activation="sigmoid", initializer="he_normal")
    finding = diagnose(fake_result(already_he, grad_first=1e-9, loss=(2.3, 2.29), val_accuracy=0.1))[0]
    assert finding.kind == "vanishing" and finding.fix == {"activation": "relu"}


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
    assert verdict(vanishing, diagnose(fake_result(grad_first=1e-4, update_first=3e-3)))[0] == "not reproduced"
    assert verdict(vanishing, diagnose(fake_result()))[0] == "not reproduced"
    exploding = PRESETS["seed-exploding-linear"]
    outcome, why = verdict(exploding, diagnose(fake_result()))
    assert outcome == "not reproduced" and why.startswith("No exploding finding on this data.")
    healthy = PRESETS["exploding-linear-clipped"]
    assert verdict(healthy, diagnose(fake_result()))[0] == "reproduced"
    assert verdict(healthy, diagnose(fake_result(diverged_at=3)))[0] == "not reproduced"


SGD_SIGMOID = RunConfig(depth=2, activation="sigmoid", initializer="glorot_uniform", optimizer="sgd",
                        learning_rate=10.0)


def test_a_step_past_two_over_lambda_is_the_root_cause_above_what_followed():
    """λ = 8.61 at initialization: SGD's bound is 0.232; lr 10 is 43x it. Saturation that was not
    there at the start follows from it and gets no button of its own."""
    result = fake_result(SGD_SIGMOID, sharpness=[(0, 8.61)], loss=(2.3, 2.3), val_accuracy=0.1,
                         act_stats=[0.5, 0.5, np.nan, 0.95], init_stats=[0.5, 0.2, np.nan, 0.0])
    findings = diagnose(result)
    assert kinds(findings)[:2] == [("step_too_large", "critical"), ("saturation", "warning")]
    step, saturation = findings[:2]
    assert step.evidence["stable_lr"] == pytest.approx(2 / 8.61) and "2/λ = 0.232" in step.message
    assert step.fix == {"learning_rate": pytest.approx(0.1)}
    assert saturation.fix == {} and "followed from the too-large step" in saturation.message


def test_a_symptom_already_there_at_initialization_keeps_its_own_fix():
    result = fake_result(SGD_SIGMOID, sharpness=[(0, 8.61)], loss=(2.3, 2.3), val_accuracy=0.1,
                         act_stats=[0.5, 0.5, np.nan, 0.95])  # saturated before the first step too
    saturation = next(f for f in diagnose(result) if f.kind == "saturation")
    assert saturation.fix and "followed" not in saturation.message


def test_past_the_bound_yet_learning_well_is_the_catapult_told_without_a_fix():
    config = RunConfig(depth=2, optimizer="sgd", learning_rate=0.1)
    findings = diagnose(fake_result(config, sharpness=[(0, 28.4)], val_accuracy=0.89))
    assert kinds(findings) == [("healthy", "info"), ("step_too_large", "info")]
    assert findings[1].fix == {} and "catapult" in findings[1].message


def test_adams_too_large_step_is_read_from_the_update_ratio():
    """No bound in the learning rate alone for Adam: the first steps moving weights by half their
    size are the evidence; the fix is Adam's usual 1e-3."""
    findings = diagnose(fake_result(RunConfig(depth=2, learning_rate=10.0), update_first=0.5, loss=(2.3, 2.3),
                                    val_accuracy=0.1))
    assert findings[0].kind == "step_too_large" and "50%" in findings[0].message
    assert findings[0].fix == {"learning_rate": pytest.approx(1e-3)}
    calm = diagnose(fake_result(RunConfig(depth=2, learning_rate=1e-3), update_first=1e-3))
    assert "step_too_large" not in {f.kind for f in calm}


def test_a_bounded_activation_with_chi_above_one_is_named_the_chaotic_phase():
    """tanh with an orthogonal gain of 4: χ ≈ σ_w² E[φ'²] well above 1; the measured first-step
    gradient grows going back (first/output 30x): the chaotic phase, fixed by the init."""
    config = RunConfig(depth=2, width=256, activation="tanh", initializer="orthogonal", init_gain=4.0)
    result = fake_result(config, grad_first=30.0, loss=(2.3, 2.2), val_accuracy=0.15,
                         act_stats=[0.0, 0.9, np.nan, 0.7])
    result.data = {"pixel_second_moment": 0.1}
    findings = diagnose(result)
    assert findings[0].kind == "chaotic" and findings[0].evidence["predicted_chi"] > 1.5
    assert findings[0].fix == {"initializer": "glorot_uniform"}
    saturation = next(f for f in findings if f.kind == "saturation")  # its symptom, below it, no button
    assert saturation.fix == {} and "followed from the chaotic start" in saturation.message
    result.grad_norm[:, 0] = 0.5  # the measurement does not show the growth: nothing is claimed
    assert "chaotic" not in {f.kind for f in diagnose(result)}


def test_units_dead_before_the_first_step_in_a_narrow_relu_net_ask_for_width():
    config = RunConfig(depth=2, width=8, optimizer="sgd", learning_rate=0.01)
    findings = diagnose(fake_result(config, loss=(2.3, 2.3), val_accuracy=0.1, act_stats=[0.0, 0.1, 0.75, np.nan]))
    assert findings[0].kind == "narrow" and "75%" in findings[0].message and findings[0].fix == {"width": 128}


def test_a_recurrent_net_that_ignores_its_first_half_is_told_so_though_the_gradient_reached_it():
    config = RunConfig(architecture="rnn", width=64, step_pixels=28)
    result = fake_result(config, val_accuracy=0.6)
    result.halves = np.array([0.59, 0.2])  # blanking the first half: -1 point; the second: -40
    found = next(f for f in diagnose(result) if f.kind == "early_steps_ignored")
    assert "59%" in found.message and "20%" in found.message and found.fix == {}
    result.halves = np.array([0.45, 0.2])  # the first half is used
    assert "early_steps_ignored" not in {f.kind for f in diagnose(result)}
    short_steps = fake_result(config.replace(step_pixels=7), val_accuracy=0.6)
    short_steps.halves = np.array([0.6, 0.2])
    assert next(f for f in diagnose(short_steps) if f.kind == "early_steps_ignored").fix == {"step_pixels": 28}


def test_an_extreme_curvature_in_a_run_at_chance_is_not_called_healthy():
    """λ so large that no usual step is stable: the step is told as information, and a run that
    does not learn is still not learning (not 'healthy', which the catapult case earns by learning)."""
    config = RunConfig(depth=2, optimizer="sgd", learning_rate=0.01)
    findings = diagnose(fake_result(config, sharpness=[(0, 3e5)], loss=(2.3, 2.3), val_accuracy=0.1))
    assert "healthy" not in {f.kind for f in findings} and findings[0].severity == "critical"
    assert next(f for f in findings if f.kind == "step_too_large").severity == "info"


def test_adam_at_its_usual_step_with_tiny_weights_is_not_a_step_problem():
    findings = diagnose(fake_result(RunConfig(depth=2, learning_rate=1e-3), update_first=0.5))
    assert "step_too_large" not in {f.kind for f in findings}


def test_a_wide_relu_net_with_dead_units_at_the_start_is_not_called_narrow():
    config = RunConfig(depth=2, width=256, optimizer="sgd", learning_rate=0.01)
    findings = diagnose(fake_result(config, loss=(2.3, 2.3), val_accuracy=0.1, act_stats=[0.0, 0.1, 0.75, np.nan]))
    assert "narrow" not in {f.kind for f in findings}


def test_a_non_finite_sharpness_counts_as_not_measured():
    config = RunConfig(depth=2, optimizer="sgd", learning_rate=10.0)
    result = fake_result(config, sharpness=[(0, np.inf)], loss=(2.3, 2.3), val_accuracy=0.1)
    assert result.sharpness_at_init() is None
    assert "step_too_large" not in {f.kind for f in diagnose(result)}
