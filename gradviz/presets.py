"""Named RunConfigs: the seed article's four experiments as written, and presets that reliably show
each phenomenon and its fix on the local data, each with a claim checked against its findings."""

from __future__ import annotations

from dataclasses import dataclass

from gradviz.config import ConfigError, RunConfig
from gradviz.diagnosis.diagnose import Finding

# Sized to finish in a few seconds on 2 cores: 8k training images x 3 epochs, batch 128.
BASE = RunConfig(train_size=8000, epochs=3, batch_size=128, optimizer="adam", learning_rate=1e-3)
DEEP_SIGMOID = BASE.replace(depth=10, width=256, activation="sigmoid", initializer="glorot_uniform")
DEEP_LINEAR = BASE.replace(depth=20, width=256, activation="linear", initializer="glorot_uniform")
LINEAR_SGD = DEEP_LINEAR.replace(initializer="random_normal", init_std=0.08, optimizer="sgd", learning_rate=0.01)
# Sequential MNIST: 112 chunks of 7 pixels; 4k images x 2 epochs keeps each run to a few seconds.
SEQUENCE = BASE.replace(architecture="rnn", activation="tanh", width=64, step_pixels=7, train_size=4000, epochs=2)
# The literature's initialization experiments, on MNIST with plain SGD as in the papers.
HE_2015 = BASE.replace(depth=30, width=256, activation="relu", initializer="glorot_uniform", optimizer="sgd",
                       learning_rate=0.01)
GLOROT_BENGIO_2010 = BASE.replace(depth=10, width=256, activation="tanh", initializer="random_uniform",
                                  # U[-1/16, 1/16]: std 1/sqrt(3*256)
                                  init_std=0.036, optimizer="sgd", learning_rate=0.01)
RELU_RNN = SEQUENCE.replace(activation="relu", step_pixels=28, recurrent_initializer="random_normal",
                            recurrent_std=0.3, optimizer="sgd", learning_rate=0.01)


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str  # one line, for `python -m gradviz presets` and the picker
    config: RunConfig
    claim: str  # what the experiment is said to show
    expect: str  # the finding kind that shows it: a problem kind, or "healthy"
    seed: bool = False  # one of the seed article's experiments, as written


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("seed-vanishing-sigmoid", "Seed article: 10 sigmoid layers of 256, Adam 1e-3 - gradients vanish",
           DEEP_SIGMOID,
           "A deep sigmoid MLP barely learns: accuracy stays near 10 % and the first layer's gradient is "
           "orders of magnitude smaller than the last layer's.", "vanishing", seed=True),
    Preset("seed-fixed-resnet", "Seed article's fix: ReLU + He init + batch norm + residual CNN",
           # 4k images: convolutions cost ~25 ms a step on 2 cores, and a few seconds is the budget.
           BASE.replace(architecture="cnn", depth=3, width=16, activation="relu", initializer="he_normal",
                        batch_norm=True, residual=True, train_size=4000),
           "ReLU, He initialization, batch norm and residual connections let a deep network train.",
           "healthy", seed=True),
    Preset("seed-exploding-linear", "Seed article: 20 linear layers of 256, Glorot, Adam 1e-3 - said to explode",
           DEEP_LINEAR,
           "A 20-layer linear network with Adam 1e-3 has exploding gradients.", "exploding", seed=True),
    Preset("seed-clipnorm", "Seed article: the same 20 linear layers with clipnorm=1.0",
           DEEP_LINEAR.replace(clipnorm=1.0),
           "With clipnorm=1.0 the deep linear network trains stably.", "healthy", seed=True),
    Preset("exploding-linear", "20 linear layers, RandomNormal sd 0.08, SGD 0.01 - goes to NaN in epoch 1",
           LINEAR_SGD,
           "Each layer multiplies the signal's variance by 256 x 0.08^2 = 1.6, so 20 layers grow it ~13,000x; "
           "with SGD one huge gradient is one huge step, and the loss becomes NaN.", "diverged"),
    Preset("exploding-linear-clipped", "The same, with clipnorm=1.0 - trains",
           LINEAR_SGD.replace(clipnorm=1.0),
           "Clipping each gradient's norm to 1 bounds every SGD step, so the same network trains.", "healthy"),
    Preset("vanishing-fixed-relu-he", "10 x 256 with ReLU + He init instead of sigmoid - trains",
           DEEP_SIGMOID.replace(activation="relu", initializer="he_normal"),
           "ReLU's slope is 1 where active and He init keeps the variance per layer ~1, so the gradient "
           "reaches the first layer.", "healthy"),
    Preset("vanishing-fixed-batchnorm", "10 sigmoid layers with batch norm - trains",
           DEEP_SIGMOID.replace(batch_norm=True),
           "Batch norm re-centres every layer's input to the middle of the sigmoid, where its slope is largest.",
           "healthy"),
    Preset("vanishing-fixed-residual", "10 sigmoid layers with residual skips - trains",
           DEEP_SIGMOID.replace(residual=True),
           "Skip connections give the gradient an identity path around every pair of layers.", "healthy"),
    Preset("saturated-tanh", "10 tanh layers with RandomNormal sd 1.0 - saturated units",
           BASE.replace(depth=10, width=256, activation="tanh", initializer="random_normal", init_std=1.0),
           "Weights with sd 1 over 256 inputs push tanh far into its flat tails, where its slope is ~0.",
           "saturation"),
    Preset("he2015-relu-glorot", "He et al. 2015: 30 ReLU layers, Glorot init, SGD - the signal fades, nothing learns",
           HE_2015,
           "With Glorot's initialization each ReLU layer halves the signal's variance (χ = 1/2), so 30 layers "
           "leave almost none of it and the network does not learn.", "signal_collapse"),
    Preset("he2015-relu-he", "The same 30 ReLU layers with He init (σ_w² = 2) - trains",
           HE_2015.replace(initializer="he_normal"),
           "He initialization doubles the weight variance, puts χ at 1 and keeps the signal's size through all 30 "
           "layers, so the same network trains.", "healthy"),
    Preset("glorot-bengio-tanh-standard",
           "Glorot & Bengio 2010: 10 tanh layers, U[-1/√n, 1/√n] init, SGD - the signal fades",
           GLOROT_BENGIO_2010,
           "The 'standard' uniform initialization gives σ_w² = 1/3: a tanh network's activations and gradients "
           "shrink layer by layer, and learning stalls.", "signal_collapse"),
    Preset("glorot-bengio-tanh-glorot", "The same 10 tanh layers with Glorot's normalized init - trains",
           GLOROT_BENGIO_2010.replace(initializer="glorot_uniform"),
           "Glorot's normalized initialization keeps σ_w² ≈ 1, so the signal keeps its size through the tanh layers "
           "and the network trains.", "healthy"),
    Preset("dead-relu", "ReLU with a too-large Adam step (lr 0.05) - dead units",
           BASE.replace(depth=6, width=128, activation="relu", initializer="he_normal", learning_rate=0.05),
           "A too-large step pushes ReLU units' inputs negative for every image; they output 0 and stop learning.",
           "dead_units"),
)}

