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


#: Colormap of signed maps (occlusion's probability drops): diverging, white at 0, red positive.
DIVERGING_CMAP = "RdBu_r"
#: Colormap of non-negative maps (Grad-CAM).
SEQUENTIAL_CMAP = "jet"


def _map_range(
    maps: np.ndarray, symmetric: bool, value_range: tuple[float, float] | None
) -> tuple[float, float]:
    """The one colour scale every map of a figure is drawn on (so one colour bar reads them all)."""
    if value_range is not None:
        low, high = (float(v) for v in value_range)
        if not (np.isfinite(low) and np.isfinite(high) and high > low):
            raise ValueError(f"`value_range` must be two finite numbers (low < high); got {value_range!r}.")
        return low, high
    finite = maps[np.isfinite(maps)]
    if symmetric:
        bound = float(np.abs(finite).max()) if finite.size else 0.0
        bound = bound or 1.0
        return -bound, bound
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    return low, (high if high > low else low + 1.0)


def overlay_figure(
    images: Any,
    maps: Any,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    columns: int = 8,
    cmap: str | None = None,
    alpha: float = 0.55,
    symmetric: bool = False,
    colorbar_label: str | None = None,
    value_range: tuple[float, float] | None = None,
    title_colors: Sequence[str] | None = None,
) -> Figure:
    """The figure `heatmap_overlays` saves: each image above the same image with its map laid over.

    Every map is drawn on one colour scale, shown by one colour bar beside the grid, so values
    compare across images: signed maps (`symmetric=True`) on a diverging colormap centred on 0
    (white = no effect), others from the smallest to the largest value of all maps (or
    `value_range`), fading to transparent at the low end so that where a map is 0 the image
    shows through.

    Args:
        images: array `(N, H, W, C)` (or `(N, H, W)`).
        maps: array `(N, H, W)`, e.g. from `grad_cam` or `occlusion_sensitivity`.
        titles: one caption per image (e.g. the true and predicted class names).
        suptitle: a title for the whole figure.
        columns: images per row.
        cmap: the heatmap's colormap (default `DIVERGING_CMAP` when `symmetric`, else
            `SEQUENTIAL_CMAP`).
        alpha: the heatmap's opacity.
        symmetric: signed maps: a scale symmetric about 0 and a diverging colormap.
        colorbar_label: what a map's value means, written along the colour bar (e.g. "drop in
            p(label) when occluded").
        value_range: `(low, high)` of the colour scale (e.g. `(0, 1)` for Grad-CAM's maps
            scaled per image); default from the maps themselves.
        title_colors: one colour per caption (e.g. red where the prediction is wrong).

    Returns:
        A Matplotlib `Figure` (Agg-ready, not shown).

    Example:
    ```python
    >>> figure = overlay_figure(x[:4], occlusion_sensitivity(model, x[:4], y[:4]), symmetric=True,
    ...                         colorbar_label="drop in p(label) when occluded")
    ```
    """
    images, maps = np.asarray(images), np.asarray(maps, dtype=np.float32)
    if len(images) != len(maps) or maps.ndim != 3:
        raise ValueError(
            f"`maps` must be (N, H, W) with one map per image; got {maps.shape} for "
            f"{len(images)} images."
        )
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"`titles` must hold one caption per image: {len(titles)} for "
                         f"{len(images)} images.")
    low, high = _map_range(maps, symmetric, value_range)
    cmap = cmap or (DIVERGING_CMAP if symmetric else SEQUENTIAL_CMAP)
    rows, cols = _grid(len(images), columns)
    multiline = titles is not None and any("\n" in str(t) for t in titles)
    figure = Figure(
        figsize=(1.8 * cols + 1.2, (3.7 + (0.25 if multiline else 0)) * rows
                 + (0.4 if suptitle else 0)),
        layout="constrained",
    )
    axes = []
    heat_image = None
    for i, (image, heat) in enumerate(zip(images, maps, strict=True)):
        row, col = divmod(i, cols)
        shown, grey = _displayable(image)
        top = figure.add_subplot(2 * rows, cols, 2 * row * cols + col + 1)
        top.imshow(shown, cmap=grey)
        bottom = figure.add_subplot(2 * rows, cols, (2 * row + 1) * cols + col + 1)
        bottom.imshow(shown, cmap=grey)
        if symmetric:
            opacity = np.full(heat.shape, float(alpha), np.float32)
        else:  # transparent where the map is at the bottom of the scale: the image shows through
            level = np.clip((np.nan_to_num(heat, nan=low) - low) / (high - low), 0.0, 1.0)
            opacity = (float(alpha) * np.sqrt(level)).astype(np.float32)
        heat_image = bottom.imshow(heat, cmap=cmap, alpha=opacity, vmin=low, vmax=high)
        if titles is not None:
            color = {} if title_colors is None else {"color": title_colors[i]}
            top.set_title(str(titles[i]), fontsize=8, **color)
        for axis in (top, bottom):
            axis.set_axis_off()
        axes += [top, bottom]
    if heat_image is not None:
        bar = figure.colorbar(heat_image, ax=axes, shrink=0.9, aspect=30, pad=0.02)
        bar.solids.set_alpha(1.0)  # the scale itself opaque; the overlays stay see-through
        bar.set_label(colorbar_label or "map value", fontsize=9)
        bar.ax.tick_params(labelsize=8)
    if suptitle:
        figure.suptitle(suptitle)
    return figure


