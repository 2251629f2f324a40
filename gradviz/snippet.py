"""RunConfig -> a short, self-contained Keras script that rebuilds the same model (same layers, the
same initial weights) and optimizer, written for a learner to read: only what the config uses,
keras.Sequential where the model is a plain stack, the functional API where it has skips."""

from __future__ import annotations

import math

from gradviz.architecture import downsample_blocks
from gradviz.config import RECURRENT, RunConfig

_OPTIMIZERS = {
    "sgd": "keras.optimizers.SGD(learning_rate={lr}{clip})",
    "momentum": "keras.optimizers.SGD(learning_rate={lr}, momentum=0.9{clip})",
    "rmsprop": "keras.optimizers.RMSprop(learning_rate={lr}{clip})",
    "adam": "keras.optimizers.Adam(learning_rate={lr}{clip})",
}
_RECURRENT_LAYERS = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
_HEADER = '''\
import keras
from keras import layers

SEED = {seed}


def init(i):
    """Layer i's initializer. gradviz gives every layer its own seed, so the weights match its model's."""
    return {initializer}
'''
_FOOTER = '''
model.compile(
    optimizer={optimizer},
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
# (x, y), _ = keras.datasets.mnist.load_data()
# model.fit(x[:{train_size}] / 255.0, y[:{train_size}], batch_size={batch_size}, epochs={epochs})
'''


def _seed(i: str) -> str:
    return f"(SEED * 7919 + {i} * 104729) % (2**31 - 1)"


def _initializer(config: RunConfig) -> str:
    """The initializer expression for layer i (as gradviz.training.models.make_initializer builds it)."""
    seed = _seed("i")
    if config.initializer == "zeros":
        return "keras.initializers.Zeros()"
    if config.initializer == "random_normal":
        return f"keras.initializers.RandomNormal(stddev={config.init_std!r}, seed={seed})"
    if config.initializer == "random_uniform":  # the same std as random_normal: limits +-sqrt(3) std
        limit = config.init_std * math.sqrt(3.0)
        return f"keras.initializers.RandomUniform({-limit!r}, {limit!r}, seed={seed})"
    if config.initializer == "orthogonal":
        return f"keras.initializers.Orthogonal(gain={config.init_gain!r}, seed={seed})"
    name = "".join(part.capitalize() for part in config.initializer.split("_"))  # he_normal -> HeNormal
    return f"keras.initializers.{name}(seed={seed})"


def _dense(config: RunConfig, units: str, index: str) -> str:
    bias = ", use_bias=False" if config.batch_norm else ""  # batch norm's beta does a bias's job
    return f"layers.Dense({units}{bias}, kernel_initializer=init({index}))"


def _logits(index: str) -> str:
    return f"layers.Dense(10, kernel_initializer=init({index}))"


def _mlp_sequential(config: RunConfig) -> str:
    norm = "\n    model.add(layers.BatchNormalization(momentum=0.9))" if config.batch_norm else ""
    return (f"model = keras.Sequential([keras.Input((28, 28)), layers.Flatten()])\n"
            f"for i in range(1, {config.depth + 1}):  # {config.depth} hidden layer(s)\n"
            f"    model.add({_dense(config, str(config.width), 'i')}){norm}\n"
            f"    model.add(layers.Activation({config.activation!r}))\n"
            f"model.add({_logits(str(config.depth + 1))})  # logits: the loss applies softmax\n")


def _mlp_residual(config: RunConfig) -> str:
    norm = "layers.BatchNormalization(momentum=0.9)(x)" if config.batch_norm else "x"
    return f'''

def hidden(x, i):
    x = {_dense(config, str(config.width), 'i')}(x)
    x = {norm}
    return layers.Activation({config.activation!r})(x)


inputs = keras.Input((28, 28))
x = hidden(layers.Flatten()(inputs), 1)
i = 2
while i <= {config.depth}:
    if i + 1 <= {config.depth}:  # a residual block: x + act(dense(act(dense(x)))), nothing on the skip path
        x = layers.Add()([hidden(hidden(x, i), i + 1), x])
        i += 2
    else:
        x = hidden(x, i)
        i += 1
outputs = {_logits(str(config.depth + 1))}(x)  # logits: the loss applies softmax
model = keras.Model(inputs, outputs)
'''


