"""A real browser against a real server: `streamlit run app.py` driven by Debian's chromium through
Playwright. Skips on a machine without a browser (saying why); in CI a missing browser fails."""

import os
import re
import time

import pytest

from live_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_missing, streamlit_server


def require_browser():
    reason = browser_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {reason}")
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)


SERVER_LOG = ARTIFACTS / "streamlit.log"


@pytest.fixture(scope="module")
def server():
    require_browser()
    with streamlit_server(SERVER_LOG) as (url, _):
        yield url


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1700})
        browser.close()


def assert_clean(page) -> None:
    assert page.get_by_test_id("stException").count() == 0
    assert "Traceback" not in page.inner_text("body")


def test_pick_a_preset_run_it_and_see_the_heatmap(server, page):
    page.goto(f"{server}/?train_size=1024&epochs=1")  # a small shared link: shows its run at once
    page.get_by_text("validation accuracy").first.wait_for(timeout=180_000)
    page.get_by_test_id("stSelectbox").first.click()  # the Preset picker
    page.get_by_role("option", name="exploding-linear", exact=True).click()
    page.get_by_text("Diverged - validation accuracy").wait_for(timeout=180_000)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Gradient norm per layer and step").first.wait_for(timeout=60_000)
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # let Vega finish drawing before the picture
    assert_clean(page)
    assert "preset=exploding-linear" in page.url
    assert page.get_by_text("Apply fix: clipnorm=1").count() == 1
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)


def test_presentation_link(server, page):
    page.goto(f"{server}/?preset=exploding-linear&present=1")
    page.get_by_text("Gradient norm per layer and step").first.wait_for(timeout=180_000)
    page.locator(".vega-embed").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    assert_clean(page)
    assert page.get_by_role("tab", name="Weights").count() == 0  # the detail tabs are tucked away
    page.screenshot(path=str(ARTIFACTS / "presentation.png"), full_page=True)


PAGES = {
    "compare": ("Compare?depth=3&width=32&activation=sigmoid&initializer=glorot_uniform&train_size=1024&epochs=1"
                "&b=activation%3Drelu", "Findings"),
    "seed-experiments": ("Seed_experiments?train_size=1024&epochs=1", "What does explode here"),
    "guide": ("Guide", "Fix: gating in LSTM and GRU"),
    "through-time": ("Through_time?train_size=1024&epochs=1&step_pixels=28&width=32", "Exploding through time"),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_renders(server, page, name):
    path, marker = PAGES[name]
    page.goto(f"{server}/{path}")
    page.get_by_text(marker).first.wait_for(timeout=300_000)
    page.wait_for_timeout(2000)
    assert_clean(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_closing_the_tab_stops_its_training(server, page):
    """A long training whose tab is closed stops within a chunk or two (the server log says so), so
    nobody else queues behind a result nobody will see."""
    tab = page.context.browser.new_page()
    tab.goto(f"{server}/?depth=10&width=256&train_size=8000&epochs=30&seed=4242")  # ~15 s of training
    tab.get_by_text("Training: step").first.wait_for(timeout=120_000)
    closed = time.monotonic()
    tab.close()
    pattern = re.compile(r"training (\w+) (stopped: its session ended|interrupted \(its session ended or reran\)) "
                         r"after (\d+) steps")
    while not (found := pattern.search(SERVER_LOG.read_text())):
        assert time.monotonic() - closed < 20, "no stop in the server log 20 s after the tab closed"
        time.sleep(0.25)
    assert 0 < int(found.group(3)) < 62 * 30  # stopped part-way, not finished