def heatmap_overlays(
    images: Any,
    maps: Any,
    path: str | Path,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    columns: int = 8,
    cmap: str | None = None,
    alpha: float = 0.55,
    symmetric: bool = False,
    colorbar_label: str | None = None,
    value_range: tuple[float, float] | None = None,
    title_colors: Sequence[str] | None = None,
) -> Path:
    """Saves each image with its heatmap laid over it, the plain image above, as a PNG.

    One colour scale for all maps, with a labelled colour bar (see `overlay_figure`).

    Args:
        images: array `(N, H, W, C)` (or `(N, H, W)`).
        maps: array `(N, H, W)`, e.g. from `grad_cam` or `occlusion_sensitivity`.
        path: where to write the PNG (parent folders are created).
        titles: one caption per image.
        suptitle: a title for the whole figure.
        columns: images per row.
        cmap: the heatmap's colormap (default: diverging when `symmetric`, else `jet`).
        alpha: the heatmap's opacity.
        symmetric: colour the maps on a scale symmetric about 0 (for signed maps such as
            occlusion's probability drops) instead of from their minimum to their maximum.
        colorbar_label: what a map's value means, along the colour bar.
        value_range: `(low, high)` of the colour scale; default from the maps.
        title_colors: one colour per caption.

    Returns:
        The path written.

    Example:
    ```python
    >>> heatmap_overlays(x[:8], grad_cam(model, x[:8], y[:8]), "explain/grad_cam.png",
    ...                  value_range=(0, 1), colorbar_label="Grad-CAM relevance")
    ```
    """
    figure = overlay_figure(images, maps, titles, suptitle, columns, cmap, alpha, symmetric,
                            colorbar_label, value_range, title_colors)
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
    ```python
    >>> kernels, _ = kernel_weights(model, "conv2d")
    >>> image_grid(kernels, "explain/kernels.png", symmetric=True)
    ```
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


def plot_drift(table: dict, path: str | Path) -> Path:
    """`drift.png`: (left) mean similarity against tasks learned since; (right) task 1's.

    Args:
        table: an `explanation_drift` table.
        path: the PNG file to write.

    Returns:
        The path written.

    Example:
    ```python
    plot_drift(table, "runs/x/augment/drift.png")
    ```
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from sequential_learning.plots import save_figure

    figure = Figure(figsize=(10, 3.8))
    left, right = figure.subplots(1, 2, sharey=True)
    colors = [f"C{i}" for i in range(10)]
    styles = {"grad-cam": "-", "occlusion": "--"}
    for i, (run, per_method) in enumerate(table["by_distance"].items()):
        for m, values in per_method.items():
            label = f"{run}, {m}"
            left.plot(range(len(values)), values, styles.get(m, ":"), marker="o",
                      color=colors[i % 10], label=label)
            first = [r for r in table["rows"] if r["run"] == run and r["method"] == m and r["task"] == 1]
            right.plot([r["after_task"] for r in first], [r["similarity"] for r in first],
                       styles.get(m, ":"), marker="o", color=colors[i % 10], label=label)
    left.set_xlabel("tasks learned since")
    left.set_ylabel("Spearman similarity to the maps\nright after the task (mean)")
    left.set_title("all tasks", fontsize=10)
    right.set_xlabel("after task")
    right.set_title("task 1", fontsize=10)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.05, 1.05)
    left.legend(fontsize=8)
    figure.suptitle("Explanation drift")
    figure.tight_layout()
    return save_figure(figure, path)
