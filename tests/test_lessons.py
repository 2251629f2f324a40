"""Lessons: the condition language, the strict TOML schema with errors naming the line, the library of
built-in and teacher lessons, predictions revealed from the numbers and challenges checked on the run."""

import os
import re

import pytest

from gradviz.config import RunConfig
from gradviz.diagnosis.diagnose import diagnose
from gradviz.lessons import (
    BUILTIN_DIR,
    LESSONS_DIR_ENV,
    ConditionError,
    LessonError,
    Measured,
    load_lessons,
    measurements,
    parse_condition,
    parse_lesson,
)
from gradviz.lessons.conditions import FINDING_KINDS
from gradviz.presets import PRESETS
from support.helpers import ROOT
from support.results import fake_result

GOOD = '''title = "Initialization"
summary = "Why the first weights' scale matters."

[[steps]]
title = "Thirty ReLU layers, Glorot init"
text = """Markdown from the teacher."""
config = { preset = "he2015-relu-glorot" }
lock = ["depth", "activation"]

[steps.prediction]
question = "Will it learn?"
choices = [ { text = "Yes, above 80 %", when = "val_accuracy >= 0.8" },
            { text = "No, it stays near chance", when = "val_accuracy < 0.2" } ]

[[steps]]
title = "Your turn"
text = "Fix it."
config = { preset = "he2015-relu-glorot", epochs = 2 }

[steps.challenge]
text = "Reach 80 % validation accuracy changing only the initializer."
goal = "val_accuracy >= 0.8"
change = ["initializer"]
solution = { initializer = "he_normal" }
'''
HEADERS = (4, 15)  # the lines of GOOD's two [[steps]] headers


def lesson(text: str = GOOD, name: str = "initialization"):
    return parse_lesson(text, name)


# --- conditions -----------------------------------------------------------------------------------


def test_a_condition_holds_only_when_every_clause_joined_by_and_holds():
    condition = parse_condition("val_accuracy >= 0.8 and ratio_first_last > 1e-3")
    assert condition.holds(Measured(val_accuracy=0.85, ratio_first_last=0.5))
    assert not condition.holds(Measured(val_accuracy=0.85, ratio_first_last=1e-4))
    assert not condition.holds(Measured(val_accuracy=0.5, ratio_first_last=0.5))


@pytest.mark.parametrize("op, holds", [("<", [True, False, False]), ("<=", [True, True, False]),
                                       (">", [False, False, True]), (">=", [False, True, True]),
                                       ("==", [False, True, False]), ("!=", [True, False, True])])
def test_every_operator_compares_as_written(op, holds):
    condition = parse_condition(f"val_loss {op} 1.5")
    assert [condition.holds(Measured(val_loss=v)) for v in (1.0, 1.5, 2.0)] == holds


def test_a_percent_is_a_fraction_and_fits_only_accuracies():
    assert parse_condition("val_accuracy >= 80%").clauses == parse_condition("val_accuracy >= 0.8").clauses
    assert parse_condition("val_accuracy >= 80%").clauses[0].number == pytest.approx(0.8)
    assert parse_condition("first_half_blanked < 12.5%").clauses[0].number == pytest.approx(0.125)
    with pytest.raises(ConditionError, match="a percent fits only"):
        parse_condition("val_loss < 5%")
    with pytest.raises(ConditionError, match="fraction from 0 to 1; write 0.8 or 80%"):
        parse_condition("val_accuracy >= 80")  # a teacher meaning 80 %: never silently unreachable


def test_numbers_may_be_written_in_scientific_notation():
    assert parse_condition("ratio_first_last < 1e-3").holds(Measured(ratio_first_last=2e-4))
    assert parse_condition("lambda_max > .5").clauses[0].number == 0.5


def test_finding_and_no_finding_clauses_read_the_diagnosis_kinds():
    measured = Measured(findings=frozenset({"vanishing"}))
    assert parse_condition("finding vanishing").holds(measured)
    assert not parse_condition("no finding vanishing").holds(measured)
    assert parse_condition("no finding step_too_large").holds(measured)
    assert not parse_condition("finding healthy").holds(measured)


