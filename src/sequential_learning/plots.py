"""Figures of a run: task curves, the accuracy matrix, method comparisons, Ω, λ sweeps.

The figures live in `sequential_learning.report.plots`, beside the HTML report that shows them;
this module re-exports them so that `sl.plots.task_curves(results)` and
`from sequential_learning.plots import save_figure` keep working.

Example:
```python
import sequential_learning as sl
sl.plots.task_curves(results, "runs/mine/task_curves.png")
```
"""

from __future__ import annotations

from sequential_learning.report.plots import (
    COMPARISON_METRICS,
    accuracy_matrix,
    comparison,
    contrast_ratio,
    importance_histogram,
    metric_label,
    relative_luminance,
    save_figure,
    stream_curve,
    sweep_plot,
    task_curves,
    text_colour,
)

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
