"""Sweeps: vary one field over a grid, at initialization beside the theory or trained; phase diagrams."""

from gradviz.ui.sweep import sweep_page
from gradviz.ui.navigation import show

show(sweep_page)
