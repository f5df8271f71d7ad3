"""Kernel inspection, layer activations and activation maximisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.interpret import (
    class_activation_maximization,
    filter_activation_maximization,
    find_layer,
    kernel_weights,
    layer_activations,
)

pytestmark = pytest.mark.all_backends


def test_kernel_weights_are_per_filter(make_model, model_kind):
    model = make_model(model_kind, filters=4)
    conv = find_layer(model, "conv")
    kernel = np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4)
    conv.kernel.assign(kernel)
    conv.bias.assign(np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    kernels, biases = kernel_weights(model)  # the last (and only) conv layer
    assert kernels.shape == (4, 3, 3, 2)
    np.testing.assert_array_equal(kernels[2], kernel[..., 2])
    np.testing.assert_array_equal(biases, [1.0, 2.0, 3.0, 4.0])


def test_kernel_weights_of_other_convolutions():
    inp = keras.Input((9, 9, 3))
    depthwise = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="dw")
    h = depthwise(inp)
    transposed = keras.layers.Conv2DTranspose(5, 2, name="up")
    model = keras.Model(inp, transposed(h))
    kernels, biases = kernel_weights(model, "dw")
    raw = keras.ops.convert_to_numpy(depthwise.kernel)  # (3, 3, 3 in, 2 multiplier)
    assert kernels.shape == (6, 3, 3, 1) and biases is None
    np.testing.assert_array_equal(kernels[3, ..., 0], raw[:, :, 1, 1])  # filter = in * 2 + m
    kernels, biases = kernel_weights(model, "up")
    raw = keras.ops.convert_to_numpy(transposed.kernel)  # (2, 2, 5 out, 6 in)
    assert kernels.shape == (5, 2, 2, 6) and biases.shape == (5,)
    np.testing.assert_array_equal(kernels[4], raw[:, :, 4, :])


def test_kernel_weights_rejects_other_layers(make_model):
    with pytest.raises(ValueError, match=r"'logits' \(Dense\) is not convolutional.*'base/conv'"):
        kernel_weights(make_model("nested"), "logits")


def test_layer_activations_match_a_direct_sub_model(make_model, model_kind, images):
    model = make_model(model_kind)
    reference = make_model("functional")
    reference.set_weights(model.get_weights())
    direct = keras.Model(reference.inputs[0], reference.get_layer("conv").output)
    np.testing.assert_allclose(
        layer_activations(model, "conv", images),
        keras.ops.convert_to_numpy(direct(images, training=False)),
        atol=1e-6,
    )


def test_layer_activations_run_in_inference_mode():
    """Dropout must not act: two calls agree and equal the no-dropout output."""
    inp = keras.Input((4, 4, 1))
    h = keras.layers.Dropout(0.9, name="drop")(keras.layers.Conv2D(2, 2, name="c")(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    x = np.ones((3, 4, 4, 1), np.float32)
    first = layer_activations(model, "drop", x)
    np.testing.assert_array_equal(first, layer_activations(model, "c", x))


def _mean_activation(model, layer, images, filters):
    activations = layer_activations(model, layer, images)
    return activations[np.arange(len(filters)), ..., filters].reshape(len(filters), -1).mean(-1)


def test_filter_maximisation_raises_each_filters_activation(make_model):
    model = make_model("nested", filters=6)
    filters = [0, 3, 5]
    start = filter_activation_maximization(model, "conv", filters, steps=0, seed=1)
    result = filter_activation_maximization(
        model, "conv", filters, steps=30, step_size=0.05, seed=1
    )
    assert result.shape == (3, 8, 10, 2) and result.min() >= 0.0 and result.max() <= 1.0
    before = _mean_activation(model, "conv", start, filters)
    after = _mean_activation(model, "conv", result, filters)
    assert np.all(after > before + 0.05), (before, after)
    again = filter_activation_maximization(model, "conv", filters, steps=30, step_size=0.05, seed=1)
    np.testing.assert_array_equal(result, again)


def test_class_maximisation_raises_each_logit(make_model):
    model = make_model("nested_sequential_head", softmax=True, classes=3)
    start = class_activation_maximization(model, steps=0, seed=0)
    result = class_activation_maximization(model, steps=30, step_size=0.05, seed=0)
    assert result.shape == (3, 8, 10, 2)
    logits_model = make_model("nested", classes=3)
    logits_model.set_weights(model.get_weights())

    def own_logit(x):
        return keras.ops.convert_to_numpy(logits_model(x))[np.arange(3), np.arange(3)]

    assert np.all(own_logit(result) > own_logit(start))
    other_seed = class_activation_maximization(model, classes=[1], steps=30, step_size=0.05, seed=7)
    assert other_seed.shape == (1, 8, 10, 2) and not np.allclose(other_seed[0], result[1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: filter_activation_maximization(m, "conv", [4]),
            r"`filters` must lie in \[0, 4\)",
        ),
        (lambda m: filter_activation_maximization(m, "nope"), r"No layer named 'nope'"),
        (
            lambda m: class_activation_maximization(m, classes=[-1]),
            r"`classes` must lie in \[0, 3\)",
        ),
        (lambda m: class_activation_maximization(m, steps=-1), r"`steps` must be a non-negative"),
        (
            lambda m: class_activation_maximization(m, step_size=0),
            r"`step_size` must be a positive",
        ),
        (lambda m: layer_activations(m, "pool", np.zeros((2, 3, 3, 2))), r"expects a batch"),
    ],
)
def test_bad_arguments(make_model, call, message):
    with pytest.raises(ValueError, match=message):
        call(make_model("nested", filters=4, classes=3))
