"""Outside text is shown literally, and the server's safety settings are the ones in force."""

import html
import subprocess
import sys

import pytest
from markdown_it import MarkdownIt

from gradviz.ui.text import MAX_SHOWN, WORD_JOINER, literal, literal_lines
from support.helpers import ROOT

HOSTILE = [
    "[click me](https://evil.example/phish)", "![x](http://evil.example/pixel.png)", "**bold** _it_ ~~gone~~",
    "<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "<b id=x>tag</b>", "[js](javascript:alert(1))",
    "`code` ``more``", "$x^2$ and $$y$$", "# heading", "> quote", "1. list", "- item", "| a | b |", "---",
    "<https://evil.example>", "a\\*b\\", "&amp; &#60;b&#62;", ":red[red] :material/home: :smile:",
    "[ref]: https://evil.example", "gvx@evil.example mailto:x@evil.example WWW.evil.example",
    "line\nbreak\r\n\tand\x00nul\x1b[31m", "rtl \u202eevil\u202c zero\u200bwidth",
]


def rendered_text(markdown: str) -> str:
    """CommonMark's rendering of `markdown`, as the text a reader sees; fails if any tag but <p> appears."""
    out = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown).strip()
    assert out.startswith("<p>") and out.endswith("</p>") and out.count("<") == 2, out
    return html.unescape(out[3:-4]).replace(WORD_JOINER, "")  # invisible: it only stops autolinks


@pytest.mark.parametrize("text", HOSTILE)
def test_literal_text_renders_as_itself_and_nothing_else(text):
    """An independent CommonMark renderer shows exactly the characters given: no link, image, tag,
    emphasis, code, heading, list or table; invisible characters appear as their escapes."""
    expected = "".join(repr(ch)[1:-1] if not ch.isprintable() and ch != " " else ch for ch in text)
    assert rendered_text(literal(text)) == expected


def test_long_text_is_cut_and_lines_can_be_kept():
    assert len(rendered_text(literal("x" * 10_000))) == MAX_SHOWN
    assert rendered_text(literal("a" * 400, limit=20)).endswith("...")
    out = MarkdownIt("commonmark").render(literal_lines("first *line*\nsecond [x](y)"))
    assert out == "<p>first *line*<br />\nsecond [x](y)</p>\n"


def effective_config() -> dict[str, str]:
    """`streamlit config show` run where `streamlit run app.py` runs: the options a server gets."""
    shown = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, check=True).stdout
    section, options = "", {}
    for line in shown.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif " = " in line and not line.startswith("#"):
            key, value = line.split(" = ", 1)
            options[f"{section}.{key}"] = value
    return options


def test_the_servers_safety_settings_are_in_force():
    options = effective_config()
    assert options["server.enableXsrfProtection"] == "true"
    assert options["server.enableCORS"] == "true"  # CORS *protection* on: no cross-origin access
    from gradviz.yourmodel.runfile import MAX_FILE_BYTES

    assert int(options["server.maxUploadSize"]) * 2**20 == MAX_FILE_BYTES  # run files only, refused past it
    assert options["server.enableStaticServing"] == "false"
    assert options["server.fileWatcherType"] == '"none"'  # the TOML string, as config show prints it
    assert options["browser.gatherUsageStats"] == "false"
    assert options["client.showErrorDetails"] == '"none"'
