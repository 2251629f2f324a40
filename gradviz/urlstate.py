"""AppState: everything a link reproduces (config, preset, presentation mode), to and from a URL
query; and a teacher link's locked and hidden controls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gradviz.config import CONTROLS as CONFIG_CONTROLS
from gradviz.config import RULES, RunConfig, control_of
from gradviz.presets import DEFAULT_PRESET, PRESETS

TRUE_WORDS = ("1", "true", "yes", "on")
# Link keys that are not config fields: a teacher's locked and hidden controls, a lesson and its step.
TEACHER_KEYS = ("lock", "hide")
LESSON_KEYS = ("lesson", "step")
# The controls a teacher link can lock or hide: the config's, and the preset picker.
CONTROLS = (*CONFIG_CONTROLS, "preset")


@dataclass(frozen=True)
class Restrictions:
    """Controls a teacher's link (or a lesson step) shows disabled, and ones it leaves out.

    A teaching aid, not a security boundary: a student can edit the link."""
    locked: frozenset = frozenset()
    hidden: frozenset = frozenset()

    def __bool__(self) -> bool:
        return bool(self.locked or self.hidden)

    def fixed(self, control: str) -> bool:
        """True if a student cannot move this control here (locked or hidden)."""
        return control in self.locked or control in self.hidden

    def blocks(self, change: dict) -> list[str]:
        """The controls a change (fields -> values) would move that this link keeps fixed."""
        controls = {control_of(field) for field in change}
        return sorted(c for c in controls if self.fixed(c))

    def query(self) -> dict[str, str]:
        """The link keys that carry these restrictions (empty ones left out)."""
        return {key: ",".join(sorted(names)) for key, names in (("lock", self.locked), ("hide", self.hidden)) if names}


def parse_restrictions(lock: str = "", hide: str = "") -> tuple[Restrictions, list[str]]:
    """`lock=f1,f2` and `hide=f1,f2` from a link -> Restrictions, and a note per unknown name. Never raises."""
    messages, chosen = [], []
    for key, raw in (("lock", lock), ("hide", hide)):
        names = set()
        for name in (n.strip().lower() for n in str(raw).split(",")[:len(RULES) + 3] if n.strip()):
            name = control_of(name)
            if name in CONTROLS:
                names.add(name)
            else:
                shown = name if len(name) <= 40 else name[:37] + "..."
                messages.append(f"{key}: unknown control {shown!r} ignored (controls: {', '.join(CONTROLS)}).")
        chosen.append(frozenset(names))
    return Restrictions(*chosen), messages


@dataclass(frozen=True)
class AppState:
    config: RunConfig
    preset: str | None = None  # set only while config is exactly that preset's config
    present: bool = False  # presentation mode for talks

    @classmethod
    def first_visit(cls) -> "AppState":
        """A striking start for someone who opens the app with no link: deep sigmoid."""
        return cls(PRESETS[DEFAULT_PRESET].config, DEFAULT_PRESET)

    def with_config(self, config: RunConfig) -> "AppState":
        return AppState(config, matching_preset(config, self.preset), self.present)


def matching_preset(config: RunConfig, hint: str | None = None) -> str | None:
    """The preset this config is, if any (the hinted one first)."""
    if hint in PRESETS and PRESETS[hint].config == config:
        return hint
    return next((name for name, p in PRESETS.items() if p.config == config), None)


def _last(value) -> str:
    """Query values may repeat (?a=1&a=2): the last one wins, as in most web apps."""
    if isinstance(value, (list, tuple)):
        return str(value[-1]) if value else ""
    return str(value)


def parse_query(params: Mapping[str, object], page_keys: tuple[str, ...] = ()) -> tuple[AppState, list[str]]:
    """URL query -> AppState plus human-readable notes about anything ignored. Never raises.
    `page_keys` belong to the current page (e.g. Compare's variants) and are left to it."""
    skipped = (*page_keys, *TEACHER_KEYS, *LESSON_KEYS)  # read by the page, the teacher link, the lesson
    params = {str(k): _last(v) for k, v in params.items() if k not in skipped}
    messages = []
    present = params.pop("present", "").strip().lower() in TRUE_WORDS
    preset = params.pop("preset", None)
    if not params and preset is None:
        return AppState(AppState.first_visit().config, DEFAULT_PRESET, present), messages
    base = RunConfig()
    if preset is not None:
        if preset in PRESETS:
            base = PRESETS[preset].config
        else:
            shown = preset if len(preset) <= 40 else preset[:37] + "..."
            messages.append(f"Unknown preset {shown!r} - starting from the default settings.")
            preset = None
    unknown = [k for k in params if k not in RULES]
    for key in unknown:
        shown = key if len(key) <= 40 else key[:37] + "..."
        messages.append(f"Ignored unknown link parameter {shown!r}.")
        params.pop(key)
    config, notes = RunConfig.coerce(params, base=base)
    return AppState(config, matching_preset(config, preset), present), messages + notes


def to_query(state: AppState) -> dict[str, str]:
    """Short, exact links: the preset name when the config is a preset, else the changed fields."""
    query = {"preset": state.preset} if state.preset else state.config.to_strings(only_changed=True)
    # An empty query means "first visit" (the deep-sigmoid preset); the plain defaults need a name.
    query = query or {"architecture": state.config.architecture}
    if state.present:
        query["present"] = "1"
    return query
