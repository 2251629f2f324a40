"""A lesson on the Explorer (`?lesson=NAME&step=K`): the step's text, its prediction answered before
the run and revealed from the run's numbers after it, its challenge checked on every run, and its
locked controls. The teacher's file is trusted Markdown; nothing from a link is rendered as Markdown."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st

from gradviz.diagnosis.diagnose import diagnose
from gradviz.lessons.conditions import Measured, measurements
from gradviz.lessons.lesson import Lesson, Step
from gradviz.lessons.library import load_lessons
from gradviz.result import RunResult
from gradviz.ui.runner import stored_result
from gradviz.ui.session import drop_reference, show_config
from gradviz.urlstate import LESSON_KEYS, Restrictions

LESSON_AT = "lesson_at"  # session key: (lesson name, step index) of the lesson being taken


@dataclass(frozen=True)
class Place:
    lesson: Lesson
    index: int  # 0-based

    @property
    def step(self) -> Step:
        return self.lesson.steps[self.index]

    @property
    def answer_key(self) -> str:
        """Where the answer is kept: named by the question and its choices, so a file edited during
        class never carries an answer over to another question."""
        prediction = self.step.prediction
        words = [prediction.question, *(c.text for c in prediction.choices)] if prediction else []
        digest = hashlib.sha1("|".join(words).encode()).hexdigest()[:12]
        return f"prediction_{self.lesson.name}_{self.index}_{digest}"

    def answer(self) -> int | None:
        """The choice picked for this step's prediction, if any (and still one of its choices)."""
        prediction, picked = self.step.prediction, st.session_state.get(self.answer_key)
        ok = prediction is not None and isinstance(picked, int) and 0 <= picked < len(prediction.choices)
        return picked if ok else None

    def query(self) -> dict[str, str]:
        return {"lesson": self.lesson.name, "step": str(self.index + 1)}


def lesson_place() -> tuple[Place | None, list[str]]:
    """Where this session is in a lesson, and notes on a bad link. A link with `lesson=` (one this
    page did not write itself) goes to its step and loads the step's config into the controls; a
    page switch keeps the lesson; a new link to a configuration without a lesson ends it."""
    link = st.query_params.to_dict()
    linked = {key: str(link[key]) for key in LESSON_KEYS if key in link}
    notes: list[str] = []
    if "lesson" in linked and linked != st.session_state.get("lesson_link"):
        place, notes = _from_link(linked["lesson"], linked.get("step", "1"))
        _enter(place)
    elif "lesson" not in linked and st.session_state.get("fresh_link"):
        st.session_state.pop(LESSON_AT, None)
    at = st.session_state.get(LESSON_AT)
    lessons = load_lessons()[0] if at else {}
    place = Place(lessons[at[0]], at[1]) if at and at[0] in lessons and at[1] < len(lessons[at[0]].steps) else None
    st.session_state.lesson_link = place.query() if place else None
    if place is None:
        st.session_state.pop("step_restrictions", None)
    else:  # the step's locks on top of the teacher link's
        limits = st.session_state.get("restrictions") or Restrictions()
        # The preset picker's titles tell what happens: hidden while a prediction waits for its answer.
        hidden = limits.hidden | ({"preset"} if _waiting_for_prediction(place) else set())
        st.session_state.step_restrictions = Restrictions(limits.locked | set(place.step.locked_fields()), hidden)
    return place, notes


def _from_link(name: str, step: str) -> tuple[Place | None, list[str]]:
    lessons, _ = load_lessons()
    shown = name[:40]  # notes() shows it literally
    if name not in lessons:
        return None, [f"Unknown lesson '{shown}': see the Lessons page for the ones on offer."]
    lesson = lessons[name]
    try:
        index = int(step) - 1
    except ValueError:
        index = -1
    if not 0 <= index < len(lesson.steps):
        return Place(lesson, 0), [f"Lesson '{shown}' has steps 1 to {len(lesson.steps)}: showing step 1."]
    return Place(lesson, index), []


