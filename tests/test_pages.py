"""Compare, Seed experiments and Guide pages under AppTest, entered from app.py as a user would."""

import re
import urllib.parse

from streamlit.testing.v1 import AppTest

from gradviz.config import RULES, RunConfig
from gradviz.diagnosis.diagnose import diagnose
from gradviz.presets import PRESETS
from gradviz.serving.results import COORDINATOR
from gradviz.sweeps.compare import VARIANT_KEYS
from gradviz.urlstate import parse_query
from support.apptest import charts, headline_text, leaves, no_exception
from support.helpers import ROOT, displayed, verdict_from_findings

SMALL = {"train_size": "1024", "epochs": "1"}


def open_page(page: str, params: dict) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page)
    return at.run()


def test_compare_two_small_configs():
    at = open_page("pages/Compare.py", {"depth": "3", "width": "32", "activation": "sigmoid",
                                          "initializer": "glorot_uniform", **SMALL, "b": "activation=relu"})
    no_exception(at)
    found = charts(at)
    loss_spec, loss_rows = found["Loss (log)"]
    assert loss_spec["encoding"]["color"]["field"] == "config"
    assert loss_spec["encoding"]["color"]["sort"] == ["A (base)", "B: activation=relu"]  # the difference in the legend
    assert loss_spec["encoding"]["y"]["scale"]["type"] == "log"
    assert loss_rows == [2 * 2 * 2]  # 2 configs x (train, val) x (step 0, epoch 1)
    profile_spec, profile_rows = found["Gradient norm across depth"]
    assert profile_spec["encoding"]["y"]["scale"]["type"] == "log" and profile_rows == [2 * 4]
    heatmaps = [found[label] for label in ("A (base)", "B")]
    domains = [leaves(spec)[0]["encoding"]["color"]["scale"]["domain"] for spec, _ in heatmaps]
    assert domains[0] == domains[1]  # one colour scale for both
    assert "differs - activation" in " ".join(c.value for c in at.caption)
    styles = at.dataframe[0].proto.arrow_data.styler.styles
    assert re.search(r"_row3_col0, #T_\w+_row3_col1 \{ background-color: #fff3bf", styles)  # row 3 = activation
    assert list(RULES)[3] == "activation"
    assert at.query_params["b"] == "activation=relu"
    assert len(at.markdown) >= 2 and any("B: activation=relu" in m.value for m in at.markdown)


def test_compare_reports_bad_variants():
    at = open_page("pages/Compare.py", {**SMALL, "depth": "2", "width": "16", "b": "depth=0; speed=fast",
                                          "c": "optimizer=sgd"})
    no_exception(at)
    warnings = " ".join(displayed(w.value) for w in at.warning)
    assert "B: depth='0' is not valid" in warnings and "B: Ignored speed='fast'" in warnings
    assert ({"A (base)", "B (same as A)", "C: optimizer=sgd"}
            <= set(charts(at)["Loss (log)"][0]["encoding"]["color"]["sort"]))


def test_seed_experiments_show_computed_verdicts():
    at = open_page("pages/Seed_experiments.py", SMALL)
    no_exception(at)
    titles = [h.value for h in at.subheader]
    for name in ("seed-vanishing-sigmoid", "seed-fixed-resnet", "seed-exploding-linear", "seed-clipnorm"):
        assert name in titles
        result = COORDINATOR.cache.get(RunConfig.coerce(SMALL, base=PRESETS[name].config)[0].cache_key())
        expected = verdict_from_findings(PRESETS[name].expect, diagnose(result))  # the rule, read off the findings
        boxes = [b.value for b in (*at.success, *at.warning, *at.error)]
        shown = [b for b in boxes if b.startswith(f"**{expected.capitalize()}**")]
        assert shown, (name, expected, boxes)
    assert any("clipping matters with SGD" in t for t in titles)
    text = " ".join(m.value for m in at.markdown)
    assert "Adam divides each step" in text and re.search(r"diverged at step \d+", text)
    assert "All kernels pooled (the article's view)" in charts(at)


def test_guide_links_open_the_explorer_with_the_intended_params():
    at = open_page("pages/Guide.py", {})
    no_exception(at)
    links = at.get("page_link")
    assert len(links) >= 14
    recurrent = [link for link in links if "time" in link.proto.label]
    assert len(recurrent) == 2 and all(link.proto.query_string == "step_pixels=7" for link in recurrent)
    compare = [link for link in links if "(Compare)" in link.proto.label]
    assert len(compare) == 1 and "b=initializer%3Dorthogonal" in compare[0].proto.query_string
    links = [link for link in links if link not in recurrent + compare]
    assert len({link.proto.page_script_hash for link in links}) == 1  # the rest open the explorer
    intended = {"Open: 10 sigmoid layers (vanishing)": "seed-vanishing-sigmoid",
                "Open: ReLU + He instead of sigmoid": "vanishing-fixed-relu-he",
                "Open: 10 sigmoid layers + batch norm": "vanishing-fixed-batchnorm",
                "Open: the exploding SGD network with clipnorm = 1": "exploding-linear-clipped",
                "Open: He et al. 2015 - 30 ReLU layers with Glorot init": "he2015-relu-glorot"}
    by_label = {link.proto.label: link.proto.query_string for link in links}
    for label, preset in intended.items():
        assert by_label[label] == f"preset={preset}"
    for link in links + compare:  # every link is a valid link: no warnings when opened
        params = dict(pair.split("=", 1) for pair in urllib.parse.unquote(link.proto.query_string).split("&"))
        state, messages = parse_query(params, page_keys=VARIANT_KEYS)
        assert not messages and (state.preset in PRESETS or state.config.depth in (20, 40))
    assert len(at.get("latex")) >= 8


def test_following_a_guide_link_in_a_running_session_loads_its_config():
    """A session that already has state (it opened the explorer on its defaults) follows a link:
    the link's config replaces the session's, and its run is shown."""
    at = open_page("pages/Guide.py", {"depth": "2", "width": "16", **SMALL})
    at.switch_page("pages/explorer.py").run()  # the explorer with the session's own config
    assert at.slider(key="cfg_depth").value == 2
    at.query_params.clear()
    at.query_params["preset"] = "exploding-linear"  # what the Guide's link carries
    at.switch_page("pages/explorer.py").run()
    no_exception(at)
    assert at.selectbox(key="preset_pick").value == "exploding-linear"
    assert at.slider(key="cfg_depth").value == 20 and at.select_slider(key="cfg_learning_rate").value == 0.01
    assert headline_text(at).startswith("### Diverged")
