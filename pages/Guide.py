"""Causes and fixes of vanishing and exploding gradients, each with a demo link."""

from gradviz.ui.navigation import show
from gradviz.ui.pages.guide import guide_page

show(guide_page)
