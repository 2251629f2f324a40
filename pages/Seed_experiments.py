"""The seed article's four experiments, re-run, with computed verdicts."""

from gradviz.ui.navigation import show
from gradviz.ui.pages.seed import seed_page

show(seed_page)
