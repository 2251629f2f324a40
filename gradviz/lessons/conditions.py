"""A lesson's conditions: `val_accuracy >= 80% and not diverged`, parsed without eval and checked on a run's numbers.

The language: clauses joined by ` and `. A clause is `METRIC OP NUMBER` (OP one of <, <=, >, >=, ==,
!=; NUMBER like 0.8, 1e-3, or a percent, 80%, for the metrics that are fractions), `finding KIND` /
`no finding KIND` (a kind the diagnosis reports, docs/diagnosis.md), or `diverged` / `not diverged`.
A clause on a metric the run did not measure (None) does not hold. There is no `or`: a prediction
gives each outcome its own choice.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from gradviz.config import RECURRENT, RunConfig
from gradviz.result import RunResult

# Metric -> how a learner reads it. The fractions (0..1) may be written as percents.
METRICS = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "train_loss": "training loss",
    "ratio_first_last": "first layer's gradient",
    "lambda_max": "sharpness λ at initialization",
    "first_half_blanked": "validation accuracy with the first half of each image blanked",
    "second_half_blanked": "validation accuracy with the second half of each image blanked",
}
FRACTIONS = ("val_accuracy", "first_half_blanked", "second_half_blanked")
# Every kind the diagnosis reports (the table in docs/diagnosis.md; tests/test_lessons.py keeps them equal).
FINDING_KINDS = ("step_too_large", "diverged", "symmetric_init", "signal_collapse", "signal_blowup", "chaotic",
                 "narrow", "vanishing", "exploding", "dead_units", "saturation", "early_steps_ignored",
                 "not_learning", "slow_learning", "healthy")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}
SHOWN_OPERATORS = {"<=": "≤", ">=": "≥", "==": "=", "!=": "≠", "<": "<", ">": ">"}
MAX_CONDITION = 300  # characters
MAX_CLAUSES = 8

_COMPARE = re.compile(r"^([a-z_]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?(%?)$")
_FINDING = re.compile(r"^(no\s+)?finding\s+(\S+)$")
_DIVERGED = re.compile(r"^(not\s+)?diverged$")


class ConditionError(ValueError):
    """A condition that does not parse; the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Measured:
    """The numbers of one run that conditions read (None where the run did not measure it)."""

    val_accuracy: float | None = None
    val_loss: float | None = None
    train_loss: float | None = None
    ratio_first_last: float | None = None
    lambda_max: float | None = None
    first_half_blanked: float | None = None
    second_half_blanked: float | None = None
    diverged_at_step: int | None = None
    findings: frozenset = frozenset()  # the diagnosis's finding kinds

    @property
    def diverged(self) -> bool:
        return self.diverged_at_step is not None

    def value(self, metric: str) -> float | None:
        value = getattr(self, metric)
        return value if value is not None and math.isfinite(value) else None


def measurements(result: RunResult, findings: Iterable) -> Measured:
    """What a condition can read from a run.

    Args:
        result: a finished (or diverged) run.
        findings: its diagnosis (`gradviz.diagnosis.diagnose.diagnose(result)`), Findings or kind names.
    Returns:
        Measured: the final metrics, the gradient ratio, λ at initialization, the halves (recurrent
        nets), where it diverged and the set of finding kinds.
    """
    final = result.final()
    halves = [float(v) for v in result.halves] if len(result.halves) == 2 else [None, None]
    return Measured(
        val_accuracy=final["val_accuracy"], val_loss=final["val_loss"], train_loss=final["train_loss"],
        ratio_first_last=result.grad_norm_ratio_first_last(), lambda_max=result.sharpness_at_init(),
        first_half_blanked=halves[0], second_half_blanked=halves[1], diverged_at_step=result.diverged_at_step,
        findings=frozenset(getattr(f, "kind", f) for f in findings),
    )