def test_diverged_and_not_diverged_clauses():
    assert parse_condition("diverged").holds(Measured(diverged_at_step=40))
    assert not parse_condition("not diverged").holds(Measured(diverged_at_step=40))
    assert parse_condition("not diverged").holds(Measured(val_accuracy=0.5))


def test_a_clause_on_a_metric_the_run_did_not_measure_does_not_hold():
    unmeasured = Measured(val_accuracy=0.9)  # λ is measured only for SGD/momentum MLPs
    assert not parse_condition("lambda_max < 10").holds(unmeasured)
    assert not parse_condition("lambda_max >= 10").holds(unmeasured)
    assert not parse_condition("second_half_blanked < 50%").holds(Measured(second_half_blanked=float("nan")))


@pytest.mark.parametrize("text, says", [
    ("", "empty condition"),
    ("val_acc >= 0.8", "unknown metric 'val_acc': use one of val_accuracy, val_loss"),
    ("val_accuracy >= high", "not a number"),
    ("val_accuracy => 0.8", "is not METRIC OP NUMBER"),
    ("finding vanish", "unknown finding kind 'vanish': use one of"),
    ("val_accuracy >= 0.8 or diverged", "only 'and' joins clauses"),
    ("__import__('os').system('ls') > 0", "is not METRIC OP NUMBER"),
    ("val_accuracy > 0.1 and " * 10 + "diverged", "at most 8 clauses"),
    ("val_loss < 1" + " " * 400, "at most 300 characters"),
])
def test_a_bad_condition_says_what_is_wrong(text, says):
    with pytest.raises(ConditionError, match=re.escape(says)):
        parse_condition(text)


def test_explain_puts_the_numbers_a_condition_looked_at_in_words():
    measured = Measured(val_accuracy=0.452, ratio_first_last=3.1e-5, diverged_at_step=40, lambda_max=28.4,
                        first_half_blanked=0.461, findings=frozenset({"diverged", "step_too_large"}))
    text = parse_condition("val_accuracy >= 0.8 and ratio_first_last > 1e-3 and not diverged").explain(measured)
    assert text == ("validation accuracy 45.2 %; first layer's gradient 3.1e-05 × the last layer's; "
                    "diverged at step 40")
    assert "2/λ = 0.0704" in parse_condition("lambda_max < 40").explain(measured)
    assert parse_condition("first_half_blanked < 0.3").explain(measured) == \
        "validation accuracy with the first half of each image blanked 46.1 %"
    assert parse_condition("finding vanishing").explain(measured) == \
        "the diagnosis did not find vanishing (it found: diverged, step too large)"
    assert parse_condition("second_half_blanked < 0.3").explain(measured) == \
        "validation accuracy with the second half of each image blanked not measured"


def test_the_finding_kinds_are_the_ones_the_diagnosis_documents():
    documented = re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs" / "diagnosis.md").read_text(), re.M)
    assert set(documented) == set(FINDING_KINDS)


def test_measurements_read_a_runs_final_numbers_ratio_and_findings():
    result = fake_result(grad_first=1e-7, loss=(2.45, 2.31), val_accuracy=0.1)
    measured = measurements(result, diagnose(result))
    assert measured.val_accuracy == pytest.approx(0.1) and measured.ratio_first_last == pytest.approx(1e-7)
    assert "vanishing" in measured.findings and not measured.diverged
    assert measured.lambda_max is None and measured.first_half_blanked is None
    diverged = fake_result(diverged_at=3)
    assert measurements(diverged, ["diverged"]).diverged_at_step == 3


# --- parsing a lesson -----------------------------------------------------------------------------


def test_a_good_lesson_parses_into_steps_with_configs_predictions_and_challenges():
    parsed = lesson()
    assert (parsed.name, parsed.title, len(parsed.steps)) == ("initialization", "Initialization", 2)
    first, second = parsed.steps
    assert first.config == PRESETS["he2015-relu-glorot"].config and first.locked == ("depth", "activation")
    assert [c.text for c in first.prediction.choices] == ["Yes, above 80 %", "No, it stays near chance"]
    assert first.challenge is None and second.prediction is None
    assert second.config == PRESETS["he2015-relu-glorot"].config.replace(epochs=2)
    assert second.challenge.change == ("initializer",) and second.challenge.solution == {"initializer": "he_normal"}
    assert second.challenge.solved(second.config).initializer == "he_normal"


