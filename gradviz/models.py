"""RunConfig -> keras.Model: a deep MLP or the seed article's ResNet-style CNN, with stable layer names."""

from __future__ import annotations

import math

import keras

from gradviz.architecture import ACT_SUFFIX, downsample_blocks
from gradviz.config import RunConfig

# Layer naming contract (charts, diagnosis and tests rely on it):
#   mlp: hidden_01 ... hidden_NN (Dense kernels), hidden_NN_bn, hidden_NN_act, hidden_NN_add, output
#   cnn: stem, block_KK_conv1, block_KK_conv2, block_KK_proj (1x1, on stride), *_bn, *_act, output


def make_initializer(config: RunConfig, index: int) -> keras.initializers.Initializer:
    """A fresh, explicitly seeded initializer per layer: no process-global seeding, and no two
    layers share a seed (a reused seeded initializer would give every layer the same weights)."""
    seed = (config.seed * 7919 + index * 104729) % (2**31 - 1)
    name, std = config.initializer, config.init_std
    if name == "zeros":
        return keras.initializers.Zeros()
    if name == "random_normal":
        return keras.initializers.RandomNormal(stddev=std, seed=seed)
    if name == "random_uniform":  # same std as random_normal: U(-a, a) has std a / sqrt(3)
        limit = std * math.sqrt(3.0)
        return keras.initializers.RandomUniform(-limit, limit, seed=seed)
    return keras.initializers.get({"class_name": name, "config": {"seed": seed}})


class _Builder:
    """Adds layers in order, numbering initializer seeds so that they are stable per config."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.count = 0

    def _init(self):
        self.count += 1
        return make_initializer(self.config, self.count)

    def dense(self, x, units: int, name: str):
        return keras.layers.Dense(
            units, use_bias=not self.config.batch_norm, kernel_initializer=self._init(), name=name
        )(x)

    def conv(self, x, filters: int, size: int, strides: int, name: str):
        return keras.layers.Conv2D(
            filters, size, strides=strides, padding="same", use_bias=not self.config.batch_norm,
            kernel_initializer=self._init(), name=name,
        )(x)

    def norm(self, x, name: str):
        # momentum 0.9, not Keras' 0.99: runs here are a few hundred steps, and with 0.99 the
        # moving statistics used at validation time still lag far behind the training batches.
        if not self.config.batch_norm:
            return x
        return keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)

    def act(self, x, name: str):
        # A separate Activation layer (not Dense(activation=...)) so probes can read its output.
        return keras.layers.Activation(self.config.activation, name=f"{name}{ACT_SUFFIX}")(x)

    def skip(self, block_in, branch_out, name: str, project):
        """Residual add; `project` maps the block input when its shape differs from the branch's."""
        shortcut = block_in
        if tuple(block_in.shape[1:]) != tuple(branch_out.shape[1:]):
            shortcut = self.norm(project(block_in), f"{name}_proj")
        return keras.layers.Add(name=f"{name}_add")([branch_out, shortcut])


def _mlp(b: _Builder, x):
    """hidden_01 maps the pixels to `width`; with residual=True the later layers pair up into
    blocks h + act(dense(act(dense(h)))). Nothing sits on the skip path (no activation after the
    add), so the gradient has a clean identity route to hidden_01 even with sigmoid."""
    depth, width = b.config.depth, b.config.width
    x = keras.layers.Flatten(name="flatten")(x)
    layer = 1
    x = b.act(b.norm(b.dense(x, width, "hidden_01"), "hidden_01"), "hidden_01")
    while layer < depth:
        if b.config.residual and layer + 2 <= depth:
            first, second = f"hidden_{layer + 1:02d}", f"hidden_{layer + 2:02d}"
            h = b.act(b.norm(b.dense(x, width, first), first), first)
            h = b.act(b.norm(b.dense(h, width, second), second), second)
            x = b.skip(x, h, second, lambda t: b.dense(t, width, f"{second}_proj"))
            layer += 2
        else:
            name = f"hidden_{layer + 1:02d}"
            x = b.act(b.norm(b.dense(x, width, name), name), name)
            layer += 1
    return x


def _cnn(b: _Builder, x):
    """Stem conv (stride 2) then `depth` blocks of two 3x3 convs; a 1x1 projection on stride."""
    x = keras.layers.Reshape((28, 28, 1), name="to_image")(x)
    x = b.act(b.norm(b.conv(x, b.config.width, 3, 2, "stem"), "stem"), "stem")
    filters, downsample = b.config.width, downsample_blocks(b.config.depth)
    for k in range(1, b.config.depth + 1):
        name, stride = f"block_{k:02d}", 1
        if k in downsample:
            filters, stride = filters * 2, 2
        h = b.act(b.norm(b.conv(x, filters, 3, stride, f"{name}_conv1"), f"{name}_conv1"), f"{name}_conv1")
        h = b.norm(b.conv(h, filters, 3, 1, f"{name}_conv2"), f"{name}_conv2")
        if b.config.residual:
            h = b.skip(x, h, name, lambda t: b.conv(t, filters, 1, stride, f"{name}_proj"))
        x = b.act(h, f"{name}_conv2")
    return keras.layers.GlobalAveragePooling2D(name="pool")(x)


def build_model(config: RunConfig) -> keras.Model:
    """The model a config describes; outputs logits (the loss applies softmax)."""
    b = _Builder(config)
    inputs = keras.Input((28, 28), name="pixels")
    features = _cnn(b, inputs) if config.architecture == "cnn" else _mlp(b, inputs)
    logits = keras.layers.Dense(10, kernel_initializer=b._init(), name="output")(features)
    return keras.Model(inputs, logits, name=f"gradviz_{config.architecture}")


def kernel_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Dense/Conv layers in forward order (input to output): the rows of the gradient heatmap."""
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]


def activation_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The hidden activation layers, in forward order, for activation statistics."""
    return [layer for layer in model.layers if layer.name.endswith(ACT_SUFFIX)]