RECURRENT_PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("rnn-vanishing-tanh", "SimpleRNN(tanh), 64 units, 112 steps of 7 pixels - the start barely reaches the loss",
           SEQUENCE,
           "The gradient is multiplied by the recurrent Jacobian once per step, so after 112 steps almost none "
           "of it reaches the first steps.", "vanishing"),
    Preset("rnn-lstm", "The same sequence through an LSTM",
           SEQUENCE.replace(architecture="lstm"),
           "An LSTM's cell state is carried by addition, gated by a learned forget gate, so far more gradient "
           "reaches the first steps.", "healthy"),
    Preset("rnn-gru", "The same sequence through a GRU",
           SEQUENCE.replace(architecture="gru"),
           "A GRU's update gate interpolates between the old and new state, so far more gradient reaches the "
           "first steps.", "healthy"),
    Preset("rnn-exploding-relu", "SimpleRNN(relu), recurrent RandomNormal sd 0.3, SGD 0.01 - goes to NaN",
           RELU_RNN,
           "With a recurrent matrix of norm ~0.3 x sqrt(64) = 2.4, every step multiplies the signal and the "
           "gradient; with SGD the first huge gradient is a huge step.", "diverged"),
    Preset("rnn-exploding-relu-clipped", "The same with clipnorm=1.0 - does not diverge",
           RELU_RNN.replace(clipnorm=1.0),
           "Clipping bounds every SGD step, so the same network does not diverge.", "exploding"),
)}
PRESETS.update(RECURRENT_PRESETS)

DEFAULT_PRESET = "seed-vanishing-sigmoid"


def get_preset(name: str) -> Preset:
    """The preset called `name`.

    Args:
        name: one of PRESETS (`python -m gradviz presets` lists them).
    Returns:
        The Preset: its config, the claim it tests and the finding that shows it.
    Raises:
        ConfigError: no preset has that name (the message lists them).
    """
    if name not in PRESETS:
        raise ConfigError("preset", name, "one of " + ", ".join(PRESETS))
    return PRESETS[name]


def verdict(preset: Preset, findings: list[Finding]) -> tuple[str, str]:
    """('reproduced' | 'partly' | 'not reproduced', why), computed from the run's findings."""
    by_kind = {f.kind: f for f in findings}
    problems = [f for f in findings if f.kind != "healthy" and f.severity != "info"]
    if preset.expect == "healthy":
        healthy = by_kind.get("healthy")
        if not problems and healthy is not None and healthy.severity == "info":
            return "reproduced", healthy.message
        if not problems:
            return "partly", (healthy.message if healthy else "No gradient problem, but it learned little.")
        return "not reproduced", problems[0].message
    found = by_kind.get(preset.expect)
    if found is not None and found.severity != "info":
        return "reproduced", found.message
    if found is not None:
        return "partly", found.message
    shown = problems[0].message if problems else findings[0].message
    return "not reproduced", f"No {preset.expect} finding on this data. {shown}"
