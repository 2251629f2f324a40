"""RunConfig -> keras.Model: a deep MLP, the seed article's ResNet-style CNN, or a SimpleRNN/LSTM/GRU over
the image read as a sequence; stable layer names."""

from __future__ import annotations

import math

from gradviz.architecture import ACT_SUFFIX, CLASSES, downsample_blocks, hidden_name
from gradviz.config import RECURRENT, RunConfig
from gradviz.training.tf_setup import keras, tf

# Layer naming contract (charts, diagnosis and tests rely on it):
#   mlp: hidden_01 ... hidden_NN (Dense kernels), hidden_NN_bn, hidden_NN_act, hidden_NN_add, output
#   cnn: stem, block_KK_conv1, block_KK_conv2, block_KK_proj (1x1, on stride), *_bn, *_act, output
#   rnn/lstm/gru: to_sequence, recurrent (its input_kernel and recurrent_kernel), output


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
    if name == "orthogonal":
        return keras.initializers.Orthogonal(gain=config.init_gain, seed=seed)
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
        # A separate Activation layer (not Dense(activation=...)) so the snapshots and the init-time probe can
        # read its output.
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
    first = hidden_name(1)
    x = b.act(b.norm(b.dense(x, width, first), first), first)
    while layer < depth:
        if b.config.residual and layer + 2 <= depth:
            first, second = hidden_name(layer + 1), hidden_name(layer + 2)
            h = b.act(b.norm(b.dense(x, width, first), first), first)
            h = b.act(b.norm(b.dense(h, width, second), second), second)
            x = b.skip(x, h, second, lambda t: b.dense(t, width, f"{second}_proj"))
            layer += 2
        else:
            name = hidden_name(layer + 1)
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


class TappedCell(keras.layers.Layer):
    """An RNN cell whose hidden state gets an all-zero extra input added: h_t = cell(x_t, h_t-1) + z_t.
    z changes no value, but dloss/dz_t is the total gradient reaching h_t (through every later
    step and the output), so one backward pass yields the gradient at every time step."""

    def __init__(self, cell, pixels: int, **kwargs):
        super().__init__(**kwargs)
        self.cell, self.pixels = cell, pixels
        self.state_size, self.output_size = cell.state_size, cell.units

    def build(self, input_shape):
        self.cell.build((input_shape[0], self.pixels))

    def call(self, inputs, states, training=False):
        h, new_states = self.cell(inputs[:, :self.pixels], states, training=training)
        h = h + inputs[:, self.pixels:]
        if isinstance(new_states, (list, tuple)):  # LSTM: [h, c] -> [h + z, c]
            return h, [h, *new_states[1:]]
        return h, h


def _recurrent_init(config: RunConfig, index: int):
    seed = (config.seed * 7919 + index * 104729 + 17) % (2**31 - 1)
    if config.recurrent_initializer == "random_normal":
        return keras.initializers.RandomNormal(stddev=config.recurrent_std, seed=seed)
    return keras.initializers.get({"class_name": config.recurrent_initializer, "config": {"seed": seed}})


def _recurrent(b: _Builder, x, tapped: bool):
    """The image as a sequence of time_steps chunks of step_pixels pixels, through one recurrent
    layer; returns (last hidden state, the zero tap input or None)."""
    config = b.config
    steps, pixels, units = config.time_steps, config.step_pixels, config.width
    sequence = keras.layers.Reshape((steps, pixels), name="to_sequence")(x)
    common = {"kernel_initializer": b._init(), "recurrent_initializer": _recurrent_init(config, b.count)}
    cell = {"rnn": lambda: keras.layers.SimpleRNNCell(units, activation=config.activation, **common),
            "lstm": lambda: keras.layers.LSTMCell(units, **common),
            "gru": lambda: keras.layers.GRUCell(units, **common)}[config.architecture]()
    if not tapped:  # plain Keras, for comparisons (bench)
        return keras.layers.RNN(cell, name="recurrent")(sequence), None
    state_tap = keras.Input((steps, units), name="state_tap")
    joined = keras.layers.Concatenate(name="with_tap")([sequence, state_tap])
    return keras.layers.RNN(TappedCell(cell, pixels), name="recurrent")(joined), state_tap


def build_model(config: RunConfig, tapped: bool = True) -> keras.Model:
    """The model a config describes; outputs logits (the loss applies softmax). Recurrent models
    take a second, all-zero input, the state tap of TappedCell (tapped=False: plain Keras)."""
    b = _Builder(config)
    inputs = keras.Input((28, 28), name="pixels")
    if config.architecture in RECURRENT:
        features, state_tap = _recurrent(b, inputs, tapped)
        inputs = [inputs, state_tap] if tapped else inputs
    else:
        features = _cnn(b, inputs) if config.architecture == "cnn" else _mlp(b, inputs)
    logits = keras.layers.Dense(CLASSES, kernel_initializer=b._init(), name="output")(features)
    return keras.Model(inputs, logits, name=f"gradviz_{config.architecture}")


def model_inputs(model: keras.Model, x):
    """What to call the model with: the pixels, plus the zero state tap for recurrent models."""
    if len(model.inputs) == 1:
        return x
    x = tf.convert_to_tensor(x, tf.float32)
    steps, units = model.inputs[1].shape[1:]
    return [x, tf.zeros((tf.shape(x)[0], steps, units))]


def submodel(model: keras.Model, outputs: list) -> keras.Model:
    """A model over the same inputs as `model` (called like it, see model_inputs) with other outputs."""
    return keras.Model(model.inputs if len(model.inputs) > 1 else model.input, outputs)


def kernel_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Dense/Conv/recurrent layers in forward order (input to output)."""
    kinds = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.RNN)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def tracked_kernels(model: keras.Model) -> list[tuple[str, object]]:
    """(name, kernel) pairs, input to output: the rows of the gradient heatmap. A recurrent layer
    contributes its input kernel and its recurrent kernel."""
    tracked = []
    for layer in kernel_layers(model):
        if isinstance(layer, keras.layers.RNN):
            cell = getattr(layer.cell, "cell", layer.cell)  # unwrap TappedCell
            tracked += [("input_kernel", cell.kernel), ("recurrent_kernel", cell.recurrent_kernel)]
        else:
            tracked.append((layer.name, layer.kernel))
    return tracked


def activation_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The hidden activation layers, in forward order, for activation statistics."""
    return [layer for layer in model.layers if layer.name.endswith(ACT_SUFFIX)]
