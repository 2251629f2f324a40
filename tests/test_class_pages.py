"""A class's pages under AppTest on real MNIST: a lesson's prediction, reveal and challenge, a
teacher link's locked and hidden controls, before and after on one colour scale, and
`precompute --lesson` storing every step."""

import json

import pytest

from gradviz import cli
from support.apptest import SMALL, no_exception, open_app
from support.helpers import displayed

TINY_LINK = "depth=2&width=32&train_size=2000&epochs=2&batch_size=64&initializer=zeros"
TINY = 'architecture = "mlp", depth = 2, width = 32, train_size = 2000, epochs = 2, batch_size = 64'
# A teacher's lesson on tiny configs: a prediction on a run that cannot learn (zero init) and a
# challenge that one initializer solves.
CLASS_LESSON = f"""
title = "Tiny class"
summary = "Two quick steps."

[[steps]]
title = "All weights zero"
text = "Every weight starts at **zero**."
config = {{ {TINY}, initializer = "zeros" }}

[steps.prediction]
question = "Will it learn?"
choices = [ {{ text = "Yes", when = "val_accuracy >= 50%" }}, {{ text = "No", when = "val_accuracy < 50%" }} ]

[[steps]]
title = "Fix it"
text = "Change only the initializer."
config = {{ {TINY}, initializer = "zeros" }}

[steps.challenge]
text = "Reach 50 % changing only the initializer."
goal = "val_accuracy >= 50%"
change = ["initializer"]
solution = {{ initializer = "he_normal" }}
"""


@pytest.fixture
def class_lessons(tmp_path, monkeypatch, real_data_or_skip):
    real_data_or_skip(1024)
    (tmp_path / "tiny-class.toml").write_text(CLASS_LESSON)
    (tmp_path / "broken.toml").write_text("title = 'x'\n[[steps]]\ntitle = 'a'\ntext = 'b'\nconfig = { depth = 500 }\n")
    monkeypatch.setenv("GRADVIZ_LESSONS_DIR", str(tmp_path))
    return tmp_path


def prediction(at):
    return next(r for r in at.radio if r.label.startswith("**Predict first:**"))


def test_a_prediction_is_asked_before_the_run_and_revealed_from_its_numbers(class_lessons):
    open_app(dict(pair.split("=") for pair in TINY_LINK.split("&")))  # the step's run, cached
    for present in ("0", "1"):  # presentation mode does not skip the question
        at = open_app({"lesson": "tiny-class", "step": "1", "present": present})
        no_exception(at)
        assert not any("validation accuracy" in m.value for m in at.markdown)  # no run before the answer
        assert not any(s.value == "At initialization" for s in at.subheader)
        assert at.button(key="lock_in").disabled
    prediction(at).set_value(0).run()  # "Yes": wrong for a zero start
    at.button(key="lock_in").click().run()
    no_exception(at)
    reveal = [w.value for w in at.warning if w.value.startswith("You predicted: Yes")]
    assert reveal and "The answer: No (validation accuracy" in reveal[0]
    assert dict(at.query_params)["lesson"] == "tiny-class" and dict(at.query_params)["step"] == "1"


def test_a_challenge_locks_the_other_controls_offers_no_fix_and_says_done_when_met(class_lessons):
    at = open_app({"lesson": "tiny-class", "step": "2"})
    no_exception(at)
    assert at.slider(key="cfg_depth").disabled and not at.selectbox(key="cfg_initializer").disabled
    assert not any(b.label.startswith("Apply fix") for b in at.button)  # the student's to solve
    assert any(i.value.startswith("Not yet") for i in at.info)
    found = next(m.value for m in at.markdown if m.value.startswith("Found: "))  # kinds only, no advice
    assert "symmetric init" in found and not any("he_normal" in m.value for m in at.markdown)
    at.selectbox(key="cfg_initializer").set_value("he_normal")
    at.sidebar.button[0].click().run()  # Run
    no_exception(at)
    assert any(s.value.startswith("**Challenge done.**") for s in at.success), [s.value for s in at.success]
    assert any(s.value == "Diagnosis" for s in at.subheader)  # done: the findings' explanations are back


