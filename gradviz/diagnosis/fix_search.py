"""The fix search: each candidate change tried on the learner's own config, and only a change that
made *this* run learn offered as the fix (no TensorFlow: the trainings come from the caller).

The rule (docs/diagnosis.md): every candidate (gradviz.diagnosis.candidates) trains the learner's
config with that one change, same seed, same images, at most the search budget: the run's own
epochs when they fit in SEARCH_STEPS steps, otherwise as many whole epochs as fit (at least one),
and then the unchanged config at that budget too, so each change is compared with the run as it is.
A change *made it learn* when its run did not diverge, reached LEARNS validation accuracy (three
times chance), left no critical finding, and either beat the unchanged run by IMPROVES or cleared
every problem the unchanged run had without losing accuracy. The search stops at the first change
that made it learn well (LEARNS_WELL, 80 %), or as soon as one made it learn and at least ENOUGH (3)
were tried: the rest would only cost time. The verified fix is the
change that learned with the highest validation accuracy (the first tried, on a tie); where none
learned, none is offered and the rows are the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from gradviz.config import RunConfig
from gradviz.diagnosis.candidates import candidate_changes
from gradviz.diagnosis.diagnose import diagnose
from gradviz.diagnosis.evidence import LEARNS_WELL, Finding
from gradviz.result import RunResult

SEARCH_STEPS = 600  # training steps per candidate at most (whole epochs; at least one)
LEARNS = 0.3  # validation accuracy: three times chance
IMPROVES = 0.05  # or five points above the unchanged run
ENOUGH = 3  # once a change has made it learn, the search stops after this many tries


@dataclass(frozen=True)
class Trial:
    """One row of "What each change did": a change, its run's outcome, and the verdict."""

    change: dict
    val_accuracy: float | None
    diverged_at_step: int | None
    kinds: list[str]  # the problem findings of its run (warning or worse), root cause first
    learned: bool

    def to_json(self) -> dict:
        """A row of `run --find-fix --json`'s `fix_search` (docs/cli.md)."""
        return {"change": self.change, "val_accuracy": self.val_accuracy, "diverged_at_step": self.diverged_at_step,
                "kinds": self.kinds, "learned": self.learned}


def _learns_well(trial: Trial) -> bool:
    return trial.learned and trial.val_accuracy >= LEARNS_WELL


def problems(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings if f.severity in ("critical", "warning")]


def outcome(change: dict, result: RunResult, baseline: Trial | None) -> Trial:
    """A trained candidate (or, with baseline None, the unchanged run) judged by the rule above."""
    findings = diagnose(result)
    kinds, accuracy = problems(findings), result.final()["val_accuracy"]
    learned = False
    if baseline is not None and not result.diverged and accuracy is not None and accuracy >= LEARNS \
            and not any(f.severity == "critical" for f in findings):
        before = baseline.val_accuracy or 0.0
        cleared = bool(baseline.kinds) and not set(kinds) & set(baseline.kinds)
        learned = accuracy >= before + IMPROVES or (cleared and accuracy >= before)
    return Trial(change, accuracy, result.diverged_at_step, kinds, learned)


@dataclass
class FixSearch:
    """A search on one config: the plan (candidates, budget), then the rows as they land."""

    config: RunConfig
    candidates: list[dict]
    epochs: int  # the budget: epochs per trial (the config's own, or fewer)
    baseline: Trial | None = None
    trials: list[Trial] = field(default_factory=list)

    @property
    def whole_run(self) -> bool:
        """The budget is the learner's whole run: a verified fix is verified on exactly it."""
        return self.epochs == self.config.epochs

    def trial_config(self, change: dict) -> RunConfig:
        return self.config.replace(**change, epochs=self.epochs)

    @property
    def done(self) -> bool:
        """Every candidate tried; or one made it learn well; or one made it learn and at least
        ENOUGH were tried (the root cause's own changes come first, so later ones rarely do better)."""
        learned = [t for t in self.trials if t.learned]
        return len(self.trials) == len(self.candidates) or any(_learns_well(t) for t in learned) \
            or (bool(learned) and len(self.trials) >= ENOUGH)

    @property
    def verified_fix(self) -> dict | None:
        """The change that made it learn best, or None (yet, or at all)."""
        learned = [t for t in self.trials if t.learned]
        return max(learned, key=lambda t: t.val_accuracy).change if learned else None

    def budget_text(self) -> str:
        how = "the whole run" if self.whole_run else f"the first {self.epochs} epoch(s) of the run"
        tried = f"{len(self.trials)} of {len(self.candidates)}" if self.trials else f"{len(self.candidates)}"
        stopped = " (stopped once one made it learn)" if self.done and len(self.trials) < len(self.candidates) else ""
        return f"{tried} single changes, each trained on {how} (same seed and images){stopped}"

    def to_json(self) -> dict:
        return {"fix_search": [t.to_json() for t in self.trials], "verified_fix": self.verified_fix}


def plan_search(result: RunResult, findings: list[Finding] | None = None,
                lambda_max: float | None = None) -> FixSearch | None:
    """The search for a finished run, or None where there is nothing to fix.

    Args:
        result: the learner's run.
        findings: its diagnosis (computed if not given).
        lambda_max: the sharpness at initialization, where measured (for a learning rate from it).
    Returns:
        A FixSearch with its candidates and budget; None for a run without a problem finding or
        without a candidate.
    """
    findings = diagnose(result) if findings is None else findings
    if not problems(findings):
        return None
    config = result.config
    changes = candidate_changes(config, findings, lambda_max, result.data.get("pixel_second_moment"))
    if not changes:
        return None
    per_epoch = max(1, result.steps_per_epoch)
    epochs = min(config.epochs, max(1, SEARCH_STEPS // per_epoch))
    search = FixSearch(config, changes, epochs)
    if search.whole_run:
        search.baseline = outcome({}, result, None)
    return search


def run_search(search: FixSearch, train_one: Callable[[RunConfig], RunResult | None]) -> Iterator[Trial]:
    """Train each candidate through `train_one` (the caller's queue, caches and store) and yield its
    row as it lands; `train_one` returning None (refused, stopped) skips that candidate."""
    if search.baseline is None:
        unchanged = train_one(search.trial_config({}))
        if unchanged is None:
            return
        search.baseline = outcome({}, unchanged, None)
    for change in search.candidates[len(search.trials):]:
        if search.done:
            return
        trained = train_one(search.trial_config(change))
        trial = outcome(change, trained, search.baseline) if trained is not None else \
            Trial(change, None, None, ["not trained"], False)
        search.trials.append(trial)
        yield trial
