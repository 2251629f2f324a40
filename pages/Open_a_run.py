"""Open a run: a run file recorded on your own Keras model (gradviz.watch), drawn like the Explorer's."""

from gradviz.ui.navigation import show
from gradviz.ui.pages.open_run import open_run_page

show(open_run_page)