def test_a_teacher_link_locks_and_hides_controls_and_disables_fixes_that_move_them():
    """The too-large step's verified fix is learning_rate=0.001 (test_browser): locked, its button is disabled."""
    at = open_app({"depth": "2", "width": "32", "train_size": "2000", "epochs": "1", "learning_rate": "10",
                   "lock": "learning_rate,depth", "hide": "seed"})
    no_exception(at)
    assert at.select_slider(key="cfg_learning_rate").disabled and at.slider(key="cfg_depth").disabled
    assert not at.selectbox(key="cfg_activation").disabled
    assert not any(n.key == "cfg_seed" for n in at.number_input)
    assert at.selectbox(key="preset_pick").disabled  # a preset would move the locked controls
    moving = [b for b in at.button if b.label.startswith("Apply fix") and "learning_rate" in b.label]
    assert moving and all(b.disabled for b in moving)
    assert dict(at.query_params)["lock"] == "depth,learning_rate" and dict(at.query_params)["hide"] == "seed"


def test_apply_fix_keeps_the_run_before_it_beside_the_one_after_on_one_colour_scale():
    at = open_app({**SMALL, "depth": "2", "width": "32", "learning_rate": "10"})
    no_exception(at)
    at.button(key="keep_reference").click().run()
    at.slider(key="cfg_depth").set_value(3)
    at.sidebar.button[0].click().run()
    no_exception(at)
    heatmaps = [json.loads(e.proto.spec) for e in at.get("vega_lite_chart")
                if json.loads(e.proto.spec).get("title", "").startswith(("Before", "After"))]
    assert len(heatmaps) == 2
    domains = [layer["encoding"]["color"]["scale"]["domain"] for spec in heatmaps for layer in spec["layer"]
               if "color" in layer.get("encoding", {}) and "scale" in layer["encoding"]["color"]]
    assert len(domains) == 2 and domains[0] == domains[1]
    assert "Before and after" in [h.value for h in at.subheader]


def test_precompute_a_lesson_stores_every_step_once(class_lessons, tmp_path, capsys):
    store = tmp_path / "store"
    assert cli.main(["precompute", "--presets", "none", "--lesson", "tiny-class", "--out", str(store)]) == 0
    out = capsys.readouterr().out
    assert "tiny-class:1" in out and "tiny-class:2 solved" in out  # and the challenge's solution, once
    assert out.count("tiny-class:2") == 1  # both steps share one config: stored once
    assert cli.main(["precompute", "--presets", "none", "--lesson", "broken"]) == 2
    assert "line 2 (step 1)" in capsys.readouterr().err


def test_a_bad_lesson_link_says_so_and_the_lessons_page_names_a_broken_files_line(class_lessons):
    at = open_app({"lesson": "nope<b>"})
    no_exception(at)
    assert any("Unknown lesson 'nope<b>'" in displayed(w.value) for w in at.warning)  # shown literally
    at = open_app({"lesson": "tiny-class", "step": "9"})
    assert any("steps 1 to 2" in w.value for w in at.warning) and prediction(at)
    at.switch_page("pages/Lessons.py").run()
    no_exception(at)
    assert any("broken.toml, line 2 (step 1): depth" in displayed(w.value) for w in at.warning)
    assert "Tiny class" in [m.value.removeprefix("#### ") for m in at.markdown]


def test_a_hidden_control_survives_a_visit_to_another_page():
    at = open_app({**SMALL, "depth": "7", "width": "32", "activation": "tanh", "hide": "depth"}, run=True)
    no_exception(at)
    at.switch_page("pages/Lessons.py").run()
    at.switch_page("pages/explorer.py").run()
    no_exception(at)
    assert at.selectbox(key="cfg_activation").value == "tanh" and at.select_slider(key="cfg_width").value == 32
    assert dict(at.query_params)["depth"] == "7" and dict(at.query_params)["hide"] == "depth"
