"""Ablation curves: every task's accuracy as a growing fraction of weights is replaced.

The orders `low` (least important first), `high` (most important first), `random` and
`magnitude` (smallest |θ| first, the classic pruning baseline) are compared; the table can be
printed (`ablation_text`), flattened (`ablation_rows`) or drawn (`ablation.plots.plot_ablation`).

Example:
```python
table = ablation_curve(tasks, models, load_importance("runs/x"), [0.1, 0.2, 0.5])
print(ablation_text(table))
```
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from sequential_learning import backend
from sequential_learning.ablation.aggregation import as_importance
from sequential_learning.ablation.options import ORDERS, Importance, check_options, parse_fractions
from sequential_learning.ablation.plots import plot_ablation
from sequential_learning.ablation.thresholding import (
    AblationPlan,
    assign_values,
    check_anchor,
    copy_model,
)


def _task_data(task: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(task, "x_val") and hasattr(task, "y_val"):  # benchmarks.TaskData
        return np.asarray(task.x_val), np.asarray(task.y_val)
    data = getattr(task, "validation_data", task)  # a SequentialTask, or (x, y)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    raise ValueError("each task must be (x, y) arrays, a TaskData or a SequentialTask with array "
                     f"validation data, got {type(task).__name__}")


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Top-1 accuracy of `model` on `(x, y)` (called with `training=False`).

    Args:
        model: a classifier.
        x: the inputs.
        y: integer labels.
        batch_size: samples per forward pass.

    Returns:
        The accuracy, a float in [0, 1].

    Example:
    ```python
    accuracy(task_model, x_val, y_val)   # 0.97
    ```
    """
    y = np.asarray(y).reshape(-1)
    correct = 0
    with backend.ops().no_grad():  # PyTorch: no autograd graph for an evaluation
        for i in range(0, len(x), batch_size):
            out = keras.ops.convert_to_numpy(model(np.asarray(x[i:i + batch_size], np.float32),
                                                   training=False))
            correct += int(np.sum(np.argmax(out, axis=-1) == y[i:i + batch_size]))
    return correct / max(len(x), 1)


def ablation_curve(
    tasks: Sequence[Any],
    model_for_task: Sequence[keras.Model] | Callable[[int], keras.Model] | keras.Model,
    importance: Importance,
    fractions: Sequence[float],
    orders: Sequence[str] = ORDERS,
    level: str = "weight",
    scope: str = "model",
    action: str = "zero",
    how: str = "mean",
    anchor: Any = None,
    seed: int = 0,
    path: str | Path | None = None,
    json_path: str | Path | None = None,
    task_names: Sequence[str] | None = None,
) -> dict:
    """Every task's accuracy after replacing a growing fraction of weights, for several orders.

    For each task, a copy of its model is ablated (the given models are left untouched); the
    items are ranked once per order, so a larger fraction replaces a superset of a smaller one.
    Fraction 0 (the unablated model) is always included.

    Args:
        tasks: one per task: `(x_val, y_val)`, a `TaskData` or a `SequentialTask`.
        model_for_task: the task models (a list), a callable `k -> model` (0-based), or one model
            for every task.
        importance: Ω, as for `threshold_model`.
        fractions: fractions in [0, 1].
        orders: any of `ORDERS`.
        level, scope, action, how, anchor, seed: as for `threshold_model`.
        path: write the figure there (one panel per task, one line per order).
        json_path: write the table there as JSON.
        task_names: names for the panels (default `task 1`, ...).

    Returns:
        The table: `{"fractions", "orders", "task_names", "baseline": [acc per task],
        "accuracy": {order: [[acc per task] per fraction]}, "replaced": {order: [items replaced
        per fraction]}, "items": total items, "settings": {...}}`.

    Example:
    ```python
    >>> table = ablation_curve(stream.tasks, models, load_importance(run), [0.1, 0.2])
    >>> table["accuracy"]["low"][1]    # every task's accuracy with 20% lowest-Ω weights zeroed
    ```
    """
    fractions = [0.0] + [f for f in parse_fractions(list(fractions)) if f > 0]
    orders = list(orders)
    if not orders:
        raise ValueError("orders: give at least one of " + ", ".join(ORDERS))
    for order in orders:
        check_options(level, scope, order, action, how)
    data = [_task_data(t) for t in tasks]
    if not data:
        raise ValueError("ablation_curve needs at least one task")
    if isinstance(model_for_task, keras.Model):
        models = [model_for_task] * len(data)
    elif callable(model_for_task):
        models = [model_for_task(k) for k in range(len(data))]
    else:
        models = list(model_for_task)
    if len(models) != len(data):
        raise ValueError(f"{len(data)} tasks but {len(models)} task models")
    omega = as_importance(importance)
    accuracy_table = {o: [[0.0] * len(data) for _ in fractions] for o in orders}
    replaced = {o: [0] * len(fractions) for o in orders}
    baseline, items, untouched = [], 0, set()
    for k, (model, (x, y)) in enumerate(zip(models, data)):
        work = copy_model(model, f"{model.name}_ablation")
        untouched |= {v.path for v in model.weights} - set(omega)
        baseline.append(accuracy(work, x, y))
        for order in orders:
            plan = AblationPlan(model, omega, level, scope, order, how, seed)
            anchor_values = check_anchor(action, anchor, plan)
            items = plan.items
            for i, fraction in enumerate(fractions):
                if fraction == 0.0:
                    accuracy_table[order][i][k] = baseline[k]
                    continue
                values, count = plan.values(fraction, action, anchor_values)
                assign_values(work, values)
                accuracy_table[order][i][k] = accuracy(work, x, y)
                replaced[order][i] = count
    table = {
        "fractions": fractions,
        "orders": orders,
        "task_names": list(task_names) if task_names else [f"task {k + 1}" for k in range(len(data))],
        "baseline": baseline,
        "accuracy": accuracy_table,
        "replaced": replaced,
        "items": items,
        "settings": {"level": level, "scope": scope, "action": action, "how": how, "seed": seed,
                     "covered": sorted(omega), "untouched": sorted(untouched)},
    }
    if json_path is not None:
        from sequential_learning.results import atomic_write_text

        atomic_write_text(json_path, json.dumps(table, indent=1))
    if path is not None:
        plot_ablation(table, path)
    return table


