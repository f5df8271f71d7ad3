"""Figures of a run: task curves, the accuracy matrix, method comparisons.

Figures are drawn with Matplotlib's object-oriented API on the Agg canvas (no `pyplot` state, no
window, never `plt.show()`) and written atomically as PNG. `sequential_learning.plots` re-exports
this module's public names (`sl.plots.task_curves`, ...).

Example:
```python
from sequential_learning.report import plots
plots.task_curves(results, "runs/mine/task_curves.png")
```
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sequential_learning.results import Results, atomic_write_bytes

__all__ = [
    "COMPARISON_METRICS",
    "accuracy_matrix",
    "comparison",
    "contrast_ratio",
    "importance_histogram",
    "metric_label",
    "relative_luminance",
    "save_figure",
    "stream_curve",
    "sweep_plot",
    "task_curves",
    "text_colour",
]

_METRIC_LABELS = {
    "accuracy": "validation accuracy",
    "loss": "validation loss",
    "mse": "validation MSE",
    "mean_squared_error": "validation MSE",
}


def metric_label(metric: str) -> str:
    """A human label for a metric name (`accuracy` -> `validation accuracy`).

    Args:
        metric: the metric's name in the results (`accuracy`, `task_accuracy`, `mse`, ...).

    Returns:
        The label for axes and tables.

    Example:
    ```python
    metric_label("accuracy")   # "validation accuracy"
    ```
    """
    return _METRIC_LABELS.get(metric, f"validation {metric.replace('_', ' ')}")


def relative_luminance(colour) -> float:
    """The WCAG 2 relative luminance of a colour (0 for black, 1 for white).

    Args:
        colour: anything Matplotlib reads as a colour (`"#1f77b4"`, `(r, g, b)` in 0..1, ...).

    Returns:
        0.2126 R + 0.7152 G + 0.0722 B of the linearised sRGB channels.

    Example:
    ```python
    relative_luminance("#fff"), relative_luminance("#000")   # (1.0, 0.0)
    ```
    """
    channels = np.asarray(to_rgb(colour), dtype=float)
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(np.dot([0.2126, 0.7152, 0.0722], linear))


def contrast_ratio(first, second) -> float:
    """The WCAG 2 contrast ratio of two colours, from 1 (same) to 21 (black on white).

    Args:
        first: a Matplotlib colour (`"#000"`, `"yellow"`, an RGB tuple).
        second: another.

    Returns:
        The ratio, a float in [1, 21] (the same whichever colour comes first).

    Example:
    ```python
    contrast_ratio("#000", "#fff")   # 21.0
    ```
    """
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def text_colour(background) -> str:
    """Black (`"#000"`) or white (`"#fff"`) text, whichever contrasts more with `background`.

    The better of the two always reaches a contrast ratio of at least 4.58 (WCAG AA asks 4.5).

    Args:
        background: a Matplotlib colour.

    Returns:
        `"#000"` or `"#fff"`.

    Example:
    ```python
    text_colour("yellow")    # '#000'
    text_colour("#440154")   # '#fff' (viridis' darkest colour)
    ```
    """
    return "#000" if contrast_ratio(background, "#000") >= contrast_ratio(background, "#fff") \
        else "#fff"


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Renders `figure` to PNG and writes it atomically. Returns the path.

    Args:
        figure: a Matplotlib figure (closed by the caller).
        path: the PNG file to write.

    Returns:
        The path written, as a `Path`.

    Example:
    ```python
    figure = matplotlib.figure.Figure()
    figure.add_subplot().plot([0.9, 0.8, 0.7])
    save_figure(figure, "runs/x/my_plot.png")
    ```
    """
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


