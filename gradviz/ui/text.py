"""Text from outside the app (links, variant text, error messages) made literal before Streamlit
renders it as Markdown, and the page's shared words and icons."""

from __future__ import annotations

import re
import unicodedata

import streamlit as st

MAX_SHOWN = 600  # characters shown of one message quoting outside text (the quotes are cut shorter)
# Every ASCII punctuation character. CommonMark lets a backslash escape any of them, and an escaped
# character is always shown as itself: no link, image, HTML tag, emphasis, code, math ($),
# Streamlit colour or icon directive (:red[...], :material/...:) and no autolink can start.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Control characters, invisible format characters (bidi overrides, zero-width joiners), line and
# paragraph separators: shown as escapes (\x1b, \u202e) so that what is there can be seen.
_INVISIBLE = ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn")
# GitHub-style autolinks (https://..., www...., name@host) are found in the text *after* escapes are
# resolved, so escaping cannot stop them. They only start after a space or punctuation, or at an
# address after "@": an invisible WORD JOINER there (U+2060) leaves the text as it reads, unlinked.
_AUTOLINK_START = re.compile(r"(?i)(?=https?:|www\.|mailto:|xmpp:)|(?<=@)")
WORD_JOINER = "\u2060"
SEVERITY_ICON = {"critical": ":material/error:", "warning": ":material/warning:", "info": ":material/check_circle:"}


def literal(text: object, limit: int = MAX_SHOWN) -> str:
    """Markdown that shows `text` exactly as written (cut to `limit` characters)."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    visible = "".join(repr(ch)[1:-1] if unicodedata.category(ch) in _INVISIBLE else ch for ch in text)
    unlinked = _AUTOLINK_START.sub(WORD_JOINER, visible)
    return _PUNCTUATION.sub(r"\\\1", unlinked)


def literal_lines(text: object, limit: int = 4 * MAX_SHOWN) -> str:
    """`literal`, keeping the text's line breaks as Markdown line breaks (for multi-line messages)."""
    return "  \n".join(literal(line, limit) for line in str(text)[:limit].splitlines())


def notes(messages: list[str], icon: str = ":material/link_off:") -> None:
    """One warning per note about input that was ignored or replaced; the notes quote what the
    visitor sent, so they are always shown literally."""
    for message in messages:
        st.warning(literal(message), icon=icon)


def finding_line(finding) -> str:
    """A finding as one Markdown line: icon, kind, message (the messages are the app's own)."""
    return f"{SEVERITY_ICON[finding.severity]} **{finding.kind.replace('_', ' ')}** - {finding.message}"
