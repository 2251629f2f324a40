"""Compare 2-4 configurations trained with the same seed and data."""

from gradviz.ui.navigation import show
from gradviz.ui.pages.compare import compare_page

show(compare_page)
