"""The "Open a run" page in a real browser: a run file recorded with gradviz.watch shows its heatmap
and findings; hostile files get one message and nothing else happens; a link cannot name a file on
the server's disk; `gradviz view`'s hand-over (GRADVIZ_VIEW_FILE) opens the page on its file."""

import pickle

import pytest
from test_browser import assert_clean, require_browser  # noqa: F401 - the same rules as every browser test

from support.live_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, streamlit_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def run_file(tmp_path_factory, real_data_or_skip):
    """A real watched fit: 12 sigmoid layers on real MNIST (its gradient vanishes)."""
    import gradviz
    from gradviz.training.tf_setup import keras

    data = real_data_or_skip(1000)
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(32, activation="sigmoid", name=f"hidden_{i}") for i in range(12)]
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), *layers, keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = gradviz.watch(model, x=data.x_train)
    model.fit(data.x_train, data.y_train, batch_size=64, epochs=1, verbose=0, callbacks=[callback])
    return callback.result.save(tmp_path_factory.mktemp("runs") / "deep.gradviz")


def hostile_files(folder, good) -> dict:
    data = good.read_bytes()
    files = {"truncated": data[: len(data) // 3], "a pickle": pickle.dumps({"grad_norm": [1.0]}),
             "not a run file": b"PK\x03\x04 but not really a zip", "an image renamed": b"\x89PNG\r\n\x1a\n" + bytes(64)}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.gradviz"
        paths[name].write_bytes(content)
    return paths


@pytest.fixture(scope="module")
def browser_page():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        browser.close()


def upload(page, url: str, path) -> None:
    page.goto(f"{url}/Open_a_run")
    page.get_by_text("Run file").first.wait_for(timeout=120_000)
    page.locator("input[type=file]").set_input_files(str(path))


def test_a_watched_run_shows_its_heatmap_and_findings_and_hostile_files_one_message(browser_page, run_file,
                                                                                   tmp_path):
    page = browser_page
    with streamlit_server(ARTIFACTS / "streamlit-open-a-run.log") as (url, _):
        upload(page, url, run_file)
        page.get_by_text("Gradient norm per layer and step").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1000)
        assert_clean(page)
        assert "vanishing" in page.inner_text("body").lower() and "hidden_0" in page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "open-a-run.png"), full_page=True)
        for name, path in hostile_files(tmp_path, run_file).items():
            upload(page, url, path)
            page.get_by_text("not a run file gradviz can open").first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            assert_clean(page)
            alerts = page.get_by_test_id("stAlert").all_inner_texts()
            assert len(alerts) == 1, (name, alerts)
            assert page.get_by_text("Gradient norm per layer and step").count() == 0, name
        # a link naming a file on the server's disk is not read: the page asks for an upload
        page.goto(f"{url}/Open_a_run?file=/etc/passwd&path=/etc/passwd&GRADVIZ_VIEW_FILE=/etc/passwd")
        page.get_by_text("Run file").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        assert "root:" not in page.inner_text("body") and page.get_by_test_id("stAlert").count() == 0


def test_gradviz_view_opens_the_app_on_its_file(browser_page, run_file):
    page = browser_page
    with streamlit_server(ARTIFACTS / "streamlit-view.log", env={"GRADVIZ_VIEW_FILE": str(run_file)}) as (url, _):
        page.goto(url)
        page.get_by_text("Gradient norm per layer and step").first.wait_for(timeout=120_000)
        assert_clean(page)
        assert "13 kernels" in page.inner_text("body")  # 12 hidden layers and the output
