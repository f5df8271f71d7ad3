"""Figures for the interpretability results: heatmap overlays and image grids, saved as PNG.

The figures are drawn with Matplotlib's object-oriented API on an Agg canvas: nothing here touches
`pyplot`, opens a window or changes the global backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _displayable(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An image as (array for imshow, colormap): grey for 1 or >3 channels, RGB for 3."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] == 3:
        low, high = float(array.min()), float(array.max())
        return (array - low) / (high - low) if high > low else np.zeros_like(array), None
    if array.ndim == 3:
        array = array.mean(axis=-1)
    if array.ndim != 2:
        raise ValueError(f"cannot draw an array of shape {image.shape} as an image.")
    return array, "gray"


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=100)
    return path


def heatmap_overlays(
    images: Any,
    maps: Any,
    path: str | Path,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    columns: int = 8,
    cmap: str = "jet",
    alpha: float = 0.45,
    symmetric: bool = False,
) -> Path:
    """Saves each image with its heatmap laid over it, the plain image above, as a PNG.

    Args:
        images: array `(N, H, W, C)` (or `(N, H, W)`).
        maps: array `(N, H, W)`, e.g. from `grad_cam` or `occlusion_sensitivity`.
        path: where to write the PNG (parent folders are created).
        titles: one caption per image.
        suptitle: a title for the whole figure.
        columns: images per row.
        cmap: the heatmap's colormap.
        alpha: the heatmap's opacity.
        symmetric: colour the maps on a scale symmetric about 0 (for signed maps such as
            occlusion's probability drops) instead of from their minimum to their maximum.

    Returns:
        The path written.

    Example:
    >>> heatmap_overlays(x[:8], grad_cam(model, x[:8], y[:8]), "explain/grad_cam.png")
    """
    images, maps = np.asarray(images), np.asarray(maps, dtype=np.float32)
    if len(images) != len(maps) or maps.ndim != 3:
        raise ValueError(
            f"`maps` must be (N, H, W) with one map per image; got {maps.shape} for "
            f"{len(images)} images."
        )
    rows, cols = _grid(len(images), columns)
    figure = Figure(figsize=(1.8 * cols, 3.6 * rows + (0.4 if suptitle else 0)))
    for i, (image, heat) in enumerate(zip(images, maps, strict=True)):
        row, col = divmod(i, cols)
        shown, grey = _displayable(image)
        if symmetric:
            bound = float(np.abs(heat).max()) or 1.0
            low, high = -bound, bound
        else:
            low, high = float(heat.min()), float(heat.max())
            high = high if high > low else low + 1.0
        top = figure.add_subplot(2 * rows, cols, 2 * row * cols + col + 1)
        top.imshow(shown, cmap=grey)
        bottom = figure.add_subplot(2 * rows, cols, (2 * row + 1) * cols + col + 1)
        bottom.imshow(shown, cmap=grey)
        bottom.imshow(heat, cmap=cmap, alpha=alpha, vmin=low, vmax=high)
        if titles is not None:
            top.set_title(str(titles[i]), fontsize=8)
        for axis in (top, bottom):
            axis.set_axis_off()
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return _save(figure, path)


def image_grid(
    images: Any,
    path: str | Path,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    columns: int = 8,
    cmap: str | None = None,
    symmetric: bool = False,
) -> Path:
    """Saves a grid of images (filters, kernels, activation-maximisation results) as a PNG.

    Args:
        images: array `(N, H, W)` or `(N, H, W, C)`; 3 channels are drawn as RGB (rescaled to
            [0, 1] per image), other channel counts as the mean over channels.
        path: where to write the PNG (parent folders are created).
        titles: one caption per image.
        suptitle: a title for the whole figure.
        columns: images per row.
        cmap: colormap for single-channel images (default grey, or `"bwr"` when `symmetric`).
        symmetric: colour each image on a scale symmetric about 0 (for kernels' signed weights).

    Returns:
        The path written.

    Example:
    >>> kernels, _ = kernel_weights(model, "conv2d")
    >>> image_grid(kernels, "explain/kernels.png", symmetric=True)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(f"`images` must be (N, H, W) or (N, H, W, C); got {images.shape}.")
    rows, cols = _grid(len(images), columns)
    figure = Figure(figsize=(1.6 * cols, 1.7 * rows + (0.4 if suptitle else 0)))
    for i, image in enumerate(images):
        axis = figure.add_subplot(rows, cols, i + 1)
        shown, grey = _displayable(image)
        if grey is None:
            axis.imshow(shown)
        elif symmetric:
            bound = float(np.abs(shown).max()) or 1.0
            axis.imshow(shown, cmap=cmap or "bwr", vmin=-bound, vmax=bound)
        else:
            axis.imshow(shown, cmap=cmap or grey)
        if titles is not None:
            axis.set_title(str(titles[i]), fontsize=8)
        axis.set_axis_off()
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return _save(figure, path)
