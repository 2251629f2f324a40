"""RunConfig: one frozen, validated description of a run, with a string round trip for URLs and CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from gradviz.architecture import INPUT_PIXELS

ARCHITECTURES = ("mlp", "cnn", "rnn", "lstm", "gru")
RECURRENT = ("rnn", "lstm", "gru")  # one recurrent layer over the image read as a sequence
RECURRENT_INITIALIZERS = ("orthogonal", "glorot_uniform", "random_normal")
ACTIVATIONS = ("sigmoid", "tanh", "softsign", "relu", "leaky_relu", "elu", "selu", "gelu", "linear")
INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
    "random_normal", "random_uniform", "orthogonal", "zeros",
)
# Only these initializers read init_std; for the others it is ignored (and left out of cache keys).
SCALED_INITIALIZERS = ("random_normal", "random_uniform")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
CLIP_FIELDS = ("clipnorm", "global_clipnorm", "clipvalue")
OFF_WORDS = ("off", "none", "null", "", "0", "false")
CLIP_MAX = 1e6


class ConfigError(ValueError):
    """A field got a value it does not allow; the message names the field, the value and the rule."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        # Names and values may come from a URL: long ones are cut, so a message stays readable.
        name = (field if len(field) <= 40 else field[:37] + "...") or "(empty name)"
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        super().__init__(f"{name}={shown} is not valid: {allowed}")


@dataclass(frozen=True)
class _Rule:
    kind: str  # "int", "float", "log", "bool", "choice", "clip"
    low: float | None = None
    high: float | None = None
    choices: tuple = ()  # the allowed values, for "choice" (and an int field limited to a set)
    help: str = ""

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "bool":
            return "true or false"
        if self.kind == "clip":
            return f"off, or a number > 0 and <= {as_written(CLIP_MAX)}"
        what = "a whole number" if self.kind == "int" else "a number"
        return f"{what} from {as_written(self.low)} to {as_written(self.high)}"


def as_written(number: float) -> str:
    """A number as people write it in a sentence: 2147483647 -> '2,147,483,647', 1e-06 -> '0.000001'."""
    if float(number).is_integer() and abs(number) >= 1:
        return f"{int(number):,}"
    return f"{number:.10f}".rstrip("0").rstrip(".")


RULES: dict[str, _Rule] = {
    "architecture": _Rule("choice", choices=ARCHITECTURES,
                          help="mlp: dense layers; cnn: ResNet-style CNN; rnn (SimpleRNN), lstm, gru: "
                               "sequential MNIST"),
    "depth": _Rule("int", 1, 50, help="hidden layers (mlp) or residual blocks (cnn); not used by rnn/lstm/gru"),
    "width": _Rule("int", 8, 1024, help="units per layer (mlp), base filters (cnn) or hidden size (rnn/lstm/gru)"),
    "activation": _Rule("choice", choices=ACTIVATIONS),
    "initializer": _Rule("choice", choices=INITIALIZERS),
    "init_std": _Rule("log", 1e-4, 10.0, help="std of random_normal / random_uniform"),
    "init_gain": _Rule("log", 0.01, 10.0, help="gain of the orthogonal initializer (1 keeps every direction's length)"),
    "batch_norm": _Rule("bool"),
    "residual": _Rule("bool"),
    "optimizer": _Rule("choice", choices=OPTIMIZERS),
    "learning_rate": _Rule("log", 1e-6, 10.0),
    "clipnorm": _Rule("clip", help="clip each gradient tensor to this L2 norm"),
    "global_clipnorm": _Rule("clip", help="clip all gradients together to this global L2 norm"),
    "clipvalue": _Rule("clip", help="clip every gradient element to [-v, v]"),
    "recurrent_initializer": _Rule("choice", choices=RECURRENT_INITIALIZERS, help="rnn/lstm/gru recurrent kernel"),
    "recurrent_std": _Rule("log", 1e-4, 10.0, help="std of a random_normal recurrent kernel"),
    "step_pixels": _Rule("int", 4, 28, choices=(4, 7, 8, 14, 16, 28),
                         help="pixels read per time step (784 / step_pixels steps; 28 = one row)"),
    "batch_size": _Rule("int", 8, 2048),
    "epochs": _Rule("int", 1, 100),
    "train_size": _Rule("int", 100, 60000, help="training examples (capped by what the data holds)"),
    "seed": _Rule("int", 0, 2**31 - 1),
}
# The sidebar's controls, by name (teacher links, lessons): every field, the three clip fields as one.
CLIPPING = "clipping"  # the one control for clipnorm, global_clipnorm and clipvalue (a mode and a value)
CONTROLS = tuple(f for f in RULES if f not in CLIP_FIELDS) + (CLIPPING,)


