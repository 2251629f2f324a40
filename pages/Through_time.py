"""SimpleRNN vs LSTM vs GRU on sequential MNIST: the gradient reaching every time step."""

from gradviz.ui.navigation import show
from gradviz.ui.pages.through_time import through_time_page

show(through_time_page)
