"""What every attribution method promises, checked for each method on each model shape.

One uniform call shape, `method(model, images, targets, ...) -> (N, H, W)`, for Grad-CAM,
Grad-CAM++ and occlusion; the model shapes are a flat Sequential, a flat functional model, a task
model on a nested shared base (with a Dense or a Sequential head) and a saved-and-loaded one.
"""

from __future__ import annotations

import numpy as np
import pytest

from sequential_learning.interpret import grad_cam, grad_cam_plus_plus, occlusion_sensitivity

pytestmark = pytest.mark.all_backends

METHODS = {
    "grad-cam": grad_cam,
    "grad-cam++": grad_cam_plus_plus,
    "occlusion": lambda model, x, t: occlusion_sensitivity(model, x, t, patch_size=3, stride=2),
}


@pytest.fixture(params=list(METHODS))
def method(request):
    return METHODS[request.param]


TARGETS = np.array([0, 1, 2, 0, 1])


def test_every_model_shape_gives_the_same_maps(method, make_model, model_kind, images):
    """Same weights, different nesting: identical explanations, shaped (N, H, W)."""
    maps = method(make_model(model_kind), images, TARGETS)
    assert maps.shape == (5, 8, 10)
    assert maps.dtype == np.float32
    assert np.all(np.isfinite(maps))
    np.testing.assert_allclose(maps, method(make_model("sequential"), images, TARGETS), atol=1e-5)


def test_repeated_calls_are_identical(method, make_model, images):
    model = make_model("nested")
    np.testing.assert_array_equal(method(model, images, TARGETS), method(model, images, TARGETS))


def test_different_classes_give_different_maps(method, make_model, images):
    model = make_model("nested")
    first = method(model, images[:1], [0])
    assert not any(np.allclose(first, method(model, images[:1], [c])) for c in (1, 2))


def test_one_int_target_is_every_image(method, make_model, images):
    model = make_model("functional")
    np.testing.assert_array_equal(method(model, images, 2), method(model, images, [2] * 5))


def test_softmax_model_gives_the_logits_model_maps(method, make_model, images):
    logits_model = make_model("nested")
    softmax_model = make_model("nested_sequential_head", softmax=True)
    softmax_model.set_weights(logits_model.get_weights())
    np.testing.assert_allclose(
        method(softmax_model, images, TARGETS), method(logits_model, images, TARGETS), atol=1e-6
    )


def test_batch_result_is_per_image(method, make_model, images):
    """An image's map does not depend on the rest of the batch."""
    model = make_model("nested")
    whole = method(model, images, TARGETS)
    np.testing.assert_allclose(method(model, images[2:3], TARGETS[2:3]), whole[2:3], atol=1e-6)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (np.array([0, 1]), r"`targets` has 2 entries but there are 5 images"),
        (np.eye(3)[[0, 1, 2, 0, 1]], r"one class index per image.*one-hot"),
        (np.array([0, 1, 3, 0, 1]), r"must lie in \[0, 3\).*got \[3\]"),
        (np.array([0.5, 1, 2, 0, 1]), r"integer class indices"),
    ],
)
def test_bad_targets(method, make_model, images, targets, message):
    with pytest.raises(ValueError, match=message):
        method(make_model("nested"), images, targets)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((8, 10, 2), r"got a single image of shape \(8, 10, 2\).*images\[None\]"),
        (
            (5, 10, 8, 2),
            r"`images` have shape \(5, 10, 8, 2\); model 'task' expects .*\(N, 8, 10, 2\)",
        ),
        ((5, 8, 10), r"expects a batch of shape \(N, 8, 10, 2\)"),
        ((0, 8, 10, 2), r"empty batch"),
    ],
)
def test_bad_images(method, make_model, shape, message):
    with pytest.raises(ValueError, match=message):
        method(make_model("nested"), np.zeros(shape), 0)
