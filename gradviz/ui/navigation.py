"""The app's pages, titled for people, and their URL paths (the paths of older links are kept)."""

from __future__ import annotations

import streamlit as st

EXPLORER = "pages/explorer.py"
# (file, title, url path, icon). Paths are relative to app.py; the URL paths are what links carry.
PAGES = (
    (EXPLORER, "Explorer", "", ":material/insights:"),
    ("pages/compare.py", "Compare", "Compare", ":material/compare_arrows:"),
    ("pages/seed_experiments.py", "Seed experiments", "Seed_experiments", ":material/science:"),
    ("pages/guide.py", "Guide", "Guide", ":material/menu_book:"),
    ("pages/through_time.py", "Through time", "Through_time", ":material/timeline:"),
)


def run_app() -> None:
    """app.py's one call: the sidebar's navigation over the pages, then the page the URL names."""
    pages = [st.Page(file, title=title, icon=icon, default=not path, **({"url_path": path} if path else {}))
             for file, title, path, icon in PAGES]
    st.navigation(pages).run()
