"""Occlusion sensitivity against values computed by hand and against a per-patch loop."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.interpret import occlusion_sensitivity
from sequential_learning.interpret.occlusion import occlusion_masks, patch_positions

pytestmark = pytest.mark.all_backends


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _linear_model(height, width, weights):
    """Flatten -> Dense(2) with logit_1 - logit_0 = Σ weights * pixels (hand-computable)."""
    inp = keras.Input((height, width, 1))
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inp, dense(keras.layers.Flatten()(inp)), name="linear")
    kernel = np.zeros((height * width, 2), np.float32)
    kernel[:, 1] = np.asarray(weights, np.float32).ravel()
    dense.set_weights([kernel, np.zeros(2, np.float32)])
    return model


def test_positions_cover_the_far_edge():
    assert patch_positions(7, 3, 2).tolist() == [0, 2, 4]
    assert patch_positions(8, 3, 2).tolist() == [0, 2, 4, 5]
    assert patch_positions(5, 5, 3).tolist() == [0]
    assert patch_positions(6, 1, 1).tolist() == [0, 1, 2, 3, 4, 5]
    masks = occlusion_masks(5, 7, (2, 3), (2, 3))
    assert masks.shape == (3 * 3, 5, 7)
    assert masks.sum(axis=0).min() >= 1  # every pixel is covered


def test_single_pixel_patches_by_hand():
    """1x1 patches: each pixel's value is the drop from zeroing that pixel alone."""
    image = np.array([[1.0, 2.0, 0.5], [0.0, 1.5, 1.0]], np.float32)
    weights = np.array([[0.5, -1.0, 2.0], [1.0, 0.25, -0.5]])
    model = _linear_model(2, 3, weights)
    margin = float((weights * image).sum())
    p = _softmax(np.array([0.0, margin]))[1]
    expected = p - _softmax(np.stack([np.zeros(6), margin - (weights * image).ravel()], 1))[:, 1]
    maps = occlusion_sensitivity(model, image[None, :, :, None], [1], patch_size=1, stride=1)
    np.testing.assert_allclose(maps[0], expected.reshape(2, 3), atol=1e-6)


def test_overlapping_patches_are_averaged_not_overwritten():
    """2x2 patches, stride 1, on a 2x3 image: the middle column is covered by both patches."""
    image = np.ones((2, 3), np.float32)
    weights = np.array([[1.0, 0.0, 3.0], [1.0, 0.0, 3.0]])
    model = _linear_model(2, 3, weights)
    p = _softmax(np.array([0.0, 8.0]))[1]
    drop_left = p - _softmax(np.array([0.0, 8.0 - 2.0]))[1]  # zeroes columns 0 and 1
    drop_right = p - _softmax(np.array([0.0, 8.0 - 6.0]))[1]  # zeroes columns 1 and 2
    expected = np.array([[drop_left, (drop_left + drop_right) / 2, drop_right]] * 2)
    maps = occlusion_sensitivity(model, image[None, :, :, None], [1], patch_size=2, stride=1)
    np.testing.assert_allclose(maps[0], expected, atol=1e-6)


def test_stride_above_one_with_edge_patch():
    """Width 5, patch 2, stride 2: patches start at 0, 2 and (edge) 3; column 3 is shared."""
    image = np.ones((1, 5), np.float32)
    weights = np.array([[1.0, 1.0, 0.5, 2.0, 4.0]])
    model = _linear_model(1, 5, weights)
    margin = weights.sum()
    p = _softmax(np.array([0.0, margin]))[1]

    def drop(columns):
        return p - _softmax(np.array([0.0, margin - weights[0, columns].sum()]))[1]

    a, b, c = drop([0, 1]), drop([2, 3]), drop([3, 4])
    expected = np.array([[a, a, b, (b + c) / 2, c]])
    maps = occlusion_sensitivity(
        model, image[None, :, :, None], [1], patch_size=(1, 2), stride=(1, 2)
    )
    np.testing.assert_allclose(maps[0], expected, atol=1e-6)


