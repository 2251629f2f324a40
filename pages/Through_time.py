"""SimpleRNN vs LSTM vs GRU on sequential MNIST: the gradient reaching every time step."""

from gradviz.ui.through_time import through_time_page
from gradviz.ui.navigation import show

show(through_time_page)
