"""Every fix the app offers fixes the run: each preset, and failure configs built from the
literature, is trained on real MNIST and diagnosed; every finding's fix is applied and trained
again, and the fixed run must learn. Where no single change is offered, the finding says so."""

import pytest

from gradviz.diagnosis.diagnose import diagnose
from gradviz.presets import BASE, PRESETS, verdict
from support.helpers import verdict_from_findings

LEARNS = 0.3  # validation accuracy: three times chance
SMALL = {"train_size": 4000, "epochs": 2}  # the constructed configs are smaller than the presets
LITERATURE = {name: (config.replace(**SMALL), kind) for name, config, kind in (
    # Zero weights: every unit of a layer the same, forever (any activation).
    ("zeros-relu", BASE.replace(initializer="zeros"), "symmetric_init"),
    ("zeros-tanh", BASE.replace(initializer="zeros", activation="tanh"), "symmetric_init"),
    ("zeros-sigmoid", BASE.replace(initializer="zeros", activation="sigmoid"), "symmetric_init"),
    # Glorot & Bengio 2010 with a too-small normal init; He et al. 2015's ReLU with too small a std.
    ("tanh-small-normal", BASE.replace(depth=10, width=256, activation="tanh", initializer="random_normal",
                                       init_std=0.01, optimizer="sgd", learning_rate=0.01), "signal_collapse"),
    ("relu-small-normal", BASE.replace(depth=20, width=256, activation="relu", initializer="random_normal",
                                       init_std=0.03, optimizer="sgd", learning_rate=0.01), "signal_collapse"),
    # Exploding: a linear stack that grows the signal, and a ReLU one that diverges with SGD.
    # The signal blows up at the start, yet Adam trains it past 80 %: told (healthy first, the
    # blow-up as information), not fixed.
    ("linear-big-normal", BASE.replace(depth=20, width=256, activation="linear", initializer="random_normal",
                                       init_std=0.1), "healthy"),
    ("relu-big-normal-sgd", BASE.replace(depth=10, width=256, initializer="random_normal", init_std=0.2,
                                         optimizer="sgd", learning_rate=0.01), "diverged"),
    # Too-large steps, with SGD and with Adam.
    ("sgd-step-3", BASE.replace(optimizer="sgd", learning_rate=3.0), "diverged"),
    ("adam-step-1", BASE.replace(learning_rate=1.0), "step_too_large"),
)}
CASES = {**{name: (preset.config, preset.expect) for name, preset in PRESETS.items()}, **LITERATURE}


@pytest.mark.parametrize("name", list(CASES))
def test_every_offered_fix_makes_the_run_learn(name, trained):
    config, expected = CASES[name]
    findings = diagnose(trained(config))
    kinds = {f.kind for f in findings}
    if name in LITERATURE:
        assert findings[0].kind == expected, [(f.kind, f.severity) for f in findings]
        if name == "linear-big-normal":
            assert [(f.kind, f.severity, f.fix) for f in findings[1:]] == [("signal_blowup", "info", {})]
    else:
        # the verdict the page and the CLI show is the one the findings give
        assert verdict(PRESETS[name], findings)[0] == verdict_from_findings(expected, findings)
    if trained(config).final()["val_accuracy"] < 0.2:
        assert "healthy" not in kinds  # a model at chance is never reported healthy
    for finding in findings:
        if not finding.fix:
            assert finding.severity == "info" or "No single change" in finding.message \
                or "fix that first" in finding.message, finding.message  # a symptom below its cause
            continue
        fixed = trained(config.replace(**finding.fix))
        after = diagnose(fixed)
        assert not fixed.diverged, (finding.kind, finding.fix)
        assert fixed.final()["val_accuracy"] >= LEARNS, (finding.kind, finding.fix, fixed.final())
        assert finding.kind not in {f.kind for f in after if f.severity != "info"}, (finding.fix, after[0].message)
        assert not any(f.severity == "critical" for f in after), (finding.fix, after[0].message)


@pytest.mark.parametrize("name", ["he2015-relu-glorot", "glorot-bengio-tanh-standard", "he2015-relu-he",
                                  "glorot-bengio-tanh-glorot", "seed-vanishing-sigmoid", "exploding-linear"])
def test_the_literatures_initialization_experiments_reproduce(name, trained):
    """He et al. 2015 and Glorot & Bengio 2010: the initialization named as the cause, the fix the
    papers propose offered, and the papers' own fixed versions healthy."""
    preset = PRESETS[name]
    findings = diagnose(trained(preset.config))
    assert verdict(preset, findings)[0] == "reproduced", findings[0].message
    if preset.expect == "signal_collapse":
        assert findings[0].evidence["signal_ratio"] < 1e-2 and "χ" in findings[0].message
        assert findings[0].fix in ({"initializer": "he_normal"}, {"init_std": findings[0].fix.get("init_std")})