def test_a_step_without_a_config_starts_from_the_defaults():
    text = 'title = "t"\n[[steps]]\ntitle = "s"\ntext = "x"\n'
    assert lesson(text).steps[0].config == RunConfig() and lesson(text).summary == ""


def test_locked_fields_are_the_lock_plus_with_a_challenge_every_control_it_does_not_let_change():
    first, second = lesson().steps
    assert first.locked_fields() == ("depth", "activation")
    assert "initializer" not in second.locked_fields()
    assert {"depth", "learning_rate", "clipping"} <= set(second.locked_fields())
    assert not {"clipnorm", "clipvalue"} & set(second.locked_fields())  # the clipping pair is one control


def test_clip_fields_name_the_clipping_control_and_turning_one_on_turns_the_others_off():
    text = GOOD.replace('lock = ["depth", "activation"]', 'lock = ["clipvalue"]').replace(
        'config = { preset = "he2015-relu-glorot", epochs = 2 }', 'config = { clipvalue = 0.5 }').replace(
        'change = ["initializer"]', 'change = ["clipnorm"]').replace(
        'solution = { initializer = "he_normal" }', 'solution = { clipnorm = 1.0 }')
    first, second = lesson(text).steps
    assert first.locked == ("clipping",) and second.challenge.change == ("clipping",)
    assert second.challenge.solved(second.config).clipping == ("clipnorm", 1.0)


def bad(text: str) -> LessonError:
    with pytest.raises(LessonError) as caught:
        parse_lesson(text, "initialization")
    return caught.value


def test_a_toml_syntax_error_names_tomllibs_line():
    error = bad(GOOD.replace('title = "Your turn"', 'title = "Your turn'))
    assert error.line == 16 and str(error).startswith("initialization.toml, line 16: not valid TOML")


def test_an_unknown_key_in_a_step_names_its_header_line():
    error = bad(GOOD.replace('lock = ["depth"', 'lokc = ["depth"'))
    assert str(error).startswith(f"initialization.toml, line {HEADERS[0]} (step 1): unknown key 'lokc'")


def test_an_unknown_top_level_key_names_its_own_line():
    error = bad(GOOD.replace("summary =", "sumary ="))
    assert str(error).startswith("initialization.toml, line 2: unknown key 'sumary' in the lesson")


def test_a_bad_config_value_in_step_two_names_step_two_and_its_header_line():
    error = bad(GOOD.replace("epochs = 2", "depth = 500"))
    assert str(error) == (f"initialization.toml, line {HEADERS[1]} (step 2): "
                          "depth=500 is not valid: a whole number from 1 to 50")
    assert (error.line, error.step) == (HEADERS[1], 2)


def test_a_bad_condition_names_the_step_and_the_allowed_metrics():
    error = bad(GOOD.replace('when = "val_accuracy < 0.2"', 'when = "accuracy < 0.2"'))
    assert str(error).startswith(f"initialization.toml, line {HEADERS[0]} (step 1): choice 2: unknown metric "
                                 "'accuracy': use one of val_accuracy")