def _per_patch_loop(model, images, targets, patch, stride, baseline):
    """The obvious implementation: one model call per occluded image."""
    n, height, width, _ = images.shape
    (ph, pw), (sh, sw) = patch, stride
    out = np.zeros((n, height, width))
    for i in range(n):
        sums, counts = np.zeros((height, width)), np.zeros((height, width))
        clean = _softmax(keras.ops.convert_to_numpy(model(images[i : i + 1])))[0, targets[i]]
        fill = images[i].mean(axis=(0, 1)) if baseline == "mean" else baseline
        for r in patch_positions(height, ph, sh):
            for c in patch_positions(width, pw, sw):
                occluded = images[i : i + 1].copy()
                occluded[0, r : r + ph, c : c + pw] = fill
                p = _softmax(keras.ops.convert_to_numpy(model(occluded)))[0, targets[i]]
                sums[r : r + ph, c : c + pw] += clean - p
                counts[r : r + ph, c : c + pw] += 1
        out[i] = sums / counts
    return out


@pytest.mark.parametrize(
    ("patch", "stride", "baseline"),
    [((2, 3), (2, 2), 0.0), ((3, 3), (1, 3), "mean"), ((4, 2), (3, 1), 0.5)],
)
def test_batched_equals_per_patch_loop_on_non_square_images(make_model, patch, stride, baseline):
    model = make_model("nested", input_shape=(7, 11, 2))
    images = np.random.default_rng(2).uniform(size=(3, 7, 11, 2)).astype(np.float32)
    targets = np.array([0, 2, 1])
    maps = occlusion_sensitivity(
        model, images, targets, patch_size=patch, stride=stride, baseline=baseline, batch_size=7
    )
    expected = _per_patch_loop(model, images, targets, patch, stride, baseline)
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_stride_defaults_to_patch_size(make_model, images):
    model = make_model("functional")
    np.testing.assert_array_equal(
        occlusion_sensitivity(model, images, 1, patch_size=(2, 5)),
        occlusion_sensitivity(model, images, 1, patch_size=(2, 5), stride=(2, 5)),
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patch_size": 9}, r"`patch_size` \(9, 9\) is larger than the images \(8, 10\)"),
        ({"patch_size": (3, 11)}, r"larger than the images"),
        ({"patch_size": 0}, r"`patch_size` must be a positive int"),
        ({"patch_size": 2, "stride": (1, 0)}, r"`stride` must be a positive int"),
        ({"baseline": "median"}, r'`baseline` must be a number or "mean"'),
        ({"baseline": float("nan")}, r"`baseline` must be a finite number"),
    ],
)
def test_bad_options(make_model, images, options, message):
    with pytest.raises(ValueError, match=message):
        occlusion_sensitivity(make_model("nested"), images, 0, **options)


def test_flat_inputs_are_rejected_clearly():
    inp = keras.Input((12,))
    mlp = keras.Model(inp, keras.layers.Dense(2)(inp), name="mlp")
    with pytest.raises(ValueError, match=r"needs images shaped \(N, height, width, channels\)"):
        occlusion_sensitivity(mlp, np.zeros((2, 12)), 0)


@pytest.mark.parametrize(("patch", "stride"), [(2, 3), ((2, 2), (2, 3)), ((1, 4), (2, 4))])
def test_stride_larger_than_the_patch_is_refused_not_nan(make_model, images, patch, stride):
    """Such a stride leaves pixels no patch covers: a one-line SeqlError, never NaN pixels."""
    from sequential_learning.errors import SeqlError

    with pytest.raises(SeqlError, match=r"`stride` .* is larger than `patch_size` .*covered by no "
                                        r"patch") as caught:
        occlusion_sensitivity(make_model("nested"), images, 0, patch_size=patch, stride=stride)
    assert "\n" not in str(caught.value)
    with pytest.raises(SeqlError, match="larger than `patch_size`"):
        occlusion_masks(8, 10, patch if isinstance(patch, tuple) else (patch, patch),
                        stride if isinstance(stride, tuple) else (stride, stride))


def test_largest_allowed_stride_covers_every_pixel(make_model, images):
    maps = occlusion_sensitivity(make_model("nested"), images, 0, patch_size=3, stride=3)
    assert np.all(np.isfinite(maps))
