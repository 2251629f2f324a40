"""Causes and fixes of vanishing and exploding gradients, each with a demo link."""

from gradviz import ui

ui.guide_page()