def _enter(place: Place | None) -> None:
    """Go to a step: its config into the controls (once, when the step changes), the run shown at
    once unless a prediction is asked first."""
    if place is None:
        st.session_state.pop(LESSON_AT, None)
        return
    at = (place.lesson.name, place.index)
    if st.session_state.get(LESSON_AT) != at:
        st.session_state[LESSON_AT] = at
        drop_reference()  # another step: the kept run belonged to the last one
        show_config(place.step.config)
        st.session_state.autorun = not _waiting_for_prediction(place)


def _go(place: Place, index: int) -> None:
    _enter(Place(place.lesson, index))


def _leave() -> None:
    st.session_state.pop(LESSON_AT, None)
    st.session_state.pop("step_restrictions", None)


def _waiting_for_prediction(place: Place) -> bool:
    return place.step.prediction is not None and place.answer() is None


def lesson_header(place: Place) -> bool:
    """The step's title and text, its prediction (asked, or revealed later), its challenge and the
    step buttons. Returns False while a prediction waits for its answer: no run is shown before it."""
    lesson, step = place.lesson, place.step
    with st.container(border=True, key="lesson_box"):
        title, close = st.columns([5, 1], vertical_alignment="center")
        title.markdown(f"**{lesson.title}** · step {place.index + 1} of {len(lesson.steps)}")
        close.button("Leave the lesson", key="leave_lesson", on_click=_leave, width="stretch")
        st.markdown(f"#### {step.title}")
        st.markdown(step.text)  # the teacher's own file: trusted Markdown
        _step_buttons(place)
        if _waiting_for_prediction(place):
            _ask(place)
            return False
        if step.challenge is not None:
            st.info(f"**Challenge:** {step.challenge.text}  \nYou may change: {', '.join(step.challenge.change)}.",
                    icon=":material/flag:")
    return True


def _ask(place: Place) -> None:
    prediction = place.step.prediction
    choices = [choice.text for choice in prediction.choices]
    picked = st.radio(f"**Predict first:** {prediction.question}", range(len(choices)), index=None,
                      format_func=choices.__getitem__, key=f"{place.answer_key}_pick")
    st.button("Lock in my answer and run", key="lock_in", type="primary", icon=":material/lock:",
              disabled=picked is None, on_click=_answer, args=(place, picked))


def _answer(place: Place, picked: int | None) -> None:
    if picked is not None:
        st.session_state[place.answer_key] = picked
        st.session_state.autorun = True


def _step_buttons(place: Place) -> None:
    back, forward = st.columns(2)
    if place.index > 0:
        back.button("Previous step", key="lesson_previous", icon=":material/arrow_back:", on_click=_go,
                    args=(place, place.index - 1), width="stretch")
    if place.index + 1 < len(place.lesson.steps):
        forward.button("Next step", key="lesson_next", icon=":material/arrow_forward:", on_click=_go,
                       args=(place, place.index + 1), width="stretch")


def lesson_verdicts(place: Place, result: RunResult, findings: list, config) -> bool:
    """After a run (`findings`: its diagnosis): the prediction's answer from the step's own run, and
    the challenge checked on this run if it is the controls' configuration (`config`). Returns True
    while the challenge is open: the page then keeps the diagnosis's advice back (it would give the
    answer away)."""
    step = place.step
    measured = measurements(result, findings)
    if step.prediction is not None and place.answer() is not None:
        if result.config.cache_key() == step.config.cache_key():
            _reveal(place, measured)
        elif (own := stored_result(step.config)) is not None:
            _reveal(place, measurements(own, diagnose(own)))
    if step.challenge is None:
        return False
    if result.config.cache_key() != config.cache_key():  # the run shown is an earlier one: nothing to judge yet
        st.info("Press **Run** to check this configuration against the challenge.", icon=":material/flag:")
        return True
    check = step.challenge.check(step.config, result.config, measured)
    if check.done:
        st.success(f"**Challenge done.** {check.message}", icon=":material/emoji_events:")
    else:
        st.info(check.message, icon=":material/flag:")
    return not check.done


def _reveal(place: Place, measured: Measured) -> None:
    step = place.step
    reveal = step.reveal(measured)
    chosen = step.prediction.choices[place.answer()]
    right = chosen in reveal.answers
    box = st.success if right else st.warning
    box(f"You predicted: {chosen.text}. {reveal.text}",
        icon=":material/check_circle:" if right else ":material/lightbulb:")
