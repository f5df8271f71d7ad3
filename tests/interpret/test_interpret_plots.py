"""The PNG figures: written where asked, for any channel count, without pyplot."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from sequential_learning.interpret import plots

pytestmark = pytest.mark.all_backends

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


# -- readability: one colour scale with a labelled colour bar, class names in the captions ------
def _colorbars(figure):
    return [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]


def _heat_images(figure):
    return [image for axis in figure.axes if axis.get_label() != "<colorbar>"
            for image in axis.get_images()[1:]]  # [0] is the plain image under the map


def test_signed_maps_get_a_diverging_scale_centred_on_zero_and_a_labelled_colour_bar():
    rng = np.random.default_rng(1)
    maps = rng.uniform(-0.2, 0.5, size=(3, 6, 6))
    figure = plots.overlay_figure(rng.uniform(size=(3, 6, 6, 1)), maps, symmetric=True,
                                  colorbar_label="drop in p(label) when occluded")
    bars = _colorbars(figure)
    assert len(bars) == 1
    assert bars[0].get_ylabel() == "drop in p(label) when occluded"
    heat = _heat_images(figure)
    assert len(heat) == 3
    bound = float(np.abs(maps).max())
    for image in heat:  # one scale for every map, so the one colour bar reads them all
        assert image.get_cmap().name == plots.DIVERGING_CMAP
        assert image.get_clim() == pytest.approx((-bound, bound))


def test_non_negative_maps_share_the_given_range_and_fade_where_zero():
    maps = np.zeros((2, 4, 4))
    maps[0, 1, 1] = 1.0
    figure = plots.overlay_figure(np.ones((2, 4, 4)), maps, value_range=(0.0, 1.0),
                                  colorbar_label="Grad-CAM")
    assert len(_colorbars(figure)) == 1
    heat = _heat_images(figure)
    assert all(image.get_clim() == (0.0, 1.0) for image in heat)
    assert np.all(np.asarray(heat[1].get_alpha()) == 0)  # an all-zero map hides nothing
    assert np.asarray(heat[0].get_alpha())[1, 1] > 0


def test_captions_are_the_titles_given():
    figure = plots.overlay_figure(np.ones((2, 4, 4)), np.zeros((2, 4, 4)),
                                  titles=["T-shirt/top\npred: Trouser", "Bag\npred: Bag"],
                                  title_colors=["tab:red", "black"])
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles == ["T-shirt/top\npred: Trouser", "Bag\npred: Bag"]
    with pytest.raises(ValueError, match="one caption per image"):
        plots.overlay_figure(np.ones((2, 4, 4)), np.zeros((2, 4, 4)), titles=["a"])
