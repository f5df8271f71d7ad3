"""Figures of a run: task curves, the accuracy matrix, method comparisons.

Figures are drawn with Matplotlib's object-oriented API on the Agg canvas (no `pyplot` state, no
window, never `plt.show()`) and written atomically as PNG.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sequential_learning.results import Results, atomic_write_bytes

_METRIC_LABELS = {
    "accuracy": "validation accuracy",
    "loss": "validation loss",
    "mse": "validation MSE",
    "mean_squared_error": "validation MSE",
}


def metric_label(metric: str) -> str:
    """A human label for a metric name (`accuracy` -> `validation accuracy`)."""
    return _METRIC_LABELS.get(metric, f"validation {metric.replace('_', ' ')}")


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Renders `figure` to PNG and writes it atomically. Returns the path."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def task_curves(results: Results, path: str | os.PathLike | None = None, metric: str | None = None) -> Figure:
    """Each task's validation metric over all epochs, dashed lines at task boundaries.

    Args:
        results: a run's `Results`.
        path: where to write the PNG (optional).
        metric: which history metric to draw (default: the accuracy matrix's metric).

    Returns:
        The Matplotlib figure.

    Example:
    ```python
    task_curves(results, "runs/mine/task_curves.png")
    ```
    """
    metric = metric or results.metric
    if metric not in results.history:
        raise ValueError(f"No history for metric {metric!r}; have {sorted(results.history)}")
    values = np.asarray(results.history[metric])
    epochs = np.arange(1, values.shape[0] + 1)
    figure = Figure(figsize=(8, 4.5))
    ax = figure.add_subplot()
    for j, name in enumerate(results.task_names):
        ax.plot(epochs, values[:, j], marker="o", markersize=3, label=name)
    for boundary in results.task_boundaries[:-1]:
        ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("epoch (all tasks)")
    ax.set_ylabel(metric_label(metric))
    method = results.config.get("method", "")
    ax.set_title(f"{results.config.get('benchmark', 'task stream')} — {method}")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    if path is not None:
        save_figure(figure, path)
    return figure


def accuracy_matrix(results: Results, path: str | os.PathLike | None = None) -> Figure:
    """The matrix R[i, j] (metric on task j after training task i) as an annotated heatmap."""
    r = np.asarray(results.accuracy_matrix, dtype=float)
    t = r.shape[0]
    figure = Figure(figsize=(1.1 * t + 2.5, 1.0 * t + 1.5))
    ax = figure.add_subplot()
    cmap = "viridis" if results.higher_is_better else "viridis_r"
    image = ax.imshow(np.ma.masked_invalid(r), cmap=cmap, vmin=np.nanmin(r), vmax=np.nanmax(r))
    for i in range(t):
        for j in range(t):
            if np.isfinite(r[i, j]):
                ax.text(j, i, f"{r[i, j]:.2f}", ha="center", va="center", color="white",
                        fontsize=9, path_effects=None)
    ax.set_xticks(range(t), [f"T{j + 1}" for j in range(t)])
    ax.set_yticks(range(t), [f"after T{i + 1}" for i in range(t)])
    ax.set_xlabel("evaluated on task")
    ax.set_title(f"{results.metric} matrix R[i, j]")
    figure.colorbar(image, ax=ax, label=metric_label(results.metric))
    if path is not None:
        save_figure(figure, path)
    return figure


def comparison(metrics_by_method: dict[str, dict[str, float]], path: str | os.PathLike | None = None) -> Figure:
    """Grouped bars of ACC, BWT, FWT and forgetting for each method.

    Args:
        metrics_by_method: `{method: {"acc": ..., "bwt": ..., "fwt": ..., "forgetting": ...}}`.
        path: where to write the PNG (optional).

    Returns:
        The Matplotlib figure.
    """
    names = ["acc", "bwt", "fwt", "forgetting"]
    methods = list(metrics_by_method)
    figure = Figure(figsize=(max(6, 1.6 * len(methods) + 2), 4))
    ax = figure.add_subplot()
    width = 0.8 / len(names)
    x = np.arange(len(methods))
    for k, name in enumerate(names):
        vals = [metrics_by_method[m].get(name, np.nan) for m in methods]
        vals = [np.nan if v is None else v for v in vals]
        ax.bar(x + (k - 1.5) * width, vals, width, label=name.upper())
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, methods)
    ax.set_ylabel("value")
    ax.set_title("methods on the same task stream")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    if path is not None:
        save_figure(figure, path)
    return figure
