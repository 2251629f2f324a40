"""A lesson: a teacher's TOML file of steps (a config, Markdown, a prediction, a challenge), parsed strictly.

The rules: every key is known (a typo is an error, not ignored); configs, conditions and presets are
checked when the file is read, and an error names the file, the line (tomllib's for a syntax error,
the step's `[[steps]]` header for anything else) and the step. A prediction's answer is never
written by hand: after the run, the choices whose conditions hold on the measured numbers are the
answer. A challenge names the controls a student may change; every other one stays fixed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any, Mapping

from gradviz.config import (
    CLIP_FIELDS,
    CLIPPING,
    CONTROLS,
    RULES,
    ConfigError,
    RunConfig,
    changed_controls,
    control_of,
    format_value,
    parse_value,
)
from gradviz.lessons.conditions import (
    Condition,
    ConditionError,
    Measured,
    explain_clauses,
    parse_condition,
    unmeasured,
)
from gradviz.presets import PRESETS

MAX_BYTES = 64 * 1024
MAX_STEPS = 30
MAX_CHOICES = 10
MAX_TEXT = 5000
MAX_TITLE = 200

TOP_KEYS = {"title": True, "summary": False, "steps": False}  # key -> required (no steps: its own message)
STEP_KEYS = {"title": True, "text": True, "config": False, "lock": False, "prediction": False, "challenge": False}
PREDICTION_KEYS = {"question": True, "choices": True}
CHOICE_KEYS = {"text": True, "when": True}
CHALLENGE_KEYS = {"text": True, "goal": True, "change": True, "solution": True}


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file, the line and the step."""

    def __init__(self, source: str, line: int | None, message: str, step: int | None = None):
        self.source, self.line, self.step = source, line, step
        where = source + (f", line {line}" if line else "") + (f" (step {step})" if step else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Choice:
    text: str
    when: Condition


@dataclass(frozen=True)
class Prediction:
    question: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True)
class Reveal:
    """After the run: which choices hold (none, one or several) and the numbers they were judged on."""

    holds: tuple[bool, ...]  # one per choice
    answers: tuple[Choice, ...]  # the choices that hold
    explanation: str  # the measured numbers, in words

    @property
    def text(self) -> str:
        """One line for the learner: 'The answer: No, it stays near chance (validation accuracy 11.3 %).'"""
        if not self.answers:
            return f"None of the choices: {self.explanation}."
        return f"The answer: {' / '.join(c.text for c in self.answers)} ({self.explanation})."


@dataclass(frozen=True)
class ChallengeCheck:
    done: bool
    goal_met: bool
    changed_outside: tuple[str, ...]  # controls the student moved that the challenge keeps fixed
    message: str


@dataclass(frozen=True)
class Challenge:
    text: str
    goal: Condition
    change: tuple[str, ...]  # controls the student may change (CONTROLS)
    solution: dict  # config field -> value: the teacher's answer key

    def solved(self, step_config: RunConfig) -> RunConfig:
        """The step's config with the solution applied."""
        return with_changes(step_config, self.solution)

    def check(self, step_config: RunConfig, run_config: RunConfig, measured: Measured) -> ChallengeCheck:
        """Done only when the goal holds on the run and the run changed nothing but the allowed controls.

        Args:
            step_config: the step's config, as the lesson gives it.
            run_config: the config the student ran.
            measured: that run's numbers (`measurements(result, diagnose(result))`).
        Returns:
            ChallengeCheck, with a message saying in plain words what is missing.
        """
        goal_met = self.goal.holds(measured)
        outside = tuple(c for c in changed_controls(step_config, run_config) if c not in self.change)
        if outside:
            back = "; ".join(f"{c} back to {_shown(step_config, c)}" for c in outside)
            message = (f"you changed {', '.join(outside)}, which this challenge keeps fixed: set {back} "
                       f"(only {', '.join(self.change)} may change).")
            message = f"The goal is met ({self.goal.explain(measured)}), but {message}" if goal_met \
                else message[0].upper() + message[1:]
        elif goal_met:
            message = f"Done: {self.goal.against_goal(measured)}."
        else:
            message = f"Not yet: {self.goal.against_goal(measured, failing_only=True)}."
        return ChallengeCheck(goal_met and not outside, goal_met, outside, message)


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    config: RunConfig
    locked: tuple[str, ...] = ()
    prediction: Prediction | None = None
    challenge: Challenge | None = None

    def locked_fields(self) -> tuple[str, ...]:
        """The controls a student cannot move here: `lock`, and with a challenge every one not in `change`."""
        locked = set(self.locked)
        if self.challenge is not None:
            locked |= set(CONTROLS) - set(self.challenge.change)
        return tuple(c for c in CONTROLS if c in locked)

    def reveal(self, measured: Measured) -> Reveal:
        """The prediction's answer, computed from the run's numbers.

        Args:
            measured: the step's run (`measurements(result, diagnose(result))`).
        Returns:
            Reveal: which choices hold and the numbers they looked at.
        Raises:
            ValueError: the step has no prediction.
        """
        if self.prediction is None:
            raise ValueError("this step has no prediction")
        choices = self.prediction.choices
        holds = tuple(c.when.holds(measured) for c in choices)
        phrases = explain_clauses([clause for c in choices for clause in c.when.clauses], measured)
        return Reveal(holds, tuple(c for c, h in zip(choices, holds) if h), "; ".join(phrases))


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    summary: str
    steps: tuple[Step, ...]