def _cnn(config: RunConfig) -> str:
    bn = config.batch_norm
    norm = "layers.BatchNormalization(momentum=0.9)(x)" if bn else "x"
    bias = ", use_bias=False" if bn else ""
    skip = '''
    if x.shape[1:] != h.shape[1:]:  # a 1x1 projection where the shapes differ
        x = norm(conv(x, filters, 1, stride))
    h = layers.Add()([h, x])''' if config.residual else ""
    return f'''
counter = iter(range(1, 10**6))


def conv(x, filters, size, stride):
    return layers.Conv2D(filters, size, strides=stride, padding="same"{bias},
                         kernel_initializer=init(next(counter)))(x)


def norm(x):
    return {norm}


def act(x):
    return layers.Activation({config.activation!r})(x)


inputs = keras.Input((28, 28))
x = act(norm(conv(layers.Reshape((28, 28, 1))(inputs), {config.width}, 3, 2)))  # stem: 14x14
filters = {config.width}
for block in range(1, {config.depth + 1}):
    stride = 2 if block in {sorted(downsample_blocks(config.depth))} else 1  # halve the size, double the filters
    filters *= stride
    h = act(norm(conv(x, filters, 3, stride)))
    h = norm(conv(h, filters, 3, 1)){skip}
    x = act(h)
x = layers.GlobalAveragePooling2D()(x)
outputs = layers.Dense(10, kernel_initializer=init(next(counter)))(x)  # logits
model = keras.Model(inputs, outputs)
'''


def _recurrent(config: RunConfig) -> str:
    cell = _RECURRENT_LAYERS[config.architecture]
    activation = f", activation={config.activation!r}" if config.architecture == "rnn" else ""
    recurrent = {"random_normal": f"keras.initializers.RandomNormal(stddev={config.recurrent_std!r}, seed={{seed}})",
                 "orthogonal": "keras.initializers.Orthogonal(seed={seed})",
                 "glorot_uniform": "keras.initializers.GlorotUniform(seed={seed})"}[config.recurrent_initializer]
    recurrent = recurrent.format(seed="(SEED * 7919 + 1 * 104729 + 17) % (2**31 - 1)")  # the recurrent kernel's own
    return (f"model = keras.Sequential([\n"
            f"    keras.Input((28, 28)),\n"
            f"    layers.Reshape(({config.time_steps}, {config.step_pixels})),  # the image as {config.time_steps} "
            f"steps of {config.step_pixels} pixels\n"
            f"    layers.{cell}({config.width}{activation}, kernel_initializer=init(1),\n"
            f"        recurrent_initializer={recurrent}),\n"
            f"    layers.Dense(10, kernel_initializer=init(2)),  # logits: the loss applies softmax\n"
            f"])\n")


def keras_snippet(config: RunConfig) -> str:
    """Plain Keras code, no gradviz import, that rebuilds `config`'s model and optimizer.

    Args:
        config: any config.
    Returns:
        Python source; `exec` of it defines `model` with the same layers, parameter count and
        initial weights as gradviz's model, and `optimizer`.
    """
    if config.architecture in RECURRENT:
        body = _recurrent(config)
    elif config.architecture == "cnn":
        body = _cnn(config)
    else:
        body = _mlp_residual(config) if config.residual and config.depth >= 3 else _mlp_sequential(config)
    clip = f", {config.clipping[0]}={config.clipping[1]!r}" if config.clipping else ""
    optimizer = _OPTIMIZERS[config.optimizer].format(lr=repr(config.learning_rate), clip=clip)
    return (_HEADER.format(seed=config.seed, initializer=_initializer(config)) + "\n\n" + body.lstrip("\n") +
            _FOOTER.format(optimizer=optimizer, train_size=config.train_size, batch_size=config.batch_size,
                           epochs=config.epochs))
