"""A real browser against a real server: `streamlit run app.py` driven by Debian's chromium through
Playwright. Skips on a machine without a browser (saying why); in CI a missing browser fails."""

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from gradviz.presets import PRESETS
from support.live_server import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    browser_missing,
    streamlit_server,
)

pytestmark = pytest.mark.browser


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


class Watched:
    """Every request the browser makes and every dialog a page opens, for the whole module."""

    def __init__(self):
        self.requests: list[str] = []
        self.dialogs: list[str] = []

    def foreign(self, origin: str) -> list[str]:
        """Requests that left the server's origin (data: and blob: URLs are the page's own)."""
        return [u for u in self.requests if not u.startswith((origin + "/", "data:", "blob:")) and u != origin]


@pytest.fixture(scope="module")
def watched():
    return Watched()


@pytest.fixture(scope="module")
def page(server, watched):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1700})
        context.on("request", lambda request: watched.requests.append(request.url))

        def on_dialog(dialog):
            watched.dialogs.append(dialog.message)
            dialog.dismiss()

        context.on("dialog", on_dialog)
        yield context.new_page()
        browser.close()


def assert_clean(page) -> None:
    assert page.get_by_test_id("stException").count() == 0
    assert "Traceback" not in page.inner_text("body")


def test_pick_a_preset_run_it_and_see_the_heatmap(server, page):
    page.goto(f"{server}/?train_size=1024&epochs=1")  # a small shared link: shows its run at once
    page.get_by_text("validation accuracy").first.wait_for(timeout=180_000)
    page.get_by_test_id("stSelectbox").first.click()  # the Preset picker
    page.get_by_role("option", name=PRESETS["exploding-linear"].summary, exact=True).click()  # titles, not slugs
    page.get_by_text("Diverged - validation accuracy").wait_for(timeout=180_000)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Gradient norm per layer and step").first.wait_for(timeout=60_000)
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # let Vega finish drawing before the picture
    assert_clean(page)
    from playwright.sync_api import (
        expect,  # here: the module imports without Playwright
    )

    # The script writes the URL as it reruns: poll for it (an immediate read once missed it under load).
    expect(page).to_have_url(re.compile(r"[?&]preset=exploding-linear(&|$)"), timeout=30_000)
    page.get_by_text("Tried:").first.wait_for(timeout=240_000)  # the fix search on this run is done
    assert page.get_by_role("button", name=re.compile("Apply fix: ")).count() == 1  # one button: the verified fix
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)