def _shown(config: RunConfig, control: str) -> str:
    if control == CLIPPING:
        clip = config.clipping
        return f"{clip[0]}={format_value(clip[1])}" if clip else "off"
    return format_value(getattr(config, control))


def with_changes(config: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """`config.replace(**changes)`, where turning one clip field on turns the other two off (one control)."""
    changes = dict(changes)
    if any(changes.get(f) is not None for f in CLIP_FIELDS):
        changes = {**{f: None for f in CLIP_FIELDS}, **changes}
    return config.replace(**changes)


# --- parsing --------------------------------------------------------------------------------------


class _Schema(Exception):
    """A schema error inside one step (or the top level); parse_lesson adds the file and the line."""


def _keys(table: Any, allowed: dict, where: str) -> dict:
    if not isinstance(table, dict):
        raise _Schema(f"{where} must be a table")
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise _Schema(f"unknown key {unknown[0][:40]!r} in {where}; allowed: {', '.join(allowed)}")
    missing = [k for k, required in allowed.items() if required and k not in table]
    if missing:
        raise _Schema(f"{where} needs {missing[0]!r}")
    return table


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Schema(f"{what} must be non-empty text")
    if len(value) > limit:
        raise _Schema(f"{what} has {len(value):,} characters; at most {limit:,}")
    return value.strip()


def _condition(value: Any, what: str, config: RunConfig) -> Condition:
    """A condition that parses and that a run of `config` can answer."""
    if not isinstance(value, str):
        raise _Schema(f"{what} must be a condition in quotes, like \"val_accuracy >= 0.8\"")
    try:
        condition = parse_condition(value)
    except ConditionError as error:
        raise _Schema(f"{what}: {error}") from None
    why = unmeasured(condition, config)
    if why:
        raise _Schema(f"{what}: {why} (this step runs architecture={config.architecture}, "
                      f"optimizer={config.optimizer})")
    return condition


def _controls(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Schema(f"{what} must be a list of control names, like [\"depth\", \"activation\"]")
    unknown = [v for v in value if v not in RULES and v != CLIPPING]
    if unknown:
        raise _Schema(f"{what}: unknown field {unknown[0][:40]!r}; use {', '.join(CONTROLS)}")
    return tuple(dict.fromkeys(control_of(v) for v in value))


def _changes(table: Any, what: str, allow_preset: bool = False) -> tuple[str | None, dict]:
    """A config table -> (preset name, typed field values); `clipping = "off"` turns all clipping off."""
    if not isinstance(table, dict):
        raise _Schema(f"{what} must be a table, like {{ preset = \"seed-vanishing-sigmoid\", depth = 5 }}")
    preset, changes = None, {}
    for key, value in table.items():
        if key == "preset" and allow_preset:
            if not isinstance(value, str) or value not in PRESETS:
                raise _Schema(f"unknown preset {str(value)[:40]!r}; `python -m gradviz presets` lists them")
            preset = value
        elif key == CLIPPING:
            if str(value).strip().lower() not in ("off", "none"):
                raise _Schema(f"{what}: clipping = \"off\" turns clipping off; to turn it on set clipnorm, "
                              "global_clipnorm or clipvalue")
            changes.update({f: None for f in CLIP_FIELDS})
        elif key in RULES:
            changes[key] = parse_value(key, value) if isinstance(value, str) else value
        else:
            extra = "preset, " if allow_preset else ""
            raise _Schema(f"unknown key {key[:40]!r} in {what}; allowed: {extra}{CLIPPING} or a config field "
                          f"({', '.join(RULES)})")
    return preset, changes


def _step_config(table: Any) -> RunConfig:
    preset, changes = _changes(table, "config", allow_preset=True)
    return with_changes(PRESETS[preset].config if preset else RunConfig(), changes)


def _prediction(table: Any, config: RunConfig) -> Prediction:
    table = _keys(table, PREDICTION_KEYS, "prediction")
    choices = table["choices"]
    if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
        raise _Schema(f"a prediction needs a list of 2 to {MAX_CHOICES} choices")
    parsed = []
    for i, choice in enumerate(choices, 1):
        choice = _keys(choice, CHOICE_KEYS, f"choice {i}")
        when = _condition(choice["when"], f"choice {i}", config)
        parsed.append(Choice(_text(choice["text"], f"choice {i}'s text"), when))
    return Prediction(_text(table["question"], "the question"), tuple(parsed))


def _challenge(table: Any, config: RunConfig, locked: tuple[str, ...]) -> Challenge:
    table = _keys(table, CHALLENGE_KEYS, "challenge")
    change = _controls(table["change"], "challenge.change")
    if not change:
        raise _Schema("challenge.change must name at least one control the student may change")
    both = [c for c in change if c in locked]
    if both:
        raise _Schema(f"{both[0]} is both in lock and in challenge.change")
    try:
        _, solution = _changes(table["solution"], "challenge.solution")
        solved = with_changes(config, solution)
    except ConfigError as error:
        raise _Schema(f"challenge.solution: {error}") from None
    outside = sorted({control_of(f) for f in solution} - set(change))
    if outside:
        raise _Schema(f"the solution changes {outside[0]}, which challenge.change does not let the student change")
    if solved == config:
        raise _Schema("the solution leaves the step's config as it is")
    goal = _condition(table["goal"], "challenge.goal", solved)  # the teacher's answer must be able to meet it
    return Challenge(_text(table["text"], "the challenge's text"), goal, change, solution)


def _step(table: Any) -> Step:
    table = _keys(table, STEP_KEYS, "the step")
    config = _step_config(table.get("config", {}))
    locked = _controls(table.get("lock", []), "lock")
    prediction = _prediction(table["prediction"], config) if "prediction" in table else None
    challenge = _challenge(table["challenge"], config, locked) if "challenge" in table else None
    return Step(_text(table["title"], "the step's title", MAX_TITLE), _text(table["text"], "the step's text"),
                config, locked, prediction, challenge)


_HEADER = re.compile(r"^\s*\[\[\s*steps\s*\]\]\s*(#.*)?$")


def _header_lines(text: str) -> list[int]:
    """Line numbers (from 1) of the `[[steps]]` headers, in order."""
    return [n for n, line in enumerate(text.splitlines(), 1) if _HEADER.match(line)]


def _key_line(text: str, key: str) -> int | None:
    """The line of a top-level `key = ...` (before the first table header)."""
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("["):
            return None
        if re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return n
    return None


def _syntax_error(error: tomllib.TOMLDecodeError, source: str) -> LessonError:
    message = str(error)
    found = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if found is None:
        return LessonError(source, None, f"not valid TOML: {message}")
    return LessonError(source, int(found.group(1)), f"not valid TOML: {message[:found.start()]}")


def _top(data: dict, text: str, source: str) -> tuple[str, str, list]:
    """The title, summary and raw steps; an error names the line of the key at fault (else line 1)."""
    key = None
    try:
        unknown = [k for k in data if k not in TOP_KEYS]
        key = unknown[0] if unknown else None
        _keys(data, TOP_KEYS, "the lesson")
        key = "title"
        title = _text(data["title"], "the lesson's title", MAX_TITLE)
        key = "summary"
        summary = _text(data["summary"], "the summary") if "summary" in data else ""
    except _Schema as error:
        raise LessonError(source, (key and _key_line(text, key)) or 1, str(error)) from None
    steps, headers = data.get("steps"), _header_lines(text)
    if not isinstance(steps, list) or not steps:
        raise LessonError(source, _key_line(text, "steps") or 1, "a lesson needs at least one [[steps]] table")
    if len(steps) > MAX_STEPS:
        raise LessonError(source, headers[MAX_STEPS] if len(headers) > MAX_STEPS else None,
                          f"a lesson may have at most {MAX_STEPS} steps; this one has {len(steps)}")
    return title, summary, steps


def parse_lesson(text: str, name: str, source: str | None = None) -> Lesson:
    """Parse and check a lesson file's text.

    Args:
        text: the TOML: `title`, `summary` and `[[steps]]` tables (`title`, `text`, `config`, `lock`,
            `prediction`, `challenge`); gradviz/lessons/builtin/ holds examples.
        name: the lesson's name (its file's stem).
        source: the file name errors name (default `NAME.toml`).
    Returns:
        The Lesson, every config, condition and preset checked.
    Raises:
        LessonError: the message names the file, the line and the step: 'x.toml, line 12 (step 2): depth=500
            is not valid: a whole number from 1 to 50'.
    """
    source = source or f"{name}.toml"
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise LessonError(source, None, f"a lesson file may be at most {MAX_BYTES // 1024} KB")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, source) from None
    title, summary, raw_steps = _top(data, text, source)
    headers = _header_lines(text)
    steps = []
    for number, table in enumerate(raw_steps, 1):
        line = headers[number - 1] if number <= len(headers) else _key_line(text, "steps")
        try:
            steps.append(_step(table))
        except (_Schema, ConfigError) as error:
            raise LessonError(source, line, str(error), number) from None
    return Lesson(name, title, summary, tuple(steps))