def control_of(field: str) -> str:
    """The sidebar control that sets a config field (the three clip fields share one)."""
    return CLIPPING if field in CLIP_FIELDS else field


def changed_controls(before: "RunConfig", after: "RunConfig") -> tuple[str, ...]:
    """The controls whose values differ, in CONTROLS order; fields `after` does not read are left out."""
    unused = after.unused_fields()
    controls = {control_of(f) for f in RULES
                if f not in unused and format_value(getattr(before, f)) != format_value(getattr(after, f))}
    return tuple(c for c in CONTROLS if c in controls)


def _check_number(field: str, value: Any, rule: _Rule) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field, value, rule.describe())
    if rule.kind == "int" and float(value) != int(value):
        raise ConfigError(field, value, rule.describe())
    if not rule.low <= value <= rule.high or (rule.choices and value not in rule.choices):
        raise ConfigError(field, value, rule.describe())
    return int(value) if rule.kind == "int" else float(value)


def _check(field: str, value: Any) -> Any:
    """Return the value in its canonical Python type, or raise ConfigError."""
    rule = RULES[field]
    if rule.kind == "choice":
        if value not in rule.choices:
            raise ConfigError(field, value, rule.describe())
        return value
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(field, value, rule.describe())
        return value
    if rule.kind == "clip":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(field, value, rule.describe())
        if not 0 < value <= CLIP_MAX:
            raise ConfigError(field, value, rule.describe())
        return float(value)
    return _check_number(field, value, rule)


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's numbers. Invalid values never make it past __post_init__."""

    architecture: str = "mlp"
    depth: int = 6
    width: int = 128
    activation: str = "relu"
    initializer: str = "he_normal"
    init_std: float = 0.05
    init_gain: float = 1.0
    batch_norm: bool = False
    residual: bool = False
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    clipnorm: float | None = None
    global_clipnorm: float | None = None
    clipvalue: float | None = None
    recurrent_initializer: str = "orthogonal"
    recurrent_std: float = 0.1
    step_pixels: int = 28
    batch_size: int = 128
    epochs: int = 3
    train_size: int = 8000
    seed: int = 0

    def __post_init__(self):
        for field in RULES:
            # object.__setattr__ because the dataclass is frozen; this only canonicalises types.
            object.__setattr__(self, field, _check(field, getattr(self, field)))
        clips = [f for f in CLIP_FIELDS if getattr(self, f) is not None]
        if len(clips) > 1:
            raise ConfigError(
                clips[1], getattr(self, clips[1]),
                f"only one of clipnorm, global_clipnorm, clipvalue may be on (Keras allows one); "
                f"{clips[0]} is already {getattr(self, clips[0]):g}",
            )
        if self.architecture == "rnn" and self.activation not in ("tanh", "relu"):
            raise ConfigError("activation", self.activation, "tanh or relu for a SimpleRNN (architecture=rnn)")
        if self.batch_size > self.train_size:
            raise ConfigError("batch_size", self.batch_size, f"at most train_size ({self.train_size})")

    # --- round trips -------------------------------------------------------------------------

    def replace(self, **changes: Any) -> "RunConfig":
        unknown = sorted(set(changes) - set(RULES))
        if unknown:
            raise ConfigError(unknown[0], changes[unknown[0]], "unknown field; known: " + ", ".join(RULES))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_strings(self, only_changed: bool = False) -> dict[str, str]:
        """Flat dict of strings (URL query / --set); `only_changed` keeps links short."""
        default = RunConfig()
        return {
            f: format_value(getattr(self, f))
            for f in RULES
            if not only_changed or getattr(self, f) != getattr(default, f)
        }

    @classmethod
    def from_strings(cls, values: Mapping[str, str], base: "RunConfig | None" = None) -> "RunConfig":
        """Parse a flat dict of strings over `base` (default RunConfig()). Raises ConfigError."""
        changes = {field: parse_value(field, text) for field, text in values.items()}
        return (base or cls()).replace(**changes)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        return cls().replace(**dict(values))

    @classmethod
    def coerce(cls, values: Mapping[str, Any], base: "RunConfig | None" = None) -> tuple["RunConfig", list[str]]:
        """Like from_strings, but never raises: each bad value (or a change that clashes with
        another) is reported and left at `base`'s value. For URLs and widgets."""
        base = base or cls()
        messages, good = [], {}
        for field, value in values.items():
            try:
                good[field] = parse_value(field, value) if isinstance(value, str) else _check_known(field, value)
            except ConfigError as error:
                messages.append(_fallback_note(error, base))
        while True:
            try:
                return base.replace(**good), messages
            except ConfigError as error:  # a cross-field clash: drop the named change, else the last one
                culprit = error.field if error.field in good else list(good)[-1]
                value = good.pop(culprit)
                if culprit != error.field:
                    error = ConfigError(culprit, value, f"clashes with {error.field}: {error.allowed}")
                messages.append(_fallback_note(error, base))

    def unused_fields(self) -> set[str]:
        """Fields this config's architecture does not read (left out of cache keys, greyed in the UI)."""
        unused = set() if self.initializer in SCALED_INITIALIZERS else {"init_std"}
        unused |= set() if self.initializer == "orthogonal" else {"init_gain"}
        if self.architecture in RECURRENT:
            unused |= {"depth", "batch_norm", "residual"}
            unused |= {"activation"} if self.architecture != "rnn" else set()
            unused |= {"recurrent_std"} if self.recurrent_initializer != "random_normal" else set()
        else:
            unused |= {"recurrent_initializer", "recurrent_std", "step_pixels"}
        return unused

    @property
    def time_steps(self) -> int:
        """Sequence length for rnn/lstm/gru (the image read step_pixels at a time); 0 otherwise."""
        return INPUT_PIXELS // self.step_pixels if self.architecture in RECURRENT else 0

    @property
    def clipping(self) -> tuple[str, float] | None:
        """The clipping in force as (field, threshold), or None; at most one clip field is set."""
        return next(((f, getattr(self, f)) for f in CLIP_FIELDS if getattr(self, f) is not None), None)

    def cache_key(self) -> str:
        """Hash of the fields that change the result, and nothing else."""
        fields = {k: v for k, v in self.to_strings().items() if k not in self.unused_fields()}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _check_known(field: str, value: Any) -> Any:
    if field not in RULES:
        raise ConfigError(field, value, "unknown field; known: " + ", ".join(RULES))
    return _check(field, value)