@pytest.mark.parametrize("change, says", [
    (('"he2015-relu-glorot" }\nlock', '"no-such-preset" }\nlock'), "unknown preset 'no-such-preset'"),
    (('goal = "val_accuracy >= 0.8"\n', ""), "challenge needs 'goal'"),
    (('solution = { initializer = "he_normal" }\n', ""), "challenge needs 'solution'"),
    (('change = ["initializer"]', 'change = ["initialiser"]'), "unknown field 'initialiser'"),
    (('lock = ["depth", "activation"]', 'lock = ["preset"]'), "unknown field 'preset'"),
    (('solution = { initializer = "he_normal" }', 'solution = { initializer = "he_normal", depth = 10 }'),
     "the solution changes depth, which challenge.change does not let the student change"),
    (('solution = { initializer = "he_normal" }', 'solution = { initializer = "glorot_uniform" }'),
     "the solution leaves the step's config as it is"),
    (('solution = { initializer = "he_normal" }', 'solution = { initializer = "identity" }'),
     "challenge.solution: initializer='identity' is not valid"),
    (('text = "Fix it."', 'text = "' + "x" * 5001 + '"'), "the step's text has 5,001 characters; at most 5,000"),
    (('change = ["initializer"]', 'change = ["initializer"]\nbonus = 1'), "unknown key 'bonus' in challenge"),
])
def test_each_schema_error_names_the_steps_header_line(change, says):
    error = bad(GOOD.replace(*change))
    assert says in str(error)
    assert error.line in HEADERS and str(error).startswith(f"initialization.toml, line {error.line} (step ")


def test_too_many_choices_steps_or_bytes_and_no_steps_are_errors():
    choices = ", ".join(f'{{ text = "c{i}", when = "val_accuracy > {i / 20}" }}' for i in range(11))
    assert "2 to 10 choices" in str(bad(re.sub(r"choices = \[.*?\]\n\n", f"choices = [{choices}]\n\n", GOOD,
                                               flags=re.S)))
    step = '[[steps]]\ntitle = "s"\ntext = "x"\n'
    error = bad('title = "t"\n' + step * 31)
    assert "at most 30 steps" in str(error) and error.line == 1 + 3 * 30 + 1
    assert "at least one [[steps]]" in str(bad('title = "t"\n'))
    assert "at most 64 KB" in str(bad(GOOD + "# " + "x" * 70_000))


def test_a_condition_on_a_metric_the_steps_run_never_measures_is_an_error():
    error = bad(GOOD.replace('when = "val_accuracy < 0.2"', 'when = "first_half_blanked < 0.2"'))
    assert "choice 2: first_half_blanked is measured only for rnn, lstm, gru (this step runs architecture=mlp" \
        in str(error) and error.line == HEADERS[0]
    assert "lambda_max is measured only for an mlp trained with sgd or momentum" in str(bad(GOOD.replace(
        '"he2015-relu-glorot" }\nlock', '"seed-vanishing-sigmoid" }\nlock').replace(
        'when = "val_accuracy < 0.2"', 'when = "lambda_max > 10"')))
    assert lesson(GOOD.replace('when = "val_accuracy < 0.2"', 'when = "lambda_max > 10"'))  # SGD: measured


@pytest.mark.parametrize("config", [RunConfig(), RunConfig(optimizer="sgd"), RunConfig(optimizer="momentum"),
                                    RunConfig(architecture="cnn", optimizer="sgd"), RunConfig(architecture="lstm")])
def test_where_lambda_counts_as_measured_is_where_training_measures_it(config):
    from gradviz.lessons.conditions import unmeasured
    from gradviz.training.train import measures_sharpness

    assert (unmeasured(parse_condition("lambda_max > 1"), config) is None) == measures_sharpness(config)


def test_a_lesson_text_that_is_not_a_string_is_an_error():
    assert "the question must be non-empty text" in str(bad(GOOD.replace('question = "Will it learn?"',
                                                                         "question = 3")))


# --- reveal and check -----------------------------------------------------------------------------


THREE = '''title = "t"
[[steps]]
title = "s"
text = "x"
[steps.prediction]
question = "How well?"
choices = [ { text = "well", when = "val_accuracy >= 0.8" },
            { text = "no divergence", when = "not diverged" },
            { text = "badly", when = "val_accuracy < 0.2" } ]
'''


def test_a_reveal_may_find_no_choice_one_or_several():
    step = lesson(THREE).steps[0]
    none = step.reveal(Measured(val_accuracy=0.5, diverged_at_step=7))
    assert none.holds == (False, False, False) and none.answers == ()
    assert none.text == "None of the choices: validation accuracy 50.0 %; diverged at step 7."
    one = step.reveal(Measured(val_accuracy=0.1, diverged_at_step=7))
    assert [c.text for c in one.answers] == ["badly"]
    several = step.reveal(Measured(val_accuracy=0.9))
    assert several.holds == (True, True, False)
    assert several.text == "The answer: well / no divergence (validation accuracy 90.0 %; did not diverge)."


