"""AppState: everything a link reproduces (config, preset, presentation mode), to and from a URL query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gradviz.config import RULES, RunConfig
from gradviz.presets import DEFAULT_PRESET, PRESETS

TRUE_WORDS = ("1", "true", "yes", "on")


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
    params = {str(k): _last(v) for k, v in params.items() if k not in page_keys}
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
