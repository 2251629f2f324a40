"""The seed article's four experiments, re-run, with computed verdicts."""

from gradviz import ui

ui.seed_page()
