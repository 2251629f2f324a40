"""Explorer: move the controls, train on MNIST, see the gradients vanish or explode."""

from gradviz.ui.navigation import show
from gradviz.ui.pages.explorer import explorer_page

show(explorer_page)