def unmeasured(condition: "Condition", config: RunConfig) -> str | None:
    """Why a run of `config` never measures a metric the condition reads, or None if it measures them all.

    λ is measured for MLPs trained with SGD or momentum (gradviz.training.train.measures_sharpness);
    the halves blanked for rnn/lstm/gru.
    """
    for clause in condition.clauses:
        metric = getattr(clause, "metric", None)
        if metric == "lambda_max" and not (config.architecture == "mlp" and config.optimizer in ("sgd", "momentum")):
            return "lambda_max is measured only for an mlp trained with sgd or momentum"
        if metric in ("first_half_blanked", "second_half_blanked") and config.architecture not in RECURRENT:
            return f"{metric} is measured only for {', '.join(RECURRENT)}"
    return None


def _number(metric: str, value: float) -> str:
    if metric in FRACTIONS:
        return f"{100 * value:.1f} %"
    if metric == "ratio_first_last":
        return f"{value:.2g} ×"
    return f"{value:.3g}"


def _kind_words(kind: str) -> str:
    return kind.replace("_", " ")


@dataclass(frozen=True)
class Compare:
    """METRIC OP NUMBER."""

    metric: str
    op: str
    number: float

    def holds(self, m: Measured) -> bool:
        value = m.value(self.metric)
        return value is not None and OPERATORS[self.op](value, self.number)

    def explain(self, m: Measured) -> str:
        """The measured number in words: 'validation accuracy 45.2 %'."""
        value = m.value(self.metric)
        if value is None:
            why = " (only MLPs trained with SGD or momentum)" if self.metric == "lambda_max" else ""
            return f"{METRICS[self.metric]} not measured{why}"
        if self.metric == "ratio_first_last":
            return f"first layer's gradient {value:.2g} × the last layer's"
        if self.metric == "lambda_max":
            return f"sharpness λ at initialization {value:.3g} (plain SGD is stable below 2/λ = {2 / value:.3g})" \
                if value > 0 else f"sharpness λ at initialization {value:.3g}"
        return f"{METRICS[self.metric]} {_number(self.metric, value)}"

    def goal(self) -> str:
        """What the clause asks for: '≥ 80 %'."""
        shown = f"{100 * self.number:g} %" if self.metric in FRACTIONS else f"{self.number:g}"
        return f"{SHOWN_OPERATORS[self.op]} {shown}"


@dataclass(frozen=True)
class HasFinding:
    """`finding KIND` (present=True) or `no finding KIND`."""

    kind: str
    present: bool = True

    def holds(self, m: Measured) -> bool:
        return (self.kind in m.findings) == self.present

    def explain(self, m: Measured) -> str:
        found = ", ".join(_kind_words(k) for k in sorted(m.findings)) or "nothing"
        verb = "found" if self.kind in m.findings else "did not find"
        return f"the diagnosis {verb} {_kind_words(self.kind)} (it found: {found})"

    def goal(self) -> str:
        return f"{'' if self.present else 'no '}{_kind_words(self.kind)} finding"


@dataclass(frozen=True)
class Diverged:
    """`diverged` (expected=True) or `not diverged`."""

    expected: bool = True

    def holds(self, m: Measured) -> bool:
        return m.diverged == self.expected

    def explain(self, m: Measured) -> str:
        return f"diverged at step {m.diverged_at_step}" if m.diverged else "did not diverge"

    def goal(self) -> str:
        return "it diverges" if self.expected else "no divergence"


Clause = Compare | HasFinding | Diverged


@dataclass(frozen=True)
class Condition:
    """Clauses that must all hold, with the text they were parsed from."""

    text: str
    clauses: tuple

    def holds(self, measured: Measured) -> bool:
        """True when every clause holds (a clause on an unmeasured metric does not)."""
        return all(clause.holds(measured) for clause in self.clauses)

    def phrases(self, measured: Measured) -> list[str]:
        """The measured numbers each clause looked at, in words, each said once (metrics first)."""
        return explain_clauses(self.clauses, measured)

    def explain(self, measured: Measured) -> str:
        """The numbers this condition looked at, for a learner: 'validation accuracy 45.2 %; did not diverge'."""
        return "; ".join(self.phrases(measured))

    def against_goal(self, measured: Measured, failing_only: bool = False) -> str:
        """Each clause's number beside what it asks for: 'validation accuracy 45.2 % (goal: ≥ 80 %)'."""
        clauses = [c for c in self.clauses if not (failing_only and c.holds(measured))]
        return "; ".join(dict.fromkeys(f"{c.explain(measured)} (goal: {c.goal()})" for c in clauses))


