"""Property tests over the URL and --set parsers: any strings give a config or the one clear error."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from gradviz.cli import BadInput, parse_sets
from gradviz.config import RULES, ConfigError, RunConfig
from gradviz.sweeps.compare import parse_changes
from gradviz.urlstate import parse_query, to_query

FIELD_NAMES = st.sampled_from(list(RULES) + ["preset", "present", "b", "dropout", "", "ünï", "x" * 200])
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "0", "true", "off", "relu", "1" * 400, " 3 ", "0x10"]),
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
PARAMS = st.dictionaries(FIELD_NAMES, st.one_of(VALUES, st.lists(VALUES, max_size=3)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(RULES) + ["dropout", "Depth", ""]), VALUES, max_size=8))
def test_from_strings_gives_a_config_or_the_one_error(values):
    try:
        config = RunConfig.from_strings(values)
    except ConfigError as error:
        assert str(error).startswith(f"{error.field or '(empty name)'}=") and len(str(error)) < 1000
        return
    assert RunConfig.from_strings(config.to_strings()) == config  # and it round-trips


@settings(max_examples=300, deadline=None)
@given(PARAMS)
def test_url_parsing_never_raises_and_always_yields_a_valid_state(params):
    state, messages = parse_query(params)
    assert isinstance(state.config, RunConfig)
    assert all(isinstance(m, str) and len(m) < 1500 for m in messages)
    again, notes = parse_query(to_query(state))  # what we write back is clean
    assert again.config == state.config and not notes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=string.printable, max_size=30), max_size=6))
def test_set_flags_give_a_config_or_a_clear_error(pairs):
    try:
        RunConfig.from_strings(parse_sets(pairs))
    except (ConfigError, BadInput) as error:
        assert str(error)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_compare_variant_text_never_raises(text):
    config, notes = RunConfig.coerce(parse_changes(text))
    assert isinstance(config, RunConfig) and all(isinstance(n, str) for n in notes)
