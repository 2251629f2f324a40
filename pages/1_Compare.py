"""Compare 2-4 configurations trained with the same seed and data."""

from gradviz import ui

ui.compare_page()