def _rank(clause: Clause) -> tuple[int, int]:
    if isinstance(clause, Compare):
        return 0, list(METRICS).index(clause.metric)
    return (1, 0) if isinstance(clause, Diverged) else (2, 0)


def explain_clauses(clauses: Iterable[Clause], measured: Measured) -> list[str]:
    """The numbers some clauses (of one condition or several) looked at: each once, the metrics first,
    then divergence, then the findings."""
    return list(dict.fromkeys(c.explain(measured) for c in sorted(clauses, key=_rank)))


def _parse_number(metric: str, text: str, clause: str) -> float:
    match = _NUMBER.match(text)
    if not match:
        raise ConditionError(f"{text!r} in {clause!r} is not a number: write it like 0.8, 1e-3 or 80%")
    percent = bool(match.group(4))
    number = float(text.rstrip("%")) / (100 if percent else 1)
    if percent and metric not in FRACTIONS:
        raise ConditionError(f"{clause!r}: a percent fits only {', '.join(FRACTIONS)}; write {metric} as a number")
    if metric in FRACTIONS and not percent and number > 1:
        raise ConditionError(f"{clause!r}: {metric} is a fraction from 0 to 1; write {number / 100:g} or {text}%")
    return number


def _parse_clause(clause: str) -> Clause:
    if match := _DIVERGED.match(clause):
        return Diverged(expected=not match.group(1))
    if match := _FINDING.match(clause):
        if match.group(2) not in FINDING_KINDS:
            raise ConditionError(f"unknown finding kind {match.group(2)[:40]!r}: use one of {', '.join(FINDING_KINDS)}")
        return HasFinding(match.group(2), present=not match.group(1))
    match = _COMPARE.match(clause)
    if match is None:
        name = clause.split()[0] if clause.split() else clause
        if re.fullmatch(r"[a-z_]+", name) and name not in METRICS and name not in ("finding", "no", "not"):
            raise ConditionError(f"unknown metric {name[:40]!r}: use one of {', '.join(METRICS)}, or finding KIND, "
                                 "no finding KIND, diverged, not diverged")
        raise ConditionError(f"{clause[:60]!r} is not METRIC OP NUMBER (OP one of {', '.join(SHOWN_OPERATORS)}), "
                             "finding KIND, no finding KIND, diverged or not diverged")
    metric, op, number = match.groups()
    if metric not in METRICS:
        raise ConditionError(f"unknown metric {metric[:40]!r}: use one of {', '.join(METRICS)}, or finding KIND, "
                             "no finding KIND, diverged, not diverged")
    return Compare(metric, op, _parse_number(metric, number, clause))


def parse_condition(text: str) -> Condition:
    """Parse a condition; never evaluates code.

    Args:
        text: clauses joined by ' and ', e.g. 'val_accuracy >= 80% and not diverged'.
    Returns:
        The Condition.
    Raises:
        ConditionError: empty, too long, an `or`, an unknown metric or finding kind, or a bad number.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("empty condition: write one like 'val_accuracy >= 0.8'")
    if len(text) > MAX_CONDITION:
        raise ConditionError(f"a condition may have at most {MAX_CONDITION} characters")
    clauses = re.split(r"\s+and\s+", text.strip())
    if len(clauses) > MAX_CLAUSES:
        raise ConditionError(f"a condition may join at most {MAX_CLAUSES} clauses")
    if any(re.search(r"(^|\s)or(\s|$)", c) for c in clauses):
        raise ConditionError("only 'and' joins clauses; for 'or', give each outcome its own choice")
    return Condition(text.strip(), tuple(_parse_clause(" ".join(c.split())) for c in clauses))
