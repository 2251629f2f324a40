"""gradviz explorer: move the controls, train on MNIST, see the gradients vanish or explode."""

from gradviz import ui

ui.explorer_page()
