"""Teacher links: `lock=` and `hide=` read from a link, what a fix would move, and the config left alone."""

from gradviz.config import RunConfig
from gradviz.urlstate import CONTROLS, Restrictions, parse_query, parse_restrictions


def test_lock_and_hide_name_controls_and_unknown_names_get_a_note():
    limits, notes = parse_restrictions("depth, Activation,clipnorm", "seed,bogus")
    assert limits.locked == {"depth", "activation", "clipping"} and limits.hidden == {"seed"}
    assert len(notes) == 1 and "bogus" in notes[0] and notes[0].startswith("hide:")


def test_no_restrictions_is_falsy_and_a_long_list_is_cut():
    assert not parse_restrictions()[0]
    limits, notes = parse_restrictions(",".join(["x"] * 10_000))
    assert not limits and len(notes) < 40


def test_a_fix_is_blocked_by_the_controls_it_would_move():
    limits = Restrictions(locked=frozenset({"learning_rate"}), hidden=frozenset({"clipping"}))
    assert limits.blocks({"learning_rate": 0.001, "depth": 3}) == ["learning_rate"]
    assert limits.blocks({"clipnorm": 1.0}) == ["clipping"]
    assert limits.blocks({"activation": "relu"}) == []
    assert limits.fixed("learning_rate") and limits.fixed("clipping") and not limits.fixed("depth")


def test_restrictions_round_trip_through_the_link():
    limits = Restrictions(frozenset({"depth", "activation"}), frozenset({"seed"}))
    assert limits.query() == {"lock": "activation,depth", "hide": "seed"}
    assert parse_restrictions(**limits.query())[0] == limits
    assert set(CONTROLS) >= {"depth", "clipping", "preset"} and "clipnorm" not in CONTROLS


def test_teacher_and_lesson_keys_are_not_config_fields_in_a_link():
    state, notes = parse_query({"depth": "3", "lock": "depth", "hide": "seed", "lesson": "x", "step": "2"})
    assert notes == [] and state.config == RunConfig(depth=3)
