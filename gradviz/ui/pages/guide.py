"""The Guide page: why gradients vanish or explode and what fixes it, each with a demo link."""

from __future__ import annotations

import streamlit as st

from gradviz.ui.navigation import EXPLORER
from gradviz.ui.pages.guide_content import GUIDE_INTRO, GUIDE_SECTIONS
from gradviz.ui.session import page_config


def guide_page() -> None:
    """Causes and fixes in a few lines each, with a link that opens the explorer on a demo."""
    page_config("guide")
    st.title("Why gradients vanish or explode, and what fixes it")
    st.markdown(GUIDE_INTRO)
    st.latex(r"\frac{\partial L}{\partial h_1} = \frac{\partial L}{\partial h_N}\prod_{k=2}^{N} W_k^{\top}\,"
             r"\mathrm{diag}\big(f'(z_k)\big)")
    for title, text, formula, links in GUIDE_SECTIONS:
        st.subheader(title)
        st.markdown(text)
        if formula:
            st.latex(formula)
        for label, query, *page in links:
            st.page_link(page[0] if page else EXPLORER, label=label, icon=":material/open_in_new:",
                         query_params=query)
