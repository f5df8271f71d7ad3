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
    epochs = np.asarray(results.history_epochs[: values.shape[0]])  # the evaluated epochs
    figure = Figure(figsize=(8, 4.5))
    ax = figure.add_subplot()
    for j, name in enumerate(results.task_names):
        ax.plot(epochs, values[:, j], marker="o", markersize=3, label=name)
    for boundary in results.task_boundaries[:-1]:
        ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("epoch (all tasks)")
    lower = metric == results.metric and not results.higher_is_better
    ax.set_ylabel(metric_label(metric) + (" (lower is better)" if lower else ""))
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


def importance_histogram(
    results_or_importance,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    bins: int = 50,
) -> Figure:
    """Histograms of Ω per covered variable, on a log10 axis (zeros counted apart).

    Args:
        results_or_importance: `{variable name: Ω array}`, a list of Ω arrays, or a `Results`
            (which keeps only per-task summaries: then the mean and max of Ω per variable and
            task are drawn instead).
        path: where to write the PNG (optional).
        title: the figure's title.
        bins: histogram bins.

    Returns:
        The Matplotlib figure.

    Example:
    ```python
    importance_histogram({"dense/kernel": omega[0]}, "runs/mine/importance.png")
    ```
    """
    if isinstance(results_or_importance, Results):
        return _importance_summary_plot(results_or_importance, path, title)
    if isinstance(results_or_importance, dict):
        items = [(str(k), np.asarray(v, dtype=float)) for k, v in results_or_importance.items()]
    else:
        items = [(f"variable {i}", np.asarray(v, dtype=float))
                 for i, v in enumerate(results_or_importance)]
    if not items:
        raise ValueError("importance_histogram needs at least one importance array")
    cols = min(3, len(items))
    rows = -(-len(items) // cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * rows + 0.6))
    for k, (name, values) in enumerate(items):
        ax = figure.add_subplot(rows, cols, k + 1)
        flat = values.ravel()
        finite = flat[np.isfinite(flat)]
        positive = finite[finite > 0]
        zeros = float(np.mean(finite == 0)) if finite.size else 0.0
        if positive.size:
            ax.hist(np.log10(positive), bins=bins, color="tab:blue", alpha=0.85)
        ax.set_xlabel("log10 Ω")
        ax.set_ylabel("weights")
        mean = float(finite.mean()) if finite.size else float("nan")
        peak = float(finite.max()) if finite.size else float("nan")
        ax.set_title(f"{name}\nmean {mean:.3g}  max {peak:.3g}  zeros {zeros:.0%}", fontsize=8)
        ax.grid(alpha=0.3)
    figure.suptitle(title or "weight importance Ω")
    figure.tight_layout()
    if path is not None:
        save_figure(figure, path)
    return figure


def _importance_summary_plot(results: Results, path, title) -> Figure:
    summaries = [s for s in results.importance_summary if s]
    if not summaries:
        raise ValueError("These results hold no importance summaries (method none?)")
    names = list(summaries[-1])
    figure = Figure(figsize=(max(6, 1.2 * len(names) + 2), 4))
    ax = figure.add_subplot()
    x = np.arange(len(names))
    for t, summary in enumerate(summaries):
        means = [summary.get(n, {}).get("mean", np.nan) for n in names]
        peaks = [summary.get(n, {}).get("max", np.nan) for n in names]
        ax.plot(x, means, marker="o", label=f"mean, task {t + 1}")
        ax.plot(x, peaks, marker="^", linestyle="--", label=f"max, task {t + 1}")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("symlog", linthresh=1e-8)
    ax.set_ylabel("Ω")
    ax.set_title(title or "weight importance Ω per variable (summaries)")
    ax.legend(fontsize="x-small", ncol=2)
    ax.grid(alpha=0.3)
    if path is not None:
        save_figure(figure, path)
    return figure


def sweep_plot(sweep: dict, path: str | os.PathLike | None = None) -> Figure:
    """ACC and BWT against λ for a λ sweep (the output of `sweep.lambda_sweep`).

    Args:
        sweep: a dict with `runs` (each with `ewc_lambda`, `acc`, `bwt`), `method` and `best`.
        path: where to write the PNG (optional).

    Returns:
        The Matplotlib figure.
    """
    runs = sorted(sweep["runs"], key=lambda r: r["ewc_lambda"])
    if not runs:
        raise ValueError("sweep_plot needs at least one run")
    lambdas = np.array([r["ewc_lambda"] for r in runs], dtype=float)

    def column(name):
        return np.array([np.nan if r.get(name) is None else r[name] for r in runs], dtype=float)

    figure = Figure(figsize=(7, 4))
    ax = figure.add_subplot()
    ax.plot(lambdas, column("acc"), marker="o", label="ACC")
    ax.plot(lambdas, column("bwt"), marker="s", label="BWT")
    positive = lambdas[lambdas > 0]
    if positive.size:
        if np.any(lambdas <= 0):
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        else:
            ax.set_xscale("log")
    best = sweep.get("best")
    if best and best.get("ewc_lambda") is not None:
        ax.axvline(best["ewc_lambda"], color="grey", linestyle="--", linewidth=1,
                   label=f"best λ = {best['ewc_lambda']:g}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("λ")
    ax.set_ylabel("value (validation data)")
    ax.set_title(f"λ sweep — {sweep.get('method', '')} on {sweep.get('benchmark', '')}")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    if path is not None:
        save_figure(figure, path)
    return figure
