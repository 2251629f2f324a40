"""A real browser at the server's limits: the link that used to take a class server down is
refused with an offer while the server's memory stays inside its bound and it goes on training;
three downloads clicked in a row are three files."""

import time

import pytest
from test_browser import assert_clean, require_browser

from support.live_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, streamlit_server

pytestmark = pytest.mark.browser
SERVER_RSS_BOUND_MB = 2048  # docs/hosting.md: TensorFlow, the caches and the work in flight inside ~2 GB
HUGE_CNN = "?architecture=cnn&depth=50&width=1024"


def memory_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


@pytest.fixture(scope="module")
def served():
    require_browser()
    with streamlit_server(ARTIFACTS / "streamlit-limits.log") as (url, pid):
        yield url, pid


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
        yield context.new_page()
        browser.close()


def test_the_link_that_took_a_server_down_is_refused_and_the_server_goes_on(served, page):
    url, pid = served
    page.goto(url + "/" + HUGE_CNN)
    page.get_by_text("needs about").first.wait_for(timeout=120_000)
    offer = page.get_by_role("button", name="instead")
    offer.first.wait_for(timeout=30_000)
    assert offer.count() == 1 and "Use " in offer.inner_text()
    assert page.get_by_text("GRADVIZ_MAX_MEMORY_MB").count() >= 1
    assert_clean(page)
    page.screenshot(path=str(ARTIFACTS / "memory-refusal.png"), full_page=True)
    assert memory_mb(pid, "VmHWM") < SERVER_RSS_BOUND_MB
    page.goto(url + "/?depth=3&width=32&train_size=1024&epochs=1&seed=77")  # then a normal link trains
    page.get_by_text("Trained").first.wait_for(timeout=180_000)
    assert_clean(page)
    assert memory_mb(pid, "VmHWM") < SERVER_RSS_BOUND_MB


def test_three_downloads_clicked_in_a_row_are_three_files(served, page, tmp_path):
    url, _ = served
    page.goto(url + "/?depth=2&width=16&train_size=512&epochs=1&seed=78")
    page.get_by_text("Trained").first.wait_for(timeout=180_000)
    page.get_by_role("tab", name="Share & export").click()
    buttons = [page.get_by_role("button", name=name)
               for name in ("Steps as CSV", "Run as JSON", "Download heatmap.png")]
    buttons[0].wait_for(timeout=30_000)
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    for button in buttons:  # at once, as the learner did: no waiting between the clicks
        button.click()
    deadline = time.monotonic() + 60
    while len(downloads) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    names = sorted(d.suggested_filename for d in downloads)
    assert len(downloads) == 3, names
    for download in downloads:
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        assert path.stat().st_size > 100
    assert sorted(n.rsplit(".", 1)[1] for n in names) == ["csv", "json", "png"]
    assert_clean(page)
