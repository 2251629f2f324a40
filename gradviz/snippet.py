"""RunConfig -> a short, self-contained Keras script that rebuilds the same model and optimizer."""

from __future__ import annotations

import math

from gradviz.config import RunConfig
from gradviz.architecture import downsample_blocks

_OPTIMIZERS = {
    "sgd": "keras.optimizers.SGD(learning_rate={lr}{clip})",
    "momentum": "keras.optimizers.SGD(learning_rate={lr}, momentum=0.9{clip})",
    "rmsprop": "keras.optimizers.RMSprop(learning_rate={lr}{clip})",
    "adam": "keras.optimizers.Adam(learning_rate={lr}{clip})",
}

_MLP = """\
    x = layers.Flatten()(inputs)
    x = hidden(x)
    layer = 1
    while layer < {depth}:
        if {residual} and layer + 2 <= {depth}:  # residual pair: x + act(dense(act(dense(x))))
            x = layers.Add()([x, hidden(hidden(x))])
            layer += 2
        else:
            x = hidden(x)
            layer += 1"""

_CNN = """\
    x = layers.Reshape((28, 28, 1))(inputs)
    x = act(norm(conv(x, {width}, 3, 2)))  # stem
    filters = {width}
    for block in range(1, {depth} + 1):
        stride = 2 if block in {downsample} else 1
        filters *= stride
        h = act(norm(conv(x, filters, 3, stride)))
        h = norm(conv(h, filters, 3, 1))
        if {residual}:
            if x.shape[1:] != h.shape[1:]:  # 1x1 projection where shapes differ
                x = norm(conv(x, filters, 1, stride))
            h = layers.Add()([h, x])
        x = act(h)
    x = layers.GlobalAveragePooling2D()(x)"""

_TEMPLATE = '''\
import itertools

import keras
from keras import layers

# The same per-layer seeds as gradviz, so the initial weights match too.
seeds = (({seed} * 7919 + i * 104729) % (2**31 - 1) for i in itertools.count(1))


def init():
    return {initializer}


def norm(x):
    return {norm}


def act(x):
    return layers.Activation({activation!r})(x)


def hidden(x):
    return act(norm(layers.Dense({width}, use_bias={bias}, kernel_initializer=init())(x)))


def conv(x, filters, size, stride):
    return layers.Conv2D(filters, size, strides=stride, padding="same", use_bias={bias}, kernel_initializer=init())(x)


def build():
    inputs = keras.Input((28, 28))
{body}
    logits = layers.Dense(10, kernel_initializer=init())(x)
    return keras.Model(inputs, logits)


model = build()
model.compile(
    optimizer={optimizer},
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
# (x, y), _ = keras.datasets.mnist.load_data()
# model.fit(x[:{train_size}] / 255.0, y[:{train_size}], batch_size={batch_size}, epochs={epochs})
'''


def _initializer(config: RunConfig) -> str:
    if config.initializer == "zeros":
        return "keras.initializers.Zeros()"
    if config.initializer == "random_normal":
        return f"keras.initializers.RandomNormal(stddev={config.init_std!r}, seed=next(seeds))"
    if config.initializer == "random_uniform":
        limit = config.init_std * math.sqrt(3.0)
        return f"keras.initializers.RandomUniform({-limit!r}, {limit!r}, seed=next(seeds))"
    return f'keras.initializers.get({{"class_name": {config.initializer!r}, "config": {{"seed": next(seeds)}}}})'


def keras_snippet(config: RunConfig) -> str:
    """Plain Keras, no gradviz import: paste it into a notebook to get the same model and optimizer."""
    clip = f", {config.clipping[0]}={config.clipping[1]!r}" if config.clipping else ""
    body = (_CNN if config.architecture == "cnn" else _MLP).format(
        depth=config.depth, width=config.width, residual=config.residual,
        downsample=sorted(downsample_blocks(config.depth)))
    return _TEMPLATE.format(
        seed=config.seed, initializer=_initializer(config), activation=config.activation, width=config.width,
        norm="layers.BatchNormalization(momentum=0.9)(x)" if config.batch_norm else "x",
        bias=not config.batch_norm, body=body,
        optimizer=_OPTIMIZERS[config.optimizer].format(lr=repr(config.learning_rate), clip=clip),
        train_size=config.train_size, batch_size=config.batch_size, epochs=config.epochs)
