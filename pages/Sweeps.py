"""Sweeps: vary one field over a grid, at initialization beside the theory or trained; phase diagrams."""

from gradviz.ui.navigation import show
from gradviz.ui.pages.sweeps import sweep_page

show(sweep_page)
