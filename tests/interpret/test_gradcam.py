"""Grad-CAM and Grad-CAM++ against values computed by hand.

For conv -> global average pooling -> dense, the logit of class c is
`z_c = Σ_k w_ck mean_ij A_kij + b_c`, so `∂z_c/∂A_kij = w_ck / (h w)` everywhere:

- Grad-CAM's channel weight is `w_ck / (h w)`, and its map is CAM, `ReLU(Σ_k w_ck A_k)`, up to a
  positive factor that the normalisation removes.
- Grad-CAM++'s weight is `Σ_ij relu(g) g² / (2 g² + S_k g³) = h w relu(g) / (2 + S_k g)` with
  `g = w_ck / (h w)` and `S_k = Σ_ij A_kij`.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.interpret import find_layer, grad_cam, grad_cam_plus_plus

pytestmark = pytest.mark.all_backends


def _conv_and_dense(model):
    return find_layer(model, "conv"), find_layer(model, "logits")


def _activations(model, images):
    conv, _ = _conv_and_dense(model)
    from sequential_learning.interpret import layer_activations

    return layer_activations(model, conv, images)


def _bilinear_weights(size_in, size_out):
    """`(size_out, size_in)` weights of bilinear resizing with half-pixel centres (as
    `tf.image.resize`, `jax.image.resize` and `torch`'s `interpolate(align_corners=False)`
    upsample): output pixel i samples input position `(i + 0.5) * size_in / size_out - 0.5`,
    clamped to the image."""
    source = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    source = np.clip(source, 0.0, size_in - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), low), 1.0 - (source - low))
    np.add.at(weights, (np.arange(size_out), high), source - low)
    return weights


def test_bilinear_reference_by_hand():
    """The reference resizing itself: 2 -> 4 samples at 0, 0.25, 0.75, 1 of the way across."""
    np.testing.assert_allclose(_bilinear_weights(2, 4) @ np.array([0.0, 4.0]), [0, 1, 3, 4])


def _finish(cam, size):
    """ReLU, bilinear upsampling to the input size, division by the maximum (0 stays 0)."""
    cam = np.maximum(cam, 0.0)
    if cam.shape[1:] != size:
        rows, cols = _bilinear_weights(cam.shape[1], size[0]), _bilinear_weights(cam.shape[2], size[1])
        cam = np.einsum("Hh,nhw,Ww->nHW", rows, cam, cols)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)


@pytest.mark.parametrize("strides", [1, 2])
def test_grad_cam_equals_cam_for_global_average_pooling(make_model, model_kind, images, strides):
    model = make_model(model_kind, strides=strides)
    targets = np.array([0, 1, 2, 1, 0])
    activations = _activations(model, images)  # (N, h, w, K)
    weights = keras.ops.convert_to_numpy(_conv_and_dense(model)[1].kernel)  # (K, classes)
    expected = _finish(np.einsum("nhwk,kn->nhw", activations, weights[:, targets]), (8, 10))
    maps = grad_cam(model, images, targets)
    assert maps.shape == (5, 8, 10) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_grad_cam_plus_plus_closed_form_for_global_average_pooling(make_model, images):
    model = make_model("nested")
    targets = np.array([2, 0, 1, 1, 2])
    activations = _activations(model, images)
    h, w = activations.shape[1:3]
    g = keras.ops.convert_to_numpy(_conv_and_dense(model)[1].kernel)[:, targets].T / (h * w)
    sums = activations.sum(axis=(1, 2))  # (N, K)
    alpha_weight = np.where(g != 0, h * w * np.maximum(g, 0) / (2 + sums * g), 0.0)
    expected = _finish(np.einsum("nhwk,nk->nhw", activations, alpha_weight), (8, 10))
    np.testing.assert_allclose(grad_cam_plus_plus(model, images, targets), expected, atol=1e-5)


@pytest.mark.parametrize("explain", [grad_cam, grad_cam_plus_plus])
def test_softmax_output_uses_the_logit(make_model, images, explain):
    """A model ending in softmax explains the pre-softmax logit: same maps as the logits model."""
    targets = np.array([0, 1, 2, 0, 1])
    logits_model = make_model("nested", softmax=False)
    softmax_model = make_model("nested", softmax=True)
    softmax_model.set_weights(logits_model.get_weights())
    np.testing.assert_allclose(
        explain(softmax_model, images, targets), explain(logits_model, images, targets), atol=1e-6
    )


@pytest.mark.parametrize("explain", [grad_cam, grad_cam_plus_plus])
def test_map_without_positive_evidence_is_zero(make_model, images, explain):
    model = make_model("functional")
    dense = find_layer(model, "logits")
    dense.kernel.assign(-np.abs(keras.ops.convert_to_numpy(dense.kernel)))  # ReLU features only
    maps = explain(model, images, 0)
    assert np.all(np.isfinite(maps)) and np.all(maps == 0.0)


@pytest.mark.parametrize("explain", [grad_cam, grad_cam_plus_plus])
def test_layer_none_finds_the_last_conv_in_the_nested_base(explain):
    keras.utils.set_random_seed(3)
    base_in = keras.Input((9, 7, 1))
    h = keras.layers.Conv2D(3, 3, activation="relu", name="first")(base_in)
    h = keras.layers.Conv2D(5, 3, activation="relu", name="second")(h)
    base = keras.Model(base_in, keras.layers.Flatten()(h), name="base")
    inp = keras.Input((9, 7, 1))
    model = keras.Model(inp, keras.layers.Dense(4)(base(inp)), name="task")
    x = np.random.default_rng(1).uniform(size=(3, 9, 7, 1)).astype(np.float32)
    default = explain(model, x, [0, 1, 3])
    np.testing.assert_array_equal(default, explain(model, x, [0, 1, 3], layer="base/second"))
    assert not np.allclose(default, explain(model, x, [0, 1, 3], layer="first"))
    assert default.shape == (3, 9, 7)


def test_errors_name_the_problem(make_model, images):
    model = make_model("nested")
    with pytest.raises(
        ValueError, match=r"No layer named 'nope'.*convolutional layers: 'base/conv'"
    ):
        grad_cam(model, images, 0, layer="nope")
    with pytest.raises(ValueError, match=r"'logits' \(Dense\) is not convolutional.*'base/conv'"):
        grad_cam(model, images, 0, layer="logits")
    with pytest.raises(ValueError, match=r"'pool' .*not convolutional"):
        grad_cam_plus_plus(model, images, 0, layer="base/pool")


def test_model_without_conv_layers():
    inp = keras.Input((6, 6, 1))
    mlp = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)), name="mlp")
    with pytest.raises(ValueError, match="'mlp' has no convolutional layer; Grad-CAM needs one"):
        grad_cam(mlp, np.zeros((1, 6, 6, 1)), 0)
