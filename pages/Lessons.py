"""Lessons with predictions and challenges, built in and a teacher's own."""

from gradviz.ui.navigation import show
from gradviz.ui.pages.lessons import lessons_page

show(lessons_page)
