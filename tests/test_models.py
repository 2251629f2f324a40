"""Model building: shapes, layer names and counts, batch norm and residual wiring, seeding."""

import keras
import numpy as np
import pytest

from gradviz.architecture import downsample_blocks
from gradviz.config import RunConfig
from gradviz.training.models import activation_layers, build_model, kernel_layers


def names(layers):
    return [layer.name for layer in layers]


def inbound(model, layer_name):
    """Names of the layers feeding `layer_name` in the functional graph."""
    node = model.get_layer(layer_name)._inbound_nodes[0]
    return [t._keras_history.operation.name for t in node.input_tensors]


@pytest.mark.parametrize("depth", [1, 4, 7])
def test_mlp_shapes_and_names(depth):
    model = build_model(RunConfig(depth=depth, width=32))
    assert model.output.shape == (None, 10)
    assert names(kernel_layers(model)) == [f"hidden_{i:02d}" for i in range(1, depth + 1)] + ["output"]
    assert names(activation_layers(model)) == [f"hidden_{i:02d}_act" for i in range(1, depth + 1)]
    assert model.get_layer("hidden_01").kernel.shape == (784, 32)
    assert model.get_layer("output").kernel.shape == (32, 10)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    logits = model(np.zeros((3, 28, 28), np.float32))
    assert logits.shape == (3, 10)


def test_batch_norm_sits_between_kernel_and_activation():
    model = build_model(RunConfig(depth=3, width=16, batch_norm=True))
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert names(bns) == ["hidden_01_bn", "hidden_02_bn", "hidden_03_bn"]
    for i in (1, 2, 3):
        assert inbound(model, f"hidden_{i:02d}_bn") == [f"hidden_{i:02d}"]
        assert inbound(model, f"hidden_{i:02d}_act") == [f"hidden_{i:02d}_bn"]
        assert not model.get_layer(f"hidden_{i:02d}").use_bias  # BN's beta replaces the bias


def test_mlp_residual_pairs_layers_with_identity_skips():
    model = build_model(RunConfig(depth=6, width=16, residual=True))
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    # hidden_01 enters; (02, 03) and (04, 05) are blocks; 06 is left over
    assert names(adds) == ["hidden_03_add", "hidden_05_add"]
    assert sorted(inbound(model, "hidden_03_add")) == ["hidden_01_act", "hidden_03_act"]
    assert sorted(inbound(model, "hidden_05_add")) == ["hidden_03_add", "hidden_05_act"]
    assert inbound(model, "hidden_06") == ["hidden_05_add"]
    assert not any("proj" in layer.name for layer in model.layers)  # equal widths: no projection


def test_residual_identity_really_carries_the_signal():
    """With every branch kernel zero, a residual block is the identity: the model equals one
    without those blocks (the skip path has no weights and no activation on it)."""
    config = RunConfig(depth=3, width=16, residual=True, activation="sigmoid", seed=3)
    model = build_model(config)
    for name in ("hidden_02", "hidden_03"):
        layer = model.get_layer(name)
        layer.kernel.assign(np.zeros(layer.kernel.shape))
        layer.bias.assign(np.zeros(layer.bias.shape))
    x = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    h1 = keras.activations.sigmoid(np.reshape(x, (4, -1)) @ model.get_layer("hidden_01").kernel.numpy()
                                   + model.get_layer("hidden_01").bias.numpy())
    branch = 0.5  # sigmoid(0): the zeroed branch adds a constant
    expected = ((np.asarray(h1) + branch) @ model.get_layer("output").kernel.numpy()
                + model.get_layer("output").bias.numpy())
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_cnn_blocks_downsample_and_project():
    config = RunConfig(architecture="cnn", depth=3, width=8, residual=True, batch_norm=True)
    model = build_model(config)
    assert downsample_blocks(3) == {2, 3}
    assert names(kernel_layers(model)) == [
        "stem", "block_01_conv1", "block_01_conv2", "block_02_conv1", "block_02_conv2", "block_02_proj",
        "block_03_conv1", "block_03_conv2", "block_03_proj", "output"]
    shapes = {layer.name: layer.output.shape for layer in model.layers}
    assert shapes["stem"] == (None, 14, 14, 8)
    assert shapes["block_01_conv2"] == (None, 14, 14, 8)
    assert shapes["block_02_conv1"] == (None, 7, 7, 16)
    assert shapes["block_03_conv2"] == (None, 4, 4, 32)
    assert model.get_layer("block_02_proj").kernel.shape == (1, 1, 8, 16)
    assert sorted(inbound(model, "block_02_add")) == ["block_02_conv2_bn", "block_02_proj_bn"]
    assert sorted(inbound(model, "block_01_add")) == ["block_01_conv2_bn", "stem_act"]  # identity
    assert model(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)


def test_cnn_without_residual_has_no_adds():
    model = build_model(RunConfig(architecture="cnn", depth=2, width=8))
    assert not any(isinstance(layer, keras.layers.Add) for layer in model.layers)
    assert len(kernel_layers(model)) == 1 + 2 * 2 + 1


def test_downsampling_is_bounded_for_deep_cnns():
    for depth in range(1, 51):
        blocks = downsample_blocks(depth)
        assert len(blocks) <= 2 and all(2 <= b <= depth for b in blocks)


def weights(model):
    return [w.numpy() for w in model.weights]


def test_initializers_are_seeded_per_config_not_globally():
    config = RunConfig(depth=3, width=16, initializer="random_normal", init_std=0.3)
    a, b = weights(build_model(config)), weights(build_model(config))
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    c = weights(build_model(config.replace(seed=1)))
    assert not np.array_equal(a[0], c[0])
    # no two layers share a seed (a reused seeded initializer would give equal kernels)
    model = build_model(config)
    k2, k3 = model.get_layer("hidden_02").kernel.numpy(), model.get_layer("hidden_03").kernel.numpy()
    assert not np.array_equal(k2, k3)
    assert abs(float(np.std(k2)) - 0.3) < 0.02


def test_random_uniform_has_the_requested_std_and_zeros_are_zero():
    model = build_model(RunConfig(depth=2, width=256, initializer="random_uniform", init_std=0.1))
    assert abs(float(np.std(model.get_layer("hidden_02").kernel.numpy())) - 0.1) < 0.005
    zeros = build_model(RunConfig(depth=2, width=16, initializer="zeros"))
    assert not np.any(zeros.get_layer("hidden_01").kernel.numpy())


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "linear"])
def test_every_activation_builds(activation):
    model = build_model(RunConfig(depth=1, width=8, activation=activation))
    assert model.get_layer("hidden_01_act").get_config()["activation"] == activation
