"""A talk: the slides a link's `talk=` names, in order. Each item is a preset's name, a lesson
(`lesson:NAME`, one slide per step) or a configuration written as `field=value;field=value` over
the defaults; anything else is left out with a note. Never raises."""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import groupby
from typing import Mapping

from gradviz.config import RunConfig
from gradviz.presets import PRESETS
from gradviz.sweeps.compare import parse_changes
from gradviz.words import network_in_words

MAX_SLIDES = 40  # a talk longer than this is cut, with a note


@dataclass(frozen=True)
class Slide:
    config: RunConfig
    title: str  # what the slide shows, in words
    item: str = ""  # the link's item it came from (a lesson's steps share one)
    position: int = 0  # that item's place in the link


def talk_link(slides: list[Slide]) -> str:
    """The `talk=` value for these slides: the items kept, in order (the ones left out are gone; a
    lesson's slides share one item, and an item given twice stays twice)."""
    return ",".join(next(group).item for _, group in groupby(slides, key=lambda slide: slide.position))


def parse_talk(raw: str, lessons: Mapping[str, object] | None = None) -> tuple[list[Slide], list[str]]:
    """`talk=` from a link -> its slides, and a note per item left out or value changed.

    Args:
        raw: the link's value, items separated by commas.
        lessons: name -> Lesson (gradviz.lessons), for `lesson:NAME` items.
    Returns:
        (slides in order, notes for the page).
    """
    slides, notes = [], []
    items = [part.strip() for part in str(raw).split(",") if part.strip()]
    for position, item in enumerate(items):
        if len(slides) >= MAX_SLIDES:
            notes.append(f"Talk: only the first {MAX_SLIDES} slides are kept.")
            break
        found, note = _slides_of(item, lessons or {}, len(slides) + 1)
        slides += [replace(slide, position=position) for slide in found]
        notes += [note] if note else []
    return slides[:MAX_SLIDES], notes


def _slides_of(item: str, lessons: Mapping[str, object], number: int) -> tuple[list[Slide], str | None]:
    shown = item if len(item) <= 40 else item[:37] + "..."
    if item in PRESETS:
        return [Slide(PRESETS[item].config, network_in_words(PRESETS[item].config), item)], None
    if item.startswith("lesson:"):
        lesson = lessons.get(item.removeprefix("lesson:"))
        if lesson is None:
            return [], f"Talk: unknown lesson {shown!r} left out of the sequence."
        return [Slide(step.config, step.title, item) for step in lesson.steps], None
    if "=" in item:
        config, changed = RunConfig.coerce(parse_changes(item), base=RunConfig())
        note = f"Talk slide {number}: " + " ".join(changed) if changed else None
        return [Slide(config, network_in_words(config), item)], note
    return [], f"Talk: unknown preset {shown!r} left out of the sequence."