def vega_specs(page) -> list[dict]:
    """Start keeping every Vega-Lite spec the server sends this page (its websocket's messages,
    decoded with Streamlit's own protobuf classes): what the browser draws, read as data."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    specs: list[dict] = []

    def on_frame(payload):
        if isinstance(payload, bytes):
            message = ForwardMsg.FromString(payload)
            element = message.delta.new_element if message.HasField("delta") else None
            if element is not None and element.HasField("vega_lite_chart"):
                specs.append(json.loads(element.vega_lite_chart.spec))

    page.on("websocket", lambda socket: socket.on("framereceived", on_frame))
    return specs


def color_domains(spec: dict) -> list:
    return [layer["encoding"]["color"]["scale"]["domain"] for layer in spec.get("layer", [])
            if "scale" in layer.get("encoding", {}).get("color", {})]


def test_the_fix_search_offers_a_change_that_worked_and_applying_it_shows_that_run(server, page):
    """A too-large Adam step: the step is named first, the table fills in, and the one button's run
    (already trained by the search) is shown at once, beside the run it fixed on one colour scale."""
    specs = vega_specs(page)
    page.goto(f"{server}/?learning_rate=10&depth=2&width=32&train_size=2000&epochs=1")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Step too large - validation accuracy").first.wait_for(timeout=180_000)
    page.get_by_text("What each change did").first.wait_for(timeout=60_000)
    page.get_by_text("Tried:").first.wait_for(timeout=180_000)
    assert_clean(page)
    button = page.get_by_role("button", name=re.compile(r"Apply fix: learning_rate=0\.001$"))
    assert button.count() == 1 and page.get_by_role("button", name=re.compile("Apply fix: ")).count() == 1
    button.click()
    # 16 steps at the usual step learn, slowly (34 %): said so, not called healthy
    page.get_by_text("Slow learning - validation accuracy").first.wait_for(timeout=60_000)
    page.get_by_text("Before and after").wait_for(timeout=30_000)  # the diverged run stays beside it
    assert page.locator(".st-key-one_scale_0 .vega-embed").count() == 1
    assert page.locator(".st-key-one_scale_1 .vega-embed").count() == 1
    pair = [spec for spec in specs if str(spec.get("title", "")).startswith(("Before", "After"))][-2:]
    assert sorted(spec["title"].split(":")[0] for spec in pair) == ["After", "Before"]
    domains = [color_domains(spec) for spec in pair]
    assert domains[0] and domains[0] == domains[1]  # one colour scale, as sent to the browser
    from playwright.sync_api import expect

    # 0.001 is the default learning rate: the link now leaves it out, and keeps the rest
    expect(page).to_have_url(re.compile(r"\?depth=2&width=32&epochs=1&train_size=2000$"), timeout=30_000)


TALK = "?preset=exploding-linear&present=1&talk=seed-vanishing-sigmoid,exploding-linear,he2015-relu-glorot"
ON_STAGE = {"heatmap": ".st-key-stage_heatmap .vega-embed", "loss": ".st-key-stage_loss .vega-embed",
            "top finding": "[data-testid=stAlert]", "next": ".st-key-talk_next"}
# The top finding's fix: a button if the search verified one on this run (its trials stored or
# cached: the Explorer test above ran it), else a caption saying why there is none.
STAGE_FIX = (".st-key-stage_fix, [data-testid=stCaptionContainer]:has-text('No fix shown until'), "
             "[data-testid=stCaptionContainer]:has-text('No single change made')")


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080)])
def test_presentation_fits_one_16_9_screen(server, page, width, height):
    """A talk's link at 1280x720 and 1920x1080: the heatmap, the loss curve, the top finding and
    the talk's Next button are all on the first screen, nothing scrolls, and the type is larger
    on the larger screen."""
    page.set_viewport_size({"width": width, "height": height})
    try:
        page.goto(f"{server}/{TALK}")
        page.get_by_text("Diverged - validation accuracy").first.wait_for(timeout=180_000)
        page.locator(ON_STAGE["loss"]).wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        assert_clean(page)
        assert page.get_by_role("tab", name="Weights").count() == 0  # the detail tabs are tucked away
        for name, selector in {**ON_STAGE, "fix": STAGE_FIX}.items():
            box = page.locator(selector).first.bounding_box()
            assert box and box["y"] >= 0 and box["y"] + box["height"] <= height + 1, (name, box)
        scroll, inner = page.evaluate("() => [document.querySelector('[data-testid=stMain]').scrollHeight, "
                                      "window.innerHeight]")
        assert scroll <= inner + 1
        size = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
        assert size == pytest.approx(width * 0.0125, abs=0.5)  # 1.25 % of the width: 16 px, 24 px
        page.screenshot(path=str(ARTIFACTS / f"presentation-{width}x{height}.png"))
    finally:
        page.set_viewport_size({"width": 1400, "height": 1700})


PAGES = {
    "compare": ("Compare?depth=3&width=32&activation=sigmoid&initializer=glorot_uniform&train_size=1024&epochs=1"
                "&b=activation%3Drelu", "Findings"),
    "seed-experiments": ("Seed_experiments?train_size=1024&epochs=1", "What does explode here"),
    "guide": ("Guide", "Fix: gating in LSTM and GRU"),
    "through-time": ("Through_time?train_size=1024&epochs=1&step_pixels=28&width=32", "Exploding through time"),
    "sweeps": ("Sweeps?sweep=order-to-chaos", "Order to chaos"),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_renders_and_fetches_nothing_from_elsewhere(server, page, watched, name):
    path, marker = PAGES[name]
    page.goto(f"{server}/{path}")
    page.get_by_text(marker).first.wait_for(timeout=300_000)
    page.wait_for_timeout(2000)
    assert_clean(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert watched.requests and watched.foreign(server) == []  # no font CDN, no icon, no tracker


# Each payload carries the marker "gvx" so that the test can find where it is shown.
HOSTILE = {
    "link": "[click me gvx](https://evil.example/phish)",
    "pixel": "gvx ![x](http://evil.example/pixel.png)",
    "bold": "**gvx bold** <b id=gvxtag>tag</b>",
    "script": "gvx<img src=http://evil.example/i.png onerror=alert(1)><script>alert(2)</script>",
    "javascript": "[gvx js](javascript:alert(3)) <javascript:alert(4)>",
    "autolink": "gvx https://evil.example/auto www.evil.example",
    "streamlit": "gvx :red[red] $x^2$ :material/home:",
    "control": "gvx\x00\x1b[31m\u202eevil\nline",
    "long": "gvx" + "A" * 5000,
}
QUOTED = urllib.parse.quote
HOSTILE_LINKS = {
    "explorer": ("?depth=2&width=16&train_size=1024&epochs=1&"
                 + "&".join(f"{QUOTED(name + v)}={QUOTED(v)}" for name, v in list(HOSTILE.items())[:4])
                 + f"&activation={QUOTED(HOSTILE['javascript'])}&preset={QUOTED(HOSTILE['autolink'])}"
                 + f"&seed={QUOTED(HOSTILE['streamlit'])}&clipnorm={QUOTED(HOSTILE['control'])}"
                 + f"&width={QUOTED(HOSTILE['long'])}", "validation accuracy"),
    "compare": ("Compare?depth=3&width=32&activation=sigmoid&initializer=glorot_uniform&train_size=1024&epochs=1"
                "&b=" + QUOTED(f"activation=relu; depth={HOSTILE['link']}; {HOSTILE['pixel']}=1")
                + "&c=" + QUOTED(f"{HOSTILE['bold']}; seed={HOSTILE['script']}")
                + "&d=" + QUOTED(f"{HOSTILE['streamlit']}; {HOSTILE['control']}"), "Findings"),
    "seed-experiments": ("Seed_experiments?train_size=1024&epochs=1&epochs=" + QUOTED(HOSTILE["link"]),
                         "What does explode here"),
    "through-time": ("Through_time?train_size=1024&epochs=1&step_pixels=28&width=" + QUOTED(HOSTILE["pixel"]),
                     "Exploding through time"),
    "sweeps": ("Sweeps?x=depth%3D2%2C3&width=16&sweep=" + QUOTED(HOSTILE["link"]) + "&mode=" + QUOTED(HOSTILE["script"])
               + "&activation=" + QUOTED(HOSTILE["streamlit"]), "solid: measured"),
}
# Tags inside a message that shows outside text: Markdown or HTML from the link took effect.
INJECTED = """() => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
  .filter(box => box.textContent.includes('gvx'))
  .flatMap(box => [...box.querySelectorAll('*')].map(el => el.tagName))
  .filter(tag => !['P', 'DIV', 'BR'].includes(tag))"""


@pytest.mark.parametrize("name", list(HOSTILE_LINKS))
def test_a_hostile_link_shows_its_text_literally_and_fetches_nothing(server, page, watched, name):
    """Markdown links and images, HTML, javascript: URLs, Streamlit's own syntax, control characters
    and very long values in a link: each is named in a warning as plain text, nothing from it
    becomes a tag, a request or a dialog, and the page still shows its run."""
    path, marker = HOSTILE_LINKS[name]
    before = len(watched.requests)
    page.goto(f"{server}/{path}")
    page.get_by_text(marker).first.wait_for(timeout=300_000)
    page.wait_for_timeout(1500)
    assert_clean(page)
    warnings = page.get_by_test_id("stAlert").all_inner_texts()
    assert any("gvx" in w for w in warnings), warnings
    assert page.evaluate(INJECTED) == []
    assert page.locator("a[href*='evil'], a[href^='javascript'], img[src*='evil'], #gvxtag").count() == 0
    shown = " ".join(warnings).replace("\u2060", "")  # the invisible joiner that stops autolinks
    assert "[click me gvx](https://evil.ex" in shown or "gvx ![x](http://evil.ex" in shown  # as typed
    new = watched.requests[before:]
    assert new and watched.foreign(server) == []  # the link itself went to our server; nothing else
    assert watched.dialogs == []
    page.screenshot(path=str(ARTIFACTS / f"hostile-{name}.png"), full_page=True)


def test_a_fresh_servers_first_visit_to_a_page_link_finds_it(page):
    """Streamlit runs a fresh server's first request through its folder-based page list; the app
    hands over to its own navigation, so a first link to /Guide shows the Guide with the app's
    page titles, and no "Page not found"."""
    with streamlit_server(ARTIFACTS / "streamlit-fresh.log") as (url, _):
        fresh = page.context.new_page()
        fresh.goto(f"{url}/Guide")
        fresh.get_by_text(PAGES["guide"][1]).first.wait_for(timeout=120_000)
        fresh.wait_for_timeout(1500)
        assert fresh.get_by_text("Page not found").count() == 0
        nav = fresh.get_by_test_id("stSidebarNav").inner_text()
        assert "Explorer" in nav and "Sweeps" in nav and "app" not in nav.split()
        fresh.close()


def test_the_server_refuses_other_origins_and_serves_nothing_else(server, page):
    """CORS protection on (no Allow-Origin for a foreign origin, its websocket refused), an XSRF
    cookie set, no static folder served."""
    request = urllib.request.Request(f"{server}/_stcore/health", headers={"Origin": "http://evil.example"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers.get("Access-Control-Allow-Origin") in (None, server)
    for path in ("app/static/app.py", "app/static/.streamlit/config.toml", "app.py"):
        with urllib.request.urlopen(f"{server}/{path}", timeout=10) as response:  # the page shell, not the file
            body = response.read().decode()
        assert "run_app" not in body and "enableCORS" not in body and '<div id="root">' in body
    page.goto(f"{server}/Guide")
    page.get_by_text(PAGES["guide"][1]).first.wait_for(timeout=60_000)
    assert any(c["name"] == "_streamlit_xsrf" for c in page.context.cookies())
    assert foreign_websocket_refused(server)


def foreign_websocket_refused(server: str) -> bool:
    """A websocket opened from another origin is refused with 403, one from the app's own origin
    is accepted (the sync client: Playwright's sync API already runs an event loop on this thread)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    def opens(origin: str) -> bool:
        try:
            with connect(server.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                         origin=origin, open_timeout=10):
                return True
        except InvalidStatus as refused:
            assert refused.response.status_code == 403
            return False

    return opens(server) and not opens("http://evil.example")


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
