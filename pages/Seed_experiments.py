"""The seed article's four experiments, re-run, with computed verdicts."""

from gradviz.ui.seed import seed_page
from gradviz.ui.navigation import show

show(seed_page)
