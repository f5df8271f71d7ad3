"""Figures of the ablation: `ablation.png` and the importance maps, on the Agg canvas.

Example:
```python
plot_ablation(ablation_curve(tasks, models, omega, [0.1, 0.5]), "ablation.png")
```
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from sequential_learning.ablation.settings import settings_detail

_ORDER_STYLE = {"low": ("tab:green", "o"), "high": ("tab:red", "s"), "random": ("tab:gray", "^"),
                "magnitude": ("tab:blue", "d")}


def plot_ablation(table: dict, path: str | Path) -> Path:
    """`ablation.png`: one panel per task, accuracy against the fraction replaced, a line per order.

    Args:
        table: an `ablation_curve` table.
        path: the PNG file to write.

    Returns:
        The path written.

    Example:
    ```python
    plot_ablation(table, "runs/x/augment/ablation.png")
    ```
    """
    from matplotlib.figure import Figure

    from sequential_learning.plots import save_figure

    n = len(table["task_names"])
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    figure = Figure(figsize=(3.0 * cols, 2.8 * rows + 0.5))
    axes = figure.subplots(rows, cols, squeeze=False, sharey=True)
    for k in range(rows * cols):
        ax = axes[k // cols][k % cols]
        if k >= n:
            ax.set_axis_off()
            continue
        for order in table["orders"]:
            color, marker = _ORDER_STYLE.get(order, (None, "x"))
            ax.plot(table["fractions"], [row[k] for row in table["accuracy"][order]],
                    marker=marker, color=color, label=order)
        ax.set_title(table["task_names"][k], fontsize=9)
        ax.set_xlabel("fraction replaced")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if k % cols == 0:
            ax.set_ylabel("accuracy")
    axes[0][0].legend(fontsize=8, title="order", title_fontsize=8)
    s = table["settings"]
    title = (f"Ablation by importance: {s['action']} at level {s['level']}, scope "
             f"{s['scope']} (heads untouched)")
    if table.get("augment_settings"):
        title += "\n" + textwrap.fill(settings_detail(table["augment_settings"]), 40 * cols)
    figure.suptitle(title, fontsize=10 if table.get("augment_settings") else None)
    figure.tight_layout()
    return save_figure(figure, path)


#: Up to this many filters, the bars of the Ω chart are labelled with their filter numbers.
MAX_LABELLED_FILTERS = 32


def importance_maps_figure(maps: dict, show: int = 8):
    """The figure `plot_importance_maps` saves (a Matplotlib `Figure`, not shown).

    Args:
        maps: as `importance_maps` returns.
        show: filters drawn at each end.

    Returns:
        The figure: Ω of every filter sorted from most to least important (bars labelled with
        their filter numbers up to `MAX_LABELLED_FILTERS` filters, else integer ranks), then the
        most and least important filters' kernels (mean over input channels, blue negative,
        red positive, each on its own symmetric scale) and activation-maximisation images.

    Example:
    ```python
    >>> figure = importance_maps_figure(importance_maps(model, omega, "base/conv", steps=0))
    ```
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, MaxNLocator

    from sequential_learning.interpret.plots import _displayable

    omega, order = np.asarray(maps["importance"]), np.asarray(maps["order"])
    show = max(1, min(int(show), len(order) // 2 or 1))
    picked = [("most important", order[:show]), ("least important", order[::-1][:show])]
    figure = Figure(figsize=(max(5.5, 1.3 * show + 1.5), 7.0))
    grid = figure.add_gridspec(5, show, height_ratios=[1.4, 1, 1, 1, 1])
    top = figure.add_subplot(grid[0, :])
    top.bar(np.arange(len(omega)), omega[order], color="tab:purple")
    if len(omega) <= MAX_LABELLED_FILTERS:
        top.xaxis.set_major_locator(FixedLocator(np.arange(len(omega))))
        top.set_xticklabels([str(int(f)) for f in order],
                            fontsize=8 if len(omega) <= 16 else 6)
        top.set_xlabel("filter number, most to least important")
    else:
        top.xaxis.set_major_locator(MaxNLocator(integer=True))
        top.set_xlabel("rank of the filter, most to least important")
    top.set_xlim(-0.6, len(omega) - 0.4)
    top.set_ylabel("Ω per filter")
    for block, (label, indices) in enumerate(picked):
        for j, f in enumerate(indices):
            kernel = np.asarray(maps["kernels"][f])
            kernel = kernel.mean(axis=-1) if kernel.ndim == 3 else kernel
            limit = float(np.max(np.abs(kernel))) or 1.0
            ax = figure.add_subplot(grid[1 + 2 * block, j])
            ax.imshow(kernel if kernel.ndim == 2 else kernel.reshape(1, -1), cmap="bwr",
                      vmin=-limit, vmax=limit)
            ax.set_title(f"#{int(f)} Ω={float(omega[f]):.2g}", fontsize=7)
            ax.set_axis_off()
            if j == 0:
                ax.text(-0.15, 0.5, f"{label}\nkernel\n(blue −, red +)", transform=ax.transAxes,
                        ha="right", va="center", fontsize=7)
            image, cmap = _displayable(np.asarray(maps["images"][f]))
            ax = figure.add_subplot(grid[2 + 2 * block, j])
            ax.imshow(image, cmap=cmap)
            ax.set_axis_off()
            if j == 0:
                ax.text(-0.15, 0.5, "input that\nexcites it most", transform=ax.transAxes,
                        ha="right", va="center", fontsize=7)
    figure.suptitle(f"Filters of {maps['layer']} by importance")
    figure.tight_layout()
    return figure


def plot_importance_maps(maps: dict, path: str | Path, show: int = 8) -> Path:
    """Sorted Ω of every filter, then the most and least important filters' kernels and images.

    Args:
        maps: as `importance_maps` returns.
        path: where to write the PNG.
        show: filters drawn at each end.

    Returns:
        The path written.

    Example:
    ```python
    plot_importance_maps(importance_maps(task_model, omega), "runs/cnn/importance.png", show=4)
    ```
    """
    from sequential_learning.plots import save_figure

    return save_figure(importance_maps_figure(maps, show), path)
