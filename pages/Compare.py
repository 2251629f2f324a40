"""Compare 2-4 configurations trained with the same seed and data."""

from gradviz.ui.compare import compare_page
from gradviz.ui.navigation import show

show(compare_page)
