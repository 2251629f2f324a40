"""Explorer: move the controls, train on MNIST, see the gradients vanish or explode."""

from gradviz.ui.explorer import explorer_page
from gradviz.ui.navigation import show

show(explorer_page)
