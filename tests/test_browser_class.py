"""A class and a talk in a real browser: a lesson's prediction, reveal and challenge end to end, a
locked control, a talk moved by a clicker's keys, every slide inside 1280x720, Compare's heatmaps
wide enough to read, and Run in reach without scrolling."""

import re

import pytest
from test_browser import assert_clean, require_browser
from test_class_pages import CLASS_LESSON

from support.live_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, streamlit_server

SMALL = "train_size=2000&epochs=1&depth=2&width=32"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    lessons = tmp_path_factory.mktemp("lessons")
    (lessons / "tiny-class.toml").write_text(CLASS_LESSON)
    with streamlit_server(ARTIFACTS / "streamlit-class.log", env={"GRADVIZ_LESSONS_DIR": str(lessons)}) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context.new_page()
    context.close()


def test_a_lesson_from_the_lessons_page_predict_reveal_then_solve_the_challenge(server, page):
    page.goto(f"{server}/Lessons")
    page.get_by_text("Tiny class").wait_for(timeout=60_000)
    assert page.get_by_text("Initialization").count() >= 1  # the built-ins are listed beside the teacher's
    page.get_by_role("link", name=re.compile("Start: All weights zero")).click()
    page.get_by_text("Will it learn?").wait_for(timeout=60_000)
    assert page.get_by_text("validation accuracy").count() == 0  # no run before the prediction
    page.get_by_text("Yes", exact=True).click()
    page.get_by_role("button", name="Lock in my answer and run").click()
    page.get_by_text("You predicted: Yes").wait_for(timeout=180_000)
    assert page.get_by_text(re.compile(r"The answer: No \(validation accuracy")).count() == 1
    page.get_by_role("button", name="Next step").click()
    page.get_by_text("Reach 50 % changing only the initializer").first.wait_for(timeout=60_000)
    page.get_by_text("Not yet").wait_for(timeout=180_000)
    assert_clean(page)
    page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Initializer", exact=True)) \
        .get_by_role("combobox").click()
    page.keyboard.type("he_normal")  # typed: the list did not always open on a click here
    page.get_by_role("option", name="he_normal", exact=True).wait_for(timeout=10_000)
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Challenge done.").wait_for(timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "lesson-challenge.png"), full_page=True)


def test_a_locked_control_cannot_be_changed(server, page):
    page.goto(f"{server}/?{SMALL}&lock=depth&hide=seed")
    page.get_by_text("Fixed here by your teacher's link or lesson: depth, seed (hidden).").wait_for(timeout=60_000)
    depth = page.locator("[data-testid=stSidebar] input[aria-label^='Depth']")
    depth.wait_for(state="attached", timeout=30_000)
    assert depth.is_disabled() and depth.input_value() == "2"
    depth.click(force=True)  # what a student would try: click the slider, press a key
    page.keyboard.press("ArrowRight")
    page.keyboard.press("End")
    page.wait_for_timeout(1500)
    assert depth.input_value() == "2" and "depth=2" in page.url
    assert page.get_by_test_id("stSidebar").get_by_text("Seed", exact=True).count() == 0


TALK = ("present=1&talk=" + ",".join(f"{SMALL.replace('&', ';')};activation={a}" for a in ("relu", "tanh", "sigmoid")))


def slide_bottom(page) -> float:
    """The lowest visible edge of anything on the slide."""
    return page.evaluate("""() => Math.max(...[...document.querySelectorAll('[data-testid=stMain] *')]
        .map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0).map(r => r.bottom))""")


def test_a_clicker_moves_through_a_talk_and_every_slide_fits_1280x720(server, page):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{server}/?{TALK}")
    page.get_by_role("button", name=re.compile("Start the talk")).wait_for(timeout=120_000)
    seen = []
    for slide, key in enumerate(("PageDown", "PageDown", "ArrowRight"), 1):
        page.keyboard.press(key)
        page.get_by_text(f"{slide} / 3").wait_for(timeout=180_000)
        activation = ("relu", "tanh", "sigmoid")[slide - 1]
        page.get_by_text(re.compile(f"^2 {activation} layers of 32")).wait_for(timeout=180_000)  # named in words
        from playwright.sync_api import expect

        expect(page.locator(".st-key-stage_loss .vega-embed")).to_have_count(1, timeout=60_000)  # old slide gone
        page.wait_for_timeout(1500)
        assert_clean(page)
        seen.append(slide_bottom(page))
        page.screenshot(path=str(ARTIFACTS / f"talk-slide-{slide}.png"))
    assert all(bottom <= 720 - 8 for bottom in seen), seen
    page.keyboard.press("PageUp")
    page.get_by_text("2 / 3").wait_for(timeout=60_000)
    assert "activation=tanh" in page.url
    page.keyboard.press("ArrowLeft")
    page.get_by_text("1 / 3").wait_for(timeout=60_000)


def test_run_is_in_reach_and_compares_heatmaps_are_wide_enough_at_1440(server, page):
    page.goto(f"{server}/?{SMALL}")
    run = page.get_by_role("button", name="Run", exact=True)
    run.wait_for(timeout=60_000)
    box = run.bounding_box()
    assert box and box["y"] + box["height"] <= 900, box
    page.goto(f"{server}/Compare?{SMALL}&b=activation%3Dsigmoid&c=activation%3Dtanh&d=activation%3Dlinear")
    page.get_by_role("button", name="Train all").click()
    page.get_by_text("Gradient heatmaps, one colour scale").wait_for(timeout=240_000)
    page.get_by_text("Findings").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    widths = [page.locator(f".st-key-one_scale_{i} .vega-embed").bounding_box()["width"] for i in range(4)]
    assert min(widths) >= 300, widths
    page.screenshot(path=str(ARTIFACTS / "compare-1440.png"), full_page=True)
