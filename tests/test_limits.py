"""What one request may ask of the server: the examples budget and the memory cap, their messages,
and the closest config that fits."""

import math

import pytest

from gradviz.config import RULES, RunConfig
from gradviz.serving import cost, limits, settings
from gradviz.serving.limits import MemoryLimit, check_memory, closest_fitting, describe_change
from gradviz.serving.settings import max_memory_mb


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.delenv(settings.MAX_EXAMPLES_ENV, raising=False)
    assert settings.max_examples() == settings.DEFAULT_MAX_EXAMPLES
    monkeypatch.setenv(settings.MAX_EXAMPLES_ENV, "50_000")
    assert settings.max_examples() == 50_000
    for junk in ("-5", "0", "lots", "1e9"):  # a host's typo falls back to the default, it does not crash
        monkeypatch.setenv(settings.MAX_EXAMPLES_ENV, junk)
        assert settings.max_examples() == settings.DEFAULT_MAX_EXAMPLES


def test_over_budget_names_the_numbers_and_within_budget_fits():
    config = RunConfig(epochs=10, train_size=8000)
    assert limits.over_budget(config, 80_000) is None  # exactly at the cap is allowed
    message = limits.over_budget(config, 50_000)
    assert "80,000" in message and "10 epochs" in message and "8,000 images" in message and "50,000" in message
    fitted = limits.within_budget(config, 50_000)
    assert (fitted.epochs, fitted.train_size) == (6, 8000)  # fewer epochs first, images kept
    fitted = limits.within_budget(config, 5_000)
    assert (fitted.epochs, fitted.train_size) == (1, 5000)  # then fewer images
    assert limits.within_budget(config, 80_000) is config
    for limit in (100, 999, 12_345, 300_000):
        fitted = limits.within_budget(RunConfig(epochs=100, train_size=60000, batch_size=64), limit)
        assert limits.examples(fitted) <= max(limit, 100) and fitted.epochs >= 1



def test_memory_cap_from_the_environment(monkeypatch):
    monkeypatch.delenv(settings.MAX_MEMORY_ENV, raising=False)
    assert max_memory_mb() == settings.DEFAULT_MAX_MEMORY_MB
    monkeypatch.setenv(settings.MAX_MEMORY_ENV, "1_500")
    assert max_memory_mb() == 1500
    for junk in ("0", "-1", "a lot", "2.5"):
        monkeypatch.setenv(settings.MAX_MEMORY_ENV, junk)
        assert max_memory_mb() == settings.DEFAULT_MAX_MEMORY_MB


def test_a_config_over_the_cap_is_refused_with_the_numbers_and_the_closest_that_fits():
    config = RunConfig(architecture="cnn", depth=50, width=1024)
    with pytest.raises(MemoryLimit) as refused:
        check_memory(config, "training", cap_mb=800)
    limit = refused.value
    message = str(limit)
    assert f"{limit.estimate.mb:,.0f} MB" in message and "800 MB" in message and "GRADVIZ_MAX_MEMORY_MB" in message
    assert "\n" not in message  # one line, for the CLI and the page
    assert limit.closest is not None and cost.training(limit.closest).mb <= 800
    assert describe_change(config, limit.closest) in message
    # every other setting is kept
    kept = {f for f in RULES if getattr(limit.closest, f) == getattr(config, f)}
    assert len(kept) >= len(RULES) - 2


def test_the_closest_config_changes_the_least_it_can():
    config = RunConfig(depth=40, width=1024, batch_size=2048, train_size=8000)
    size = lambda c: cost.training(c).mb  # noqa: E731
    closest = closest_fitting(config, size, 800)
    assert size(closest) <= 800
    changed = [f for f in RULES if getattr(closest, f) != getattr(config, f)]
    assert len(changed) == 1  # one field is enough here ...
    field = changed[0]
    cut = math.log(getattr(config, field) / getattr(closest, field))
    # ... and no other single change that fits cuts less: each field's largest fitting value cuts at least as much
    for other in ("batch_size", "train_size", "width", "depth"):
        fitting = [v for v in limits._smaller_values(config, other)
                   if size(limits._with(config, other, v)) <= 800]
        if fitting:
            assert math.log(getattr(config, other) / max(fitting)) >= cut - 1e-12, (other, max(fitting), field)


def test_nothing_fits_under_a_cap_below_the_smallest_network():
    assert closest_fitting(RunConfig(), lambda c: cost.training(c).mb, 1) is None
    with pytest.raises(MemoryLimit) as refused:
        check_memory(RunConfig(), "training", cap_mb=1)
    assert refused.value.closest is None and "closest" not in str(refused.value)


def test_a_probe_is_checked_against_its_own_smaller_estimate():
    config = RunConfig(depth=50, width=1024)  # too big to train under 800 MB, small enough to probe
    assert check_memory(config, "probe", cap_mb=800).mb < 800
    with pytest.raises(MemoryLimit):
        check_memory(config, "training", cap_mb=800)