def _fallback_note(error: ConfigError, base: RunConfig) -> str:
    if error.field not in RULES:
        return f"Ignored {error}."
    return f"{error} - using {error.field}={format_value(getattr(base, error.field))}."


def format_value(value: Any) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).removesuffix(".0")  # 1.0 -> "1", 0.001 -> "0.001": short, exact links
    return str(value)


def parse_value(field: str, text: str) -> Any:
    """Parse one field from its string form; raises ConfigError naming the field and the text given."""
    if field not in RULES:
        raise ConfigError(field, text, "unknown field; known: " + ", ".join(RULES))
    rule = RULES[field]
    try:
        return _check(field, _from_text(rule, str(text).strip().lower()))
    except (ValueError, OverflowError):  # ConfigError included: report the text as the user gave it
        raise ConfigError(field, text, rule.describe()) from None


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _from_text(rule: _Rule, raw: str) -> Any:
    if rule.kind == "choice":
        return raw
    if rule.kind == "bool":
        if raw not in _TRUE + _FALSE:
            raise ValueError(raw)
        return raw in _TRUE
    if rule.kind == "clip" and raw in OFF_WORDS:
        return None
    number = float(raw)
    if rule.kind == "int" and math.isfinite(number) and number == int(number):
        return int(number)
    return number
