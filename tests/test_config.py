"""RunConfig: every field's range, the one error type, and the string round trip."""

import dataclasses

import pytest

from gradviz.config import RULES, ConfigError, RunConfig, format_value, parse_value

GOOD = {
    "architecture": ["mlp", "cnn", "rnn", "lstm", "gru"],
    "depth": ["1", "50"],
    "width": ["8", "1024"],
    "activation": ["sigmoid", "tanh", "softsign", "relu", "leaky_relu", "elu", "selu", "gelu", "linear"],
    "initializer": ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                    "random_normal", "random_uniform", "orthogonal", "zeros"],
    "init_std": ["0.0001", "10"],
    "init_gain": ["0.01", "1.2", "10"],
    "batch_norm": ["true", "false"],
    "residual": ["true", "false"],
    "optimizer": ["sgd", "momentum", "adam", "rmsprop"],
    "learning_rate": ["1e-6", "10"],
    "clipnorm": ["off", "0.5"],
    "global_clipnorm": ["off", "5"],
    "clipvalue": ["off", "0.1"],
    "recurrent_initializer": ["orthogonal", "glorot_uniform", "random_normal"],
    "recurrent_std": ["0.0001", "10"],
    "step_pixels": ["4", "7", "28"],
    "batch_size": ["8", "128"],
    "epochs": ["1", "100"],
    "train_size": ["128", "60000"],
    "seed": ["0", "2147483647"],
}
BAD = {
    "architecture": ["transformer", "", "MLP2"],
    "depth": ["0", "51", "2.5", "abc", "nan", "inf"],
    "width": ["7", "1025", "-8"],
    "activation": ["swish", "relu6"],
    "initializer": ["identity", "ones"],
    "init_std": ["0", "1e-5", "11", "-1", "nan"],
    "init_gain": ["0", "-1", "11", "inf"],
    "batch_norm": ["maybe", "2"],
    "residual": ["yes please"],
    "optimizer": ["adamw", "lbfgs"],
    "learning_rate": ["0", "1e-7", "11", "-0.1", "fast"],
    "clipnorm": ["-1", "1e7", "inf", "x"],
    "global_clipnorm": ["-0.5", "nan"],
    "clipvalue": ["-3", "big"],
    "recurrent_initializer": ["identity", "he_normal"],
    "recurrent_std": ["0", "20", "x"],
    "step_pixels": ["3", "29", "5", "6"],
    "batch_size": ["7", "4096", "12.5"],
    "epochs": ["0", "101"],
    "train_size": ["99", "60001"],
    "seed": ["-1", "2147483648", "1.5"],
}


def test_tables_cover_every_field():
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(GOOD) == set(BAD) == set(RULES) == fields


@pytest.mark.parametrize("field,text", [(f, t) for f, texts in GOOD.items() for t in texts])
def test_good_values_parse_and_round_trip(field, text):
    config = RunConfig.from_strings({field: text})
    assert RunConfig.from_strings(config.to_strings()) == config
    assert format_value(getattr(config, field)) == format_value(parse_value(field, text))


@pytest.mark.parametrize("field,text", [(f, t) for f, texts in BAD.items() for t in texts])
def test_bad_values_raise_the_one_error_naming_field_value_and_rule(field, text):
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_strings({field: text})
    error = caught.value
    assert error.field == field
    assert error.value == text
    assert str(error).startswith(f"{field}={text!r} is not valid: ")
    assert error.allowed  # says what is allowed


def test_python_values_are_validated_too():
    with pytest.raises(ConfigError, match="^depth=0 "):
        RunConfig(depth=0)
    with pytest.raises(ConfigError, match="batch_norm"):
        RunConfig(batch_norm="true")  # a string is not a bool
    with pytest.raises(ConfigError, match="learning_rate"):
        RunConfig(learning_rate=float("nan"))


def test_unknown_field_is_named():
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_strings({"dropout": "0.5"})
    assert caught.value.field == "dropout" and "known:" in str(caught.value)


def test_only_one_clipping_mode_like_keras():
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_strings({"clipnorm": "1", "clipvalue": "0.5"})
    assert caught.value.field == "clipvalue" and "only one" in str(caught.value)


def test_batch_size_cannot_exceed_train_size():
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_strings({"train_size": "200", "batch_size": "256"})
    assert caught.value.field == "batch_size"


def test_off_words_and_zero_turn_clipping_off():
    for word in ("off", "none", "", "0", "OFF"):
        assert RunConfig.from_strings({"clipnorm": word}).clipnorm is None


def test_strings_are_short_and_exact():
    config = RunConfig(learning_rate=0.001, clipnorm=1.0, batch_norm=True)
    strings = config.to_strings()
    assert strings["learning_rate"] == "0.001"
    assert strings["clipnorm"] == "1"
    assert strings["batch_norm"] == "true"
    assert strings["global_clipnorm"] == "off"
    assert RunConfig().to_strings(only_changed=True) == {}
    assert config.to_strings(only_changed=True) == {"clipnorm": "1", "batch_norm": "true"}


def test_frozen_and_hashable():
    config = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depth = 3
    assert {config: 1}[RunConfig()] == 1


def test_simple_rnn_takes_tanh_or_relu_only():
    assert RunConfig(architecture="rnn", activation="tanh").architecture == "rnn"
    with pytest.raises(ConfigError) as caught:
        RunConfig(architecture="rnn", activation="sigmoid")
    assert caught.value.field == "activation"
    assert RunConfig(architecture="lstm", activation="sigmoid").time_steps == 28  # lstm ignores it


def test_recurrent_configs_ignore_feedforward_fields_in_the_key():
    lstm = RunConfig(architecture="lstm", step_pixels=14)
    assert lstm.time_steps == 56
    for change in ({"depth": 20}, {"batch_norm": True}, {"residual": True}, {"activation": "tanh"},
                   {"recurrent_std": 3.0}):
        assert lstm.replace(**change).cache_key() == lstm.cache_key(), change
    assert lstm.replace(recurrent_initializer="glorot_uniform").cache_key() != lstm.cache_key()
    mlp = RunConfig()
    assert mlp.replace(step_pixels=4).cache_key() == mlp.cache_key() and mlp.time_steps == 0


def test_cache_key_covers_result_fields_only():
    base = RunConfig(initializer="he_normal")
    assert base.cache_key() == base.replace(init_std=3.0).cache_key()  # he_normal ignores init_std
    scaled = RunConfig(initializer="random_normal")
    assert scaled.cache_key() != scaled.replace(init_std=3.0).cache_key()
    assert base.cache_key() == base.replace(init_gain=3.0).cache_key()  # only orthogonal reads its gain
    orthogonal = base.replace(initializer="orthogonal")
    assert orthogonal.cache_key() != orthogonal.replace(init_gain=3.0).cache_key()
    base = scaled.replace(train_size=60000)
    for field, texts in GOOD.items():
        other = RunConfig.from_strings({field: texts[-1]}, base=base)
        if other != base and field not in base.unused_fields() | other.unused_fields():
            assert other.cache_key() != base.cache_key(), field


def test_dict_round_trip():
    config = RunConfig(architecture="cnn", depth=3, clipvalue=0.5, seed=7)
    assert RunConfig.from_dict(config.to_dict()) == config


def test_clipping_names_the_one_clip_in_force():
    assert RunConfig().clipping is None
    assert RunConfig(clipvalue=0.5).clipping == ("clipvalue", 0.5)
    assert RunConfig(global_clipnorm=2).clipping == ("global_clipnorm", 2.0)