def ablation_drops(table: dict, fraction: float, tasks: Sequence[int] | None = None) -> dict[str, float]:
    """Mean accuracy drop (baseline − ablated) over `tasks` (0-based; default all) per order.

    Args:
        table: an `ablation_curve` table.
        fraction: one of the table's fractions.
        tasks: the tasks to average over (0-based), or None for all.

    Returns:
        `{order: mean drop}`.

    Example:
    ```python
    ablation_drops(table, 0.2)   # {"low": 0.01, "high": 0.35, "random": 0.08}
    ```
    """
    if fraction not in table["fractions"]:
        raise ValueError(f"fraction {fraction} is not in the table ({table['fractions']})")
    i = table["fractions"].index(fraction)
    chosen = list(range(len(table["baseline"]))) if tasks is None else list(tasks)
    base = np.asarray(table["baseline"])[chosen]
    return {o: float(np.mean(base - np.asarray(table["accuracy"][o][i])[chosen]))
            for o in table["orders"]}


def ablation_rows(table: dict) -> list[dict]:
    """The table as flat rows: order, fraction, task, accuracy, drop.

    Args:
        table: an `ablation_curve` table.

    Returns:
        A list of dicts, one per (order, fraction, task), e.g. for a CSV file.

    Example:
    ```python
    rows = ablation_rows(table)
    csv.DictWriter(handle, rows[0].keys()).writerows(rows)
    ```
    """
    rows = []
    for order in table["orders"]:
        for i, fraction in enumerate(table["fractions"]):
            for k, name in enumerate(table["task_names"]):
                acc = table["accuracy"][order][i][k]
                rows.append({"order": order, "fraction": fraction, "task": name, "accuracy": acc,
                             "drop": table["baseline"][k] - acc})
    return rows


def ablation_text(table: dict) -> str:
    """A plain-text table: one row per (order, fraction), one column per task, then the mean.

    Args:
        table: an `ablation_curve` table.

    Returns:
        The table as one string.

    Example:
    ```python
    print(ablation_text(table))
    ```
    """
    names = [f"T{k + 1}" for k in range(len(table["task_names"]))]
    header = f"{'order':<10} {'fraction':>8} " + " ".join(f"{n:>6}" for n in names) + f" {'mean':>6}"
    lines = [header, "-" * len(header)]
    base = table["baseline"]
    lines.append(f"{'none':<10} {0:>8.2f} " + " ".join(f"{a:6.3f}" for a in base)
                 + f" {np.mean(base):6.3f}")
    for order in table["orders"]:
        for i, fraction in enumerate(table["fractions"]):
            if fraction == 0.0:
                continue
            accs = table["accuracy"][order][i]
            lines.append(f"{order:<10} {fraction:>8.2f} " + " ".join(f"{a:6.3f}" for a in accs)
                         + f" {np.mean(accs):6.3f}")
    return "\n".join(lines)
