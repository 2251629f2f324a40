"""The app's pages, titled for people, and their URL paths (the paths of older links are kept)."""

from __future__ import annotations

import os
import threading
from typing import Callable

import streamlit as st

EXPLORER = "pages/explorer.py"
# (file, title, url path). Paths are relative to app.py; the URL paths are what links carry, and
# each file is named after its path (see show). No page
# icons: a page's icon is also its tab icon, and Streamlit fetches a :material/...: one from a font
# CDN (a third-party request on a class's page) while an emoji needs an emoji font to show.
PAGES = (
    (EXPLORER, "Explorer", ""),
    ("pages/Compare.py", "Compare", "Compare"),
    ("pages/Lessons.py", "Lessons", "Lessons"),
    ("pages/Seed_experiments.py", "Seed experiments", "Seed_experiments"),
    ("pages/Guide.py", "Guide", "Guide"),
    ("pages/Through_time.py", "Through time", "Through_time"),
    ("pages/Sweeps.py", "Sweeps", "Sweeps"),
    ("pages/Open_a_run.py", "Open a run", "Open_a_run"),
)


_navigating = threading.local()  # set while this script run is inside the app's own navigation


def run_app() -> None:
    """app.py's one call: the sidebar's navigation over the pages, then the page the URL names."""
    # `python -m gradviz view FILE` starts a server on its run file: that page comes first there.
    from gradviz.yourmodel.runfile import VIEW_FILE

    first = "Open_a_run" if os.environ.get(VIEW_FILE) else ""
    pages = [st.Page(file, title=title, default=path == first,
                     **({} if path == first else {"url_path": path or "Explorer"}))
             for file, title, path in PAGES]
    _navigating.active = True
    try:
        st.navigation(pages).run()
    finally:
        _navigating.active = False


def show(render: Callable[[], None]) -> None:
    """A page file's one call: draw the page under the app's navigation.

    With a pages/ folder, Streamlit runs a fresh server's first request through its folder-based
    page list and executes the page file directly (the app's st.navigation has not run yet): a
    first link to /Guide was met by "Page not found" and the sidebar listed "app". Handing over to
    run_app() there puts the app's navigation in place, which runs this file again, inside it."""
    if getattr(_navigating, "active", False):
        render()
    else:
        run_app()
