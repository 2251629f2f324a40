"""SimpleRNN vs LSTM vs GRU on sequential MNIST: the gradient reaching every time step."""

from gradviz import ui

ui.through_time_page()
