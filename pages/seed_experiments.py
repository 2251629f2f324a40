"""The seed article's four experiments, re-run, with computed verdicts."""

from gradviz.ui.seed import seed_page

seed_page()
