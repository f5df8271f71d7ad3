"""The PNG figures: written where asked, for any channel count, without pyplot."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from sequential_learning.interpret import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_heatmap_overlays(tmp_path, channels):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 6, 9, channels))
    maps = rng.uniform(-1, 1, size=(3, 6, 9))
    path = plots.heatmap_overlays(
        images, maps, tmp_path / "sub" / "maps.png", titles=["a", "b", "c"], symmetric=True
    )
    assert path == tmp_path / "sub" / "maps.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_image_grid_and_constant_images(tmp_path):
    kernels = np.zeros((10, 3, 3, 2))  # all-zero images must not divide by zero
    path = plots.image_grid(kernels, tmp_path / "k.png", columns=4, symmetric=True, suptitle="k")
    assert path.read_bytes()[:8] == PNG_MAGIC
    path = plots.image_grid(np.ones((2, 5, 5)), tmp_path / "g.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"one map per image"):
        plots.heatmap_overlays(np.zeros((2, 4, 4, 1)), np.zeros((3, 4, 4)), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"`images` must be \(N, H, W\) or \(N, H, W, C\)"):
        plots.image_grid(np.zeros((4, 4)), tmp_path / "x.png")


def test_no_pyplot():
    source = inspect.getsource(plots)
    for forbidden in ("import matplotlib.pyplot", "from matplotlib import pyplot", ".show("):
        assert forbidden not in source
