"""The Lessons page: the lessons on offer (built in, and a teacher's own from GRADVIZ_LESSONS_DIR),
each opening the Explorer on its first step; a teacher's bad file is named with its line."""

from __future__ import annotations

import streamlit as st

from gradviz.lessons.library import LESSONS_DIR_ENV, load_lessons
from gradviz.ui.navigation import EXPLORER
from gradviz.ui.session import page_config
from gradviz.ui.text import literal


def lessons_page() -> None:
    """Every lesson: title, summary, what its steps ask; a link to its first step."""
    page_config("lessons")
    st.title("Lessons")
    st.caption("A lesson is a few steps on the Explorer: predict what a network will do, see it happen, "
               "then change one thing to make it learn. Teachers add their own as TOML files in the folder "
               f"named by `{LESSONS_DIR_ENV}` (see docs/lessons.md).")
    lessons, problems = load_lessons()
    for problem in problems:  # a teacher's file: shown literally, one message each
        st.warning(literal(problem), icon=":material/warning:")
    for name, lesson in lessons.items():
        with st.container(border=True):
            st.markdown(f"#### {lesson.title}")  # the lesson files are the teacher's own: trusted Markdown
            st.markdown(lesson.summary)
            asks = sum(s.prediction is not None for s in lesson.steps)
            challenges = sum(s.challenge is not None for s in lesson.steps)
            st.caption(f"{len(lesson.steps)} steps · {asks} prediction(s) · {challenges} challenge(s) · "
                       f"link: `?lesson={name}&step=1`")
            st.page_link(EXPLORER, label=f"Start: {lesson.steps[0].title}", icon=":material/school:",
                         query_params={"lesson": name, "step": "1"})
