"""The app's pages, titled for people, and their URL paths (the paths of older links are kept)."""

from __future__ import annotations

import streamlit as st

EXPLORER = "pages/explorer.py"
# (file, title, url path). Paths are relative to app.py; the URL paths are what links carry. No page
# icons: a page's icon is also its tab icon, and Streamlit fetches a :material/...: one from a font
# CDN (a third-party request on a class's page) while an emoji needs an emoji font to show.
PAGES = (
    (EXPLORER, "Explorer", ""),
    ("pages/compare.py", "Compare", "Compare"),
    ("pages/seed_experiments.py", "Seed experiments", "Seed_experiments"),
    ("pages/guide.py", "Guide", "Guide"),
    ("pages/through_time.py", "Through time", "Through_time"),
)


def run_app() -> None:
    """app.py's one call: the sidebar's navigation over the pages, then the page the URL names."""
    pages = [st.Page(file, title=title, default=not path, **({"url_path": path} if path else {}))
             for file, title, path in PAGES]
    st.navigation(pages).run()