def test_reveal_without_a_prediction_is_an_error():
    with pytest.raises(ValueError):
        lesson().steps[1].reveal(Measured())


def test_a_challenge_is_done_when_the_goal_holds_and_only_allowed_controls_changed():
    step = lesson().steps[1]
    check = step.challenge.check(step.config, step.config.replace(initializer="he_normal"), Measured(val_accuracy=0.83))
    assert check.done and check.goal_met and check.changed_outside == ()
    assert check.message == "Done: validation accuracy 83.0 % (goal: ≥ 80 %)."


def test_a_challenge_whose_goal_is_not_met_says_what_is_missing():
    step = lesson().steps[1]
    check = step.challenge.check(step.config, step.config, Measured(val_accuracy=0.452))
    assert not check.done and not check.goal_met
    assert check.message == "Not yet: validation accuracy 45.2 % (goal: ≥ 80 %)."


def test_a_challenge_is_not_done_when_a_fixed_control_changed_even_if_the_goal_holds():
    step = lesson().steps[1]
    run = step.config.replace(initializer="he_normal", depth=10, clipnorm=1.0)
    check = step.challenge.check(step.config, run, Measured(val_accuracy=0.9))
    assert not check.done and check.goal_met and check.changed_outside == ("depth", "clipping")
    assert "you changed depth, clipping, which this challenge keeps fixed: set depth back to 30; clipping back " \
           "to off (only initializer may change)" in check.message


def test_a_field_the_run_does_not_read_may_differ():
    step = lesson().steps[1]  # he_normal does not read init_std
    check = step.challenge.check(step.config, step.config.replace(initializer="he_normal", init_std=0.5),
                                 Measured(val_accuracy=0.9))
    assert check.done


# --- the library ----------------------------------------------------------------------------------


def test_the_builtin_lessons_all_load_with_no_messages(monkeypatch):
    monkeypatch.delenv(LESSONS_DIR_ENV, raising=False)
    lessons, messages = load_lessons()
    assert messages == []
    assert list(lessons) == ["seed-experiments", "initialization", "learning-rate", "through-time"]
    assert {p.stem for p in BUILTIN_DIR.glob("*.toml")} == set(lessons)
    for found in lessons.values():
        assert 3 <= len(found.steps) <= 5
        assert all(s.challenge.solution for s in found.steps if s.challenge)
    seed = [s.config for s in lessons["seed-experiments"].steps]
    assert [PRESETS[n].config for n in ("seed-vanishing-sigmoid", "seed-fixed-resnet", "seed-exploding-linear",
                                        "seed-clipnorm")] == seed[:4]


def test_every_builtin_solution_is_a_value_the_sidebar_offers(monkeypatch):
    """A challenge a student cannot reach with the controls is no challenge."""
    from gradviz.ui import controls

    offered = {"width": controls.WIDTHS, "batch_size": controls.BATCHES, "train_size": controls.TRAIN_SIZES,
               "learning_rate": controls.LEARNING_RATES, "init_std": controls.STDS, "recurrent_std": controls.STDS,
               "init_gain": controls.GAINS, "clipnorm": controls.CLIPS, "global_clipnorm": controls.CLIPS,
               "clipvalue": controls.CLIPS}
    monkeypatch.delenv(LESSONS_DIR_ENV, raising=False)
    steps = builtin_steps("challenge")
    assert steps
    for name, number, step in steps:
        for field, value in step.challenge.solution.items():
            assert field not in offered or value in offered[field], (name, number, field, value)
    assert 0.3 in controls.LEARNING_RATES and 3e-5 in controls.LEARNING_RATES  # written as people write them


