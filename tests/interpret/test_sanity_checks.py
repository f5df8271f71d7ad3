"""Sanity checks of the saliency maps on a model trained on a planted feature.

- Pointing game: the map's maximum falls inside the square that decides the class.
- Model randomisation (Adebayo et al. 2018): maps change once the top layers are re-initialised.
- Deletion (Petsiuk et al. 2018): deleting pixels in the map's order lowers the target's
  probability faster than deleting them in a random order.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

from sequential_learning.interpret import (
    find_layer,
    grad_cam,
    grad_cam_plus_plus,
    occlusion_sensitivity,
)

pytestmark = pytest.mark.all_backends

METHODS = {
    "grad-cam": lambda model, x, t: grad_cam(model, x, t),
    "grad-cam++": lambda model, x, t: grad_cam_plus_plus(model, x, t),
    "occlusion": lambda model, x, t: occlusion_sensitivity(model, x, t, patch_size=3, stride=1),
}


def test_planted_model_learned_the_task(planted):
    assert planted["accuracy"] >= 0.95


@pytest.mark.parametrize("method", list(METHODS))
def test_pointing_game(planted, method):
    x, masks = planted["x"], planted["masks"]
    maps = METHODS[method](planted["model"], x, 1)
    peak = maps.reshape(len(maps), -1).argmax(axis=1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), peak]
    assert hits.mean() >= 0.9, f"{method}: only {hits.mean():.0%} of maxima inside the square"


def _randomised_copy(planted: dict, layers: list[str], seed: int) -> keras.Model:
    copy = planted["build"](seed=123)
    model = planted["model"]
    copy.set_weights(model.get_weights())
    for i, path in enumerate(layers):
        layer = find_layer(copy, path)
        layer.kernel.assign(keras.initializers.GlorotUniform(seed=seed + i)(layer.kernel.shape))
        layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    return copy


def test_model_randomisation_changes_grad_cam(planted):
    """Cascading randomisation of the top layers (the last conv and the head).

    One re-initialisation can by chance keep much of the map's rank order (it still follows the
    bright areas the first layer responds to), so the correlation is averaged over five draws,
    as Adebayo et al. average over images and draws.
    """
    x, model = planted["x"], planted["model"]
    before = grad_cam(model, x, 1)
    rhos = []
    for seed in range(5):
        after = grad_cam(_randomised_copy(planted, ["base/conv2", "head"], seed), x, 1)
        for a, b in zip(before, after, strict=True):
            if np.ptp(a) == 0 or np.ptp(b) == 0:
                rhos.append(0.0)  # a constant map has no rank order
            else:
                rhos.append(spearmanr(a.ravel(), b.ravel())[0])
    assert np.mean(rhos) < 0.5
    # A copy with nothing re-initialised gives the same maps: the change is the weights' doing.
    same = grad_cam(_randomised_copy(planted, [], 0), x, 1)
    np.testing.assert_allclose(same, before, atol=1e-5)


def _deletion_auc(model: keras.Model, x: np.ndarray, orders: np.ndarray, steps: int = 16):
    """Mean probability of class 1 while pixels are set to 0 in the given orders (per image)."""
    n, pixels = len(x), orders.shape[1]
    per_step = pixels // steps
    variants = np.repeat(x[:, None], steps + 1, axis=1).reshape(n, steps + 1, -1)
    for k in range(1, steps + 1):
        deleted = orders[:, : k * per_step]
        np.put_along_axis(variants[:, k], deleted, 0.0, axis=1)
    logits = model.predict(variants.reshape(-1, *x.shape[1:]), verbose=0, batch_size=512)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))[:, 1].reshape(n, steps + 1)
    return np.trapezoid(probs, dx=1.0 / steps, axis=1)


def test_deletion_in_grad_cam_order_beats_random_order(planted):
    x, model = planted["x"], planted["model"]
    maps = grad_cam(model, x, 1).reshape(len(x), -1)
    rng = np.random.default_rng(0)
    tie_break = rng.uniform(0, 1e-6, maps.shape)  # zero-valued pixels in random order
    by_map = np.argsort(-(maps + tie_break), axis=1)
    at_random = np.argsort(rng.uniform(size=maps.shape), axis=1)
    auc_map = _deletion_auc(model, x, by_map)
    auc_random = _deletion_auc(model, x, at_random)
    assert auc_map.mean() < auc_random.mean() - 0.1, (auc_map.mean(), auc_random.mean())
