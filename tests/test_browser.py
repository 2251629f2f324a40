"""A real browser against a real server: `streamlit run app.py` driven by Debian's chromium through
Playwright. Skips on a machine without a browser (saying why); in CI a missing browser fails."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = os.environ.get("GRADVIZ_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# The machine's network is closed: keep Chromium from phoning home at start-up.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def require_browser():
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -r requirements-dev.txt)"
    if not Path(CHROMIUM).exists():
        reason = f"no browser at {CHROMIUM} (Debian: apt-get install chromium; or set GRADVIZ_CHROMIUM)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {reason}")
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    require_browser()
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start; see {ARTIFACTS / 'streamlit.log'}")
        time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


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
