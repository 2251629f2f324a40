"""Lessons: a teacher's TOML steps (config, text, a prediction answered by the run, a challenge), no Streamlit."""

from gradviz.lessons.conditions import Condition, ConditionError, Measured, measurements, parse_condition
from gradviz.lessons.lesson import (
    CONTROLS,
    Challenge,
    ChallengeCheck,
    Choice,
    Lesson,
    LessonError,
    Prediction,
    Reveal,
    Step,
    parse_lesson,
)
from gradviz.lessons.library import BUILTIN_DIR, LESSONS_DIR_ENV, load_lessons

__all__ = ["BUILTIN_DIR", "CONTROLS", "Challenge", "ChallengeCheck", "Choice", "Condition", "ConditionError",
           "LESSONS_DIR_ENV", "Lesson", "LessonError", "Measured", "Prediction", "Reveal", "Step", "load_lessons",
           "measurements", "parse_condition", "parse_lesson"]