def stream_curve(results: Results, path: str | os.PathLike | None = None) -> Figure:
    """An online run's curve: each task's metric against the training samples seen.

    One thin line per task, the mean over the tasks seen so far thick and black, the mean over
    all tasks dashed; dotted lines where each task's part of the stream ends (the accuracy
    matrix's rows) and, for a blurry stream, its blend windows shaded.

    Args:
        results: an online run's `Results` (with `stream_curve`).
        path: where to write the PNG (optional).

    Returns:
        The Matplotlib figure.

    Raises:
        ValueError: the results hold no stream curve (an offline run).

    Example:
    ```python
    stream_curve(results, "runs/online/stream_curve.png")
    ```
    """
    curve = results.stream_curve
    if not curve or not curve.get("samples"):
        raise ValueError("No stream curve in these results: only an online run (--online) has one")
    samples = np.asarray(curve["samples"], dtype=float)
    values = np.asarray([[np.nan if v is None else v for v in row] for row in curve["values"]],
                        dtype=float)
    figure = Figure(figsize=(8, 4.5))
    ax = figure.add_subplot()
    for start, stop in curve.get("windows", []):
        ax.axvspan(start, stop, color="grey", alpha=0.12, linewidth=0)
    for end in curve.get("task_ends", [])[:-1]:
        ax.axvline(end, color="grey", linestyle=":", linewidth=1)
    for j, name in enumerate(results.task_names):
        ax.plot(samples, values[:, j], linewidth=1, alpha=0.8, label=name)
    mean_seen = np.asarray([np.nan if v is None else v for v in curve["mean_seen"]], dtype=float)
    ax.plot(samples, mean_seen, color="black", linewidth=2.5, label="mean over tasks seen")
    ax.plot(samples, np.asarray(curve["mean_all"], dtype=float), color="black", linewidth=1.2,
            linestyle="--", label="mean over all tasks")
    ax.set_xlabel("training samples seen")
    metric = curve.get("metric", results.metric)
    lower = metric == results.metric and not results.higher_is_better
    ax.set_ylabel(metric_label(metric) + (" (lower is better)" if lower else ""))
    method = results.config.get("method", "")
    boundaries = curve.get("boundaries", "tasks")
    ax.set_title(f"{results.config.get('benchmark', 'task stream')} — {method}, online, "
                 f"boundaries {boundaries}")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    if path is not None:
        save_figure(figure, path)
    return figure


def accuracy_matrix(results: Results, path: str | os.PathLike | None = None) -> Figure:
    """The matrix R[i, j] (metric on task j after training task i) as an annotated heatmap.

    Each number is written in black or white, whichever contrasts more with its cell's colour.

    Args:
        results: a run's `Results`.
        path: where to write the PNG (optional).

    Returns:
        The Matplotlib figure.

    Example:
    ```python
    accuracy_matrix(results, "runs/mine/accuracy_matrix.png")
    ```
    """
    r = np.asarray(results.accuracy_matrix, dtype=float)
    t = r.shape[0]
    figure = Figure(figsize=(1.1 * t + 2.5, 1.0 * t + 1.5))
    ax = figure.add_subplot()
    cmap = "viridis" if results.higher_is_better else "viridis_r"
    finite = r[np.isfinite(r)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(r), cmap=cmap, norm=Normalize(low, high))
    for i in range(t):
        for j in range(t):
            if np.isfinite(r[i, j]):
                # Dark text on light cells, light text on dark ones: readable on every cell.
                ink = text_colour(image.cmap(image.norm(r[i, j])))
                ax.text(j, i, f"{r[i, j]:.2f}", ha="center", va="center", color=ink, fontsize=9)
    ax.set_xticks(range(t), [f"T{j + 1}" for j in range(t)])
    ax.set_yticks(range(t), [f"after T{i + 1}" for i in range(t)])
    ax.set_xlabel("evaluated on task")
    ax.set_title(f"{results.metric} matrix R[i, j]")
    figure.colorbar(image, ax=ax, label=metric_label(results.metric))
    if path is not None:
        save_figure(figure, path)
    return figure


# The metrics `comparison` draws, in order, with their panel titles and bar colours.
COMPARISON_METRICS = {
    "acc": ("ACC", "tab:blue"),
    "bwt": ("BWT", "tab:orange"),
    "fwt": ("FWT", "tab:green"),
    "forgetting": ("forgetting", "tab:red"),
    "task_il_acc": ("ACC (task-IL)", "tab:purple"),
}


