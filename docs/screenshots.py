"""Refresh the README's screenshots from the real app: `python docs/screenshots.py`.

Starts `streamlit run app.py` on a free loopback port (MNIST from GRADVIZ_DATA_DIR, the Keras cache
or ../shared/data/mnist), opens each view in headless Debian chromium through Playwright, waits
for its charts and writes docs/screenshots/<name>.png. Needs the dev requirements and chromium.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from support.live_server import (  # noqa: E402
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    browser_missing,
    streamlit_server,
)

OUT = ROOT / "docs" / "screenshots"
# name: (link, viewport width, height, text to wait for)
SHOTS = {
    "explorer": ("?preset=seed-vanishing-sigmoid", 1440, 1500, "Vanishing - validation accuracy"),
    "init-he2015": ("?preset=he2015-relu-glorot", 1440, 1150, "Signal collapse - validation accuracy"),
    "presentation": ("?preset=exploding-linear&present=1&talk=seed-vanishing-sigmoid,exploding-linear,"
                     "he2015-relu-glorot", 1280, 720, "Diverged - validation accuracy"),
    "lesson": ("?lesson=initialization&step=4", 1440, 1100, "Not yet"),
}


def main() -> int:
    missing = browser_missing()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    shared = ROOT.parent / "shared" / "data" / "mnist"
    if shared.is_dir():
        os.environ.setdefault("GRADVIZ_DATA_DIR", str(shared))
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with streamlit_server(ARTIFACTS / "screenshots-server.log") as (url, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, (link, width, height, marker) in SHOTS.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url + "/" + link)
            page.get_by_text(marker).first.wait_for(timeout=300_000)
            page.locator(".vega-embed:visible").last.wait_for(timeout=60_000)  # charts in closed tabs stay hidden
            page.wait_for_timeout(2500)  # let Vega finish drawing
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(f"wrote {OUT / name}.png")
            page.close()
        browser.close()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        _open_a_run(browser)
        browser.close()
    return 0


def _open_a_run(browser) -> None:
    """The "Open a run" page on the example's 10-layer sigmoid run (examples/your_model.py), served
    as `python -m gradviz view` serves it."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, str(ROOT / "examples" / "your_model.py"), "--out", folder], check=True,
                       capture_output=True)
        env = {"GRADVIZ_VIEW_FILE": str(Path(folder) / "deep_sigmoid.gradviz")}
        with streamlit_server(ARTIFACTS / "screenshots-view.log", env=env) as (url, _):
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url)
            try:
                page.get_by_text("kernels").first.wait_for(timeout=120_000)  # the run's headline
                page.locator(".vega-embed:visible").first.wait_for(timeout=60_000)
            except Exception:
                print(page.inner_text("body")[:2000], file=sys.stderr)
                raise
            page.wait_for_timeout(2500)
            page.screenshot(path=str(OUT / "open-a-run.png"))
            print(f"wrote {OUT / 'open-a-run'}.png")
            page.close()


if __name__ == "__main__":
    sys.exit(main())
