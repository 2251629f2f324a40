"""The cost model: parameter counts equal Keras' own, estimates within ±50 % of the peak memory
measured in a fresh process (from the smallest config to the largest the cap allows), every
config in the space refused with a message or under the cap, and the largest allowed configs
staying under the cap when they really run."""

import math

import keras
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradviz.config import RULES, ConfigError, RunConfig
from gradviz.serving import cost
from gradviz.serving.limits import MemoryLimit, check_memory, closest_fitting
from gradviz.serving.settings import DEFAULT_MAX_MEMORY_MB
from gradviz.sweeps.compare import parse_changes
from gradviz.training.models import build_model, tracked_kernels
from support.peak_memory import measure_in_subprocess

SHAPES = [RunConfig(depth=3, width=16), RunConfig(depth=4, width=24, batch_norm=True, residual=True),
          RunConfig(depth=5, width=8, residual=True), RunConfig(architecture="cnn", depth=2, width=8),
          RunConfig(architecture="cnn", depth=5, width=8, batch_norm=True, residual=True),
          RunConfig(architecture="cnn", depth=1, width=16, residual=True),
          RunConfig(architecture="rnn", activation="tanh", width=12, step_pixels=14),
          RunConfig(architecture="lstm", width=12, step_pixels=28),
          RunConfig(architecture="gru", width=12, step_pixels=7)]


@pytest.mark.parametrize("config", SHAPES, ids=lambda c: f"{c.architecture}-{c.depth}-{c.batch_norm}-{c.residual}")
def test_parameter_count_equals_keras(config):
    model = build_model(config)
    assert cost.parameter_count(config) == sum(math.prod(v.shape) for v in model.trainable_weights)
    if config.architecture in ("mlp", "cnn"):  # the same kernel layers, in the same order
        assert [layer.name for layer in cost.kernel_layers(config)] == [name for name, _ in tracked_kernels(model)]
    keras.backend.clear_session()


# (what, config): from tiny to the largest the default cap allows, every architecture. The slowest
# trainings are given few images: a training's peak is reached in its first steps.
MEASURED = [
    ("training", "depth=1; width=8; train_size=100; batch_size=8"),
    ("training", "depth=6; width=128"),
    ("training", "depth=20; width=1024; batch_size=512; train_size=2048"),
    ("training", "depth=10; width=512; batch_norm=true; batch_size=1024; train_size=2048"),
    ("training", "architecture=cnn; depth=3; width=16; batch_norm=true; residual=true; train_size=4000"),
    ("training", "architecture=cnn; depth=6; width=64; train_size=512; batch_size=256"),
    ("training", "architecture=rnn; activation=tanh; step_pixels=7; width=64; train_size=4000"),
    ("training", "architecture=lstm; step_pixels=28; width=512; batch_size=512; train_size=1024"),
    ("training", "architecture=gru; step_pixels=28; width=256; batch_size=512; train_size=1024"),
    ("probe", "architecture=cnn; depth=6; width=64"),
    ("probe", "architecture=gru; step_pixels=28; width=1024"),
    ("probe", "architecture=rnn; activation=relu; step_pixels=4; width=512"),
]  # (the largest allowed MLP's probe, 50 x 1024, is measured below)


@pytest.mark.parametrize("what,changes", MEASURED, ids=[f"{w}:{c}" for w, c in MEASURED])
def test_estimate_is_within_half_of_the_measured_peak(what, changes):
    measured = measure_in_subprocess(what, changes)
    config = RunConfig.from_strings(parse_changes(changes))
    estimate = cost.training(config, measured["images"]) if what == "training" else cost.probe(config)
    print(changes, measured, round(estimate.mb))
    assert 0.5 * measured["peak_mb"] <= estimate.mb <= 1.5 * measured["peak_mb"], (estimate.parts, measured)


def _field(rule):
    if rule.kind == "choice" or rule.choices:
        return st.sampled_from(rule.choices)
    if rule.kind == "bool":
        return st.booleans()
    if rule.kind == "clip":
        return st.none() | st.floats(1e-6, 1e6)
    if rule.kind == "int":
        return st.integers(int(rule.low), int(rule.high))
    return st.floats(rule.low, rule.high)


def _configs():
    """Any valid config: every field drawn from its allowed range (combinations RunConfig refuses,
    such as two clips at once or a batch larger than the images, are drawn again)."""
    def build(values):
        try:
            return RunConfig(**values)
        except ConfigError:
            return None

    return st.fixed_dictionaries({name: _field(rule) for name, rule in RULES.items()}).map(build).filter(
        lambda c: c is not None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_configs())
def test_every_config_is_refused_with_a_message_or_fits_the_cap(config):
    for what in ("training", "probe"):
        estimate = cost.training(config) if what == "training" else cost.probe(config)
        assert math.isfinite(estimate.mb) and estimate.mb > 0
        try:
            assert check_memory(config, what, cap_mb=DEFAULT_MAX_MEMORY_MB).mb <= DEFAULT_MAX_MEMORY_MB
        except MemoryLimit as limit:
            assert f"{estimate.mb:,.0f} MB" in str(limit) and f"{DEFAULT_MAX_MEMORY_MB:,} MB" in str(limit)
            if limit.closest is not None:  # the offer fits, and changes only what can be shrunk
                offered = cost.training(limit.closest) if what == "training" else cost.probe(limit.closest)
                assert offered.mb <= DEFAULT_MAX_MEMORY_MB
                changed = {f for f in RULES if getattr(limit.closest, f) != getattr(config, f)}
                assert changed <= {"batch_size", "train_size", "width", "depth"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_configs(), st.sampled_from(["depth", "width", "batch_size"]))
def test_a_larger_network_never_costs_less(config, field):
    larger = min(getattr(config, field) * 2, int(RULES[field].high))
    try:
        bigger = config.replace(**{field: larger, "train_size": max(config.train_size, larger)})
    except ConfigError:
        return
    assert cost.training(bigger).mb >= cost.training(config).mb - 1e-9
    assert cost.probe(bigger).mb >= cost.probe(config).mb - 1e-9


def largest_allowed(start: RunConfig, what: str) -> RunConfig:
    size = cost.training if what == "training" else cost.probe
    return closest_fitting(start, lambda c: size(c).mb, DEFAULT_MAX_MEMORY_MB)


LARGEST = {  # from the largest of each architecture down to what the default cap allows (few images: quick)
    "mlp": RunConfig(depth=50, width=1024, batch_size=2048, train_size=4096, epochs=1),
    "cnn": RunConfig(architecture="cnn", depth=50, width=1024, batch_size=256, train_size=512, epochs=1),
    "lstm": RunConfig(architecture="lstm", step_pixels=28, width=1024, batch_size=512, train_size=512, epochs=1),
}


@pytest.mark.parametrize("what", ["training", "probe"])
@pytest.mark.parametrize("name", list(LARGEST))
def test_the_largest_allowed_configs_stay_under_the_cap_when_they_run(name, what):
    config = largest_allowed(LARGEST[name], what)
    assert config is not None  # (the largest MLP itself fits when only probed)
    changes = "; ".join(f"{k}={v}" for k, v in config.to_strings(only_changed=True).items())
    measured = measure_in_subprocess(what, changes)
    print(name, what, changes, measured)
    assert measured["peak_mb"] < DEFAULT_MAX_MEMORY_MB
