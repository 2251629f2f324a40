"""Side-by-side comparison: variants as small sets of changes to a base config, and their table."""

from __future__ import annotations

import pandas as pd

from gradviz.config import RunConfig, format_value

VARIANT_KEYS = ("b", "c", "d")  # URL keys of the variants; "A" is the base config itself
LABELS = ("A", "B", "C", "D")


def parse_changes(text: str) -> dict[str, str]:
    """'activation=relu; initializer=he_normal' -> {'activation': 'relu', 'initializer': 'he_normal'}.
    Pieces without '=' are kept under their own name so that validation can report them."""
    changes = {}
    for piece in text.replace(",", ";").split(";"):
        if piece.strip():
            field, _, value = piece.partition("=")
            changes[field.strip()] = value.strip()
    return changes


def build_variants(base: RunConfig, texts: list[str]) -> tuple[list[tuple[str, RunConfig]], list[str]]:
    """[(label, config)] for A and every non-empty variant text, with notes on anything ignored."""
    variants, messages = [("A", base)], []
    for label, text in zip(LABELS[1:], texts):
        if not text.strip():
            continue
        config, notes = RunConfig.coerce(parse_changes(text), base=base)
        messages += [f"{label}: {note}" for note in notes]
        variants.append((label, config))
    return variants, messages


def describe(label: str, config: RunConfig, base: RunConfig) -> str:
    """Legend text: the label and what differs from A."""
    diff = differing_fields([base, config])
    if label == "A" or not diff:
        return f"{label}" + (" (base)" if label == "A" else " (same as A)")
    return f"{label}: " + ", ".join(f"{f}={format_value(getattr(config, f))}" for f in diff)


def differing_fields(configs: list[RunConfig]) -> list[str]:
    """Fields whose value is not the same in every config, in RunConfig order."""
    rows = [c.to_strings() for c in configs]
    return [f for f in rows[0] if len({r[f] for r in rows}) > 1]


def settings_table(variants: list[tuple[str, RunConfig]]) -> pd.DataFrame:
    """One row per field, one column per config (strings, as in links)."""
    return pd.DataFrame({label: config.to_strings() for label, config in variants})