def test_a_lesson_file_that_breaks_the_parser_is_one_message_and_the_others_load(tmp_path, monkeypatch):
    (tmp_path / "typed.toml").write_text('title="x"\n[[steps]]\ntitle="a"\ntext="b"\nconfig = { preset = ["x"] }\n')
    (tmp_path / "deep.toml").write_text('title="x"\nk = ' + "[" * 3000 + "]" * 3000 + "\n")
    monkeypatch.setenv(LESSONS_DIR_ENV, str(tmp_path))
    lessons, messages = load_lessons()
    assert len(lessons) == 4 and len(messages) == 2
    assert messages[0].startswith("deep.toml: cannot be used") and "typed.toml, line 2 (step 1)" in messages[1]


def test_a_teacher_folder_loads_the_good_lesson_and_reports_the_bad_one_with_its_line(tmp_path, monkeypatch):
    (tmp_path / "good-one.toml").write_text(GOOD)
    (tmp_path / "broken.toml").write_text(GOOD.replace("epochs = 2", "depth = 500"))
    (tmp_path / "Not A Name.toml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a lesson")
    monkeypatch.setenv(LESSONS_DIR_ENV, str(tmp_path))
    lessons, messages = load_lessons()
    assert lessons["good-one"].title == "Initialization" and "broken" not in lessons
    assert len(messages) == 2
    assert any(m.startswith(f"broken.toml, line {HEADERS[1]} (step 2): depth=500") for m in messages)
    assert any(m.startswith("Not A Name.toml: skipped") for m in messages)


def test_a_teacher_lesson_with_a_builtins_name_replaces_it_in_place(tmp_path, monkeypatch):
    (tmp_path / "initialization.toml").write_text(GOOD.replace('title = "Initialization"', 'title = "Mine"'))
    monkeypatch.setenv(LESSONS_DIR_ENV, str(tmp_path))
    lessons, messages = load_lessons()
    assert messages == [] and lessons["initialization"].title == "Mine"
    assert list(lessons)[:2] == ["seed-experiments", "initialization"]


def test_a_teacher_file_saved_with_a_byte_order_mark_loads(tmp_path, monkeypatch):
    (tmp_path / "notepad.toml").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    monkeypatch.setenv(LESSONS_DIR_ENV, str(tmp_path))
    lessons, messages = load_lessons()
    assert messages == [] and lessons["notepad"].title == "Initialization"


def test_a_missing_teacher_folder_is_one_message(tmp_path, monkeypatch):
    monkeypatch.setenv(LESSONS_DIR_ENV, str(tmp_path / "nowhere"))
    lessons, messages = load_lessons()
    assert len(messages) == 1 and "nowhere" in messages[0] and "seed-experiments" in lessons


def test_lessons_are_parsed_again_only_when_their_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    monkeypatch.setenv(LESSONS_DIR_ENV, str(tmp_path))
    first = load_lessons()[0]["mine"]
    assert load_lessons()[0]["mine"] is first
    path.write_text(GOOD.replace('title = "Initialization"', 'title = "Changed"'))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load_lessons()[0]["mine"].title == "Changed"


# --- the built-in lessons, trained on real MNIST (slow) -------------------------------------------


def builtin_steps(kind: str):
    lessons, _ = load_lessons()
    return [(name, number, step) for name, found in lessons.items()
            for number, step in enumerate(found.steps, 1) if getattr(step, kind) is not None]


def test_builtin_challenge_solutions_meet_their_goals(trained, monkeypatch):
    monkeypatch.delenv(LESSONS_DIR_ENV, raising=False)
    steps = builtin_steps("challenge")
    assert steps
    for name, number, step in steps:
        solved = step.challenge.solved(step.config)
        result = trained(solved)
        measured = measurements(result, diagnose(result))
        check = step.challenge.check(step.config, solved, measured)
        assert step.challenge.goal.holds(measured) and check.done, (name, number, check.message)


def test_builtin_predictions_have_an_answer(trained, monkeypatch):
    monkeypatch.delenv(LESSONS_DIR_ENV, raising=False)
    steps = builtin_steps("prediction")
    assert steps
    for name, number, step in steps:
        result = trained(step.config)
        reveal = step.reveal(measurements(result, diagnose(result)))
        assert reveal.answers, (name, number, reveal.text)
