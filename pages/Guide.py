"""Causes and fixes of vanishing and exploding gradients, each with a demo link."""

from gradviz.ui.guide import guide_page
from gradviz.ui.navigation import show

show(guide_page)