def comparison(metrics_by_method: dict[str, dict[str, float]], path: str | os.PathLike | None = None,
               spread: dict[str, dict[str, float]] | None = None) -> Figure:
    """ACC, BWT, FWT and forgetting of each method: one panel per metric, side by side.

    The methods are rows of horizontal bars (their names written once, on the left, in the
    order given), each bar labelled with its value; the figure grows taller with the number of
    methods and keeps its width, so 3 methods or 18 stay readable at the same scale. `task_il_acc`
    gets a fifth panel when any method has it.

    Args:
        metrics_by_method: `{method: {"acc": ..., "bwt": ..., "fwt": ..., "forgetting": ...}}`
            (a missing or None value is drawn as "—").
        path: where to write the PNG (optional).
        spread: `{method: {metric: std}}` of a comparison over seeds: drawn as error bars of
            ± one standard deviation (the mean written beyond them).

    Returns:
        The Matplotlib figure.

    Raises:
        ValueError: no method is given.

    Example:
    ```python
    comparison({"none": {"acc": 0.61, "bwt": -0.35}, "fisher": {"acc": 0.83, "bwt": -0.08}},
               "runs/cmp/comparison.png")
    ```
    """
    methods = list(metrics_by_method)
    if not methods:
        raise ValueError("comparison needs at least one method")
    names = [n for n in COMPARISON_METRICS
             if not n.startswith("task_il") or any(n in (metrics_by_method[m] or {}) for m in methods)]
    longest = max(len(str(m)) for m in methods)
    label_width = min(3.0, 0.4 + 0.075 * longest)  # inches for the method names
    height = max(2.6, 1.2 + 0.3 * len(methods))
    figure = Figure(figsize=(label_width + 2.3 * len(names), height), layout="constrained")
    axes = figure.subplots(1, len(names), sharey=True, squeeze=False)[0]
    rows = np.arange(len(methods))
    for ax, name in zip(axes, names):
        title, colour = COMPARISON_METRICS[name]
        values = np.array([_finite((metrics_by_method[m] or {}).get(name)) for m in methods])
        errors = np.array([_finite(((spread or {}).get(m) or {}).get(name)) for m in methods])
        has_error = spread is not None and bool(np.isfinite(errors).any())
        errors = np.nan_to_num(errors)  # a value without a spread gets no bar
        ax.barh(rows, np.nan_to_num(values), height=0.7, color=colour,
                xerr=errors if has_error else None, ecolor="black", capsize=2)
        ax.axvline(0, color="black", linewidth=0.8)
        finite = np.isfinite(values)  # the axis spans every value ± its error bar
        known = np.concatenate([values[finite] - errors[finite], values[finite] + errors[finite]])
        low = min(0.0, float(known.min())) if known.size else 0.0
        high = max(0.0, float(known.max())) if known.size else 1.0
        span = (high - low) or 1.0
        pad = (0.6 if has_error else 0.45) * span  # room for the value written beside each bar
        ax.set_xlim(low - (pad if low < 0 else 0.04 * span), high + pad)
        for row, value, error in zip(rows, values, errors):
            if not np.isfinite(value):
                ax.annotate("—", (0, row), xytext=(3, 0), textcoords="offset points",
                            ha="left", va="center", fontsize=8, color="#555")
                continue
            shown = f"{value:.3f}"
            end = value + error * np.sign(value or 1)  # beyond the error bar
            ax.annotate(shown, (end, row), xytext=(3 if value >= 0 else -3, 0),
                        textcoords="offset points", ha="left" if value >= 0 else "right",
                        va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(rows, [str(m) for m in methods], fontsize=9)
    axes[0].set_ylim(len(methods) - 0.5, -0.5)  # the first method on top
    figure.suptitle("methods on the same task stream" + (
        " (mean ± std over seeds)" if spread is not None else ""), fontsize=11)
    if path is not None:
        save_figure(figure, path)
    return figure


def _finite(value) -> float:
    """A metric value as a float (NaN for None or anything that is not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


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

    Example:
    ```python
    sweep_plot(json.loads(Path("runs/sweep/sweep.json").read_text()), "runs/sweep/sweep.png")
    ```
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
