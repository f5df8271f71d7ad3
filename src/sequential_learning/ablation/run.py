"""`seql augment RUN_DIR`: ablation curves and importance maps of a saved run.

The run's Ω (`checkpoint.load_importance`), its task models, and each task's validation data
(the rebuilt benchmark, or the run's saved samples: `evaluation_tasks`); the anchor θ* for
`action="anchor"` (`folded_anchor`). Files go to `RUN_DIR/augment/`.

Example:
```python
done = augment_run("runs/x", "0.1,0.2", level="filter")
done["paths"]        # ablation_zero_filter_f0.1-0.2.png, .json, .csv, importance maps
```
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from sequential_learning.ablation.aggregation import as_importance, is_plain_conv
from sequential_learning.ablation.curves import ablation_curve, ablation_rows
from sequential_learning.ablation.maps import importance_maps
from sequential_learning.ablation.options import (
    ORDERS,
    check_choice,
    check_options,
    parse_fractions,
)
from sequential_learning.ablation.plots import plot_ablation
from sequential_learning.ablation.settings import augment_settings_label, augment_settings_suffix
from sequential_learning.interpret.checkpoints import read_samples, weights_after_task
from sequential_learning.rundir import RunDir


def _run_config(run_dir: Path) -> dict:
    """The config in the run's `results.json`, or a one-line `SeqlError` naming the file."""
    from sequential_learning.errors import SeqlError

    path = RunDir(run_dir).results
    if not path.is_file():
        raise SeqlError(f"{path} is missing; the benchmark is rebuilt from the config it holds")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SeqlError(f"{path} cannot be read ({reason}); expected the JSON a run writes"
                        ) from None
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise SeqlError(f"{path} holds no 'config' object; expected the JSON a run writes")
    if "benchmark" not in config:
        raise SeqlError(f"the config in {path} names no benchmark")
    return config


def _benchmark_tasks(run_dir: Path, count: int) -> tuple[list, str]:
    """Every validation image of the run's benchmark, rebuilt from its config."""
    from sequential_learning.data.benchmarks import make_benchmark
    from sequential_learning.errors import SeqlError

    c = _run_config(run_dir)
    try:
        stream = make_benchmark(
            c["benchmark"], c.get("scenario"), c.get("seed", 0), c.get("num_tasks") or 5,
            c.get("classes_per_task", 2), data=c.get("data"), data_dir=c.get("data_dir"),
            limit=c.get("limit"), class_order=c.get("class_order"), angles=c.get("angles"))
    except (ValueError, TypeError, KeyError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SeqlError(f"benchmark {c['benchmark']!r} of {RunDir(run_dir).results} cannot be "
                        f"rebuilt: {reason}") from None
    if len(stream) != count:
        raise SeqlError(f"the rebuilt benchmark has {len(stream)} tasks, the run {count}")
    sizes = [len(t.x_val) for t in stream]
    return ([(t.x_val, t.y_val) for t in stream],
            f"benchmark {c['benchmark']} validation data ({sum(sizes)} images)")


def _evaluation_tasks(run_dir: Path, count: int, data: str) -> tuple[list, str, str, str | None]:
    """`(tasks, what was used, "benchmark" or "samples", why auto fell back or None)`."""
    from sequential_learning.errors import SeqlError

    check_choice(data, ("auto", "benchmark", "samples"), "data")
    note = None
    if data != "samples":
        try:
            tasks, what = _benchmark_tasks(run_dir, count)
            return tasks, what, "benchmark", None
        except SeqlError as error:
            if data == "benchmark":
                raise SeqlError(f"--data benchmark: {error}; use --data samples to evaluate on "
                                "the run's saved samples") from None
            note = f"--data auto used the saved samples: {error}"
    try:
        tasks = [read_samples(run_dir, k, None) for k in range(1, count + 1)]
    except SeqlError as error:
        if note is None:
            raise
        raise SeqlError(f"{error}; and {note.split(': ', 1)[1]}") from None
    what = f"the run's saved samples ({sum(len(x) for x, _ in tasks)} images, samples/)"
    if note is not None:
        what += f", because {note.split(': ', 1)[1]}"
    return tasks, what, "samples", note


def evaluation_tasks(run_dir: str | Path, count: int, data: str = "auto") -> tuple[list, str]:
    """Each task's validation data for a run: the whole validation sets, or the saved samples.

    Args:
        run_dir: the run directory.
        count: the number of task models.
        data: `"benchmark"` (rebuild the run's benchmark from the config in its
            `results.json`: every validation image), `"samples"` (`samples/task_K.npz`, 64 images
            per task) or `"auto"` (the benchmark when it can be rebuilt, else the samples — and
            then what was used says why, naming the file and the error).

    Returns:
        `([(x, y) per task], what was used)`.

    Raises:
        SeqlError: with `data="benchmark"`, a `results.json` that is missing, corrupted or names
            no benchmark, or a benchmark that cannot be rebuilt (one line naming the file and
            the error); with any `data`, missing samples when they are needed.

    Example:
    ```python
    >>> tasks, what = evaluation_tasks("runs/x", 5)
    >>> what
    'benchmark split-digits validation data (360 images)'
    ```
    """
    tasks, what, _, _ = _evaluation_tasks(Path(run_dir), count, data)
    return tasks, what


def folded_anchor(run_dir: str | Path, models: Sequence[keras.Model], task: int | None) -> dict:
    """θ* for `action="anchor"`: the weights right after `task`, or for Ω summed over tasks the
    Ω-weighted mean of every task's anchor (what the folded penalty pulls towards).

    Args:
        run_dir: the run folder (its checkpoints hold each task's weights and Ω).
        models: the run's task models (their variables' paths).
        task: the task (1-based) whose anchor to take, or None for the folded anchor.

    Returns:
        `{variable path: array}`.

    Example:
    ```python
    anchor = folded_anchor("runs/x", load_task_models("runs/x"), task=None)
    ```
    """
    from sequential_learning.checkpoint import load_importance

    saved = [[np.asarray(keras.ops.convert_to_numpy(v)) for v in m.weights] for m in models]
    current = {v.path: value for v, value in zip(models[0].weights, saved[0])}

    def after(k):
        weights_after_task(run_dir, k, models)
        return {v.path: np.asarray(keras.ops.convert_to_numpy(v)) for v in models[0].weights}

    try:
        if task is not None:
            return after(task)
        total: dict = {}
        weighted: dict = {}
        for k in range(1, len(models) + 1):
            paths, omega = load_importance(run_dir, task=k)
            anchor = after(k)
            for p, o in zip(paths, omega):
                total[p] = total.get(p, 0.0) + o
                weighted[p] = weighted.get(p, 0.0) + o * anchor[p]
        out = dict(current)
        for p, t in total.items():
            out[p] = np.where(t > 0, weighted[p] / np.where(t > 0, t, 1.0), current[p])
        return out
    finally:
        for model, values in zip(models, saved):  # back to the weights they had
            model.set_weights(values)



def augment_run(
    run_dir: str | Path,
    fractions: Sequence[float] | str = (0.1, 0.2, 0.5),
    level: str = "weight",
    action: str = "zero",
    scope: str = "model",
    orders: Sequence[str] | str = ORDERS,
    how: str = "mean",
    importance_task: int | None = None,
    after_task: int | None = None,
    data: str = "auto",
    seed: int = 0,
    maps: bool = True,
    out: str | Path | None = None,
) -> dict:
    """`seql augment`: ablation curves (and importance maps) of a run; files in `RUN_DIR/augment/`.

    Args:
        run_dir: a run directory with saved importance (any method but `none`).
        fractions: fractions in [0, 1] (a list, or `"0.1,0.2,0.5"`).
        level, action, scope, how: as for `threshold_model`.
        orders: a list, or comma-separated.
        importance_task: use task K's Ω (1-based); None sums every task's Ω.
        after_task: ablate the task models as they were right after task K; None: the final ones.
        data: `"auto"`, `"benchmark"` or `"samples"` (see `evaluation_tasks`).
        seed: seeds the random order, ties and noise.
        maps: also draw `importance_maps` for each convolutional layer Ω covers.
        out: the output folder (default `RUN_DIR/augment`).

    Files are named by every setting that changes them, so runs with other settings never replace
    each other and the same settings twice overwrite the same files: `ablation_zero_weight.*`
    for the defaults, with a suffix naming what differs (`augment_settings_suffix`), e.g.
    `ablation_zero_filter_omega-task2_samples.json`; `importance_maps_<layer>[suffix].png` by
    the settings the maps depend on (how, importance task, after task, seed). The JSON table
    holds `name`, `augment_settings` and a readable `label` of them.

    Returns:
        `{"table": the ablation table, "paths": files written, "evaluated_on": str, "notes":
        [why --data auto used the saved samples, when it did]}`.

    Raises:
        SeqlError: bad options; with `data="benchmark"`, a corrupted or missing `results.json`
            or a benchmark that cannot be rebuilt (naming the file and the error).

    Example:
    ```python
    >>> done = augment_run("runs/x", "0.2", level="filter", importance_task=2)
    >>> done["paths"][1].name
    'ablation_zero_filter_f0.2_omega-task2.json'
    ```
    """
    from sequential_learning.checkpoint import load_importance, load_task_models
    from sequential_learning.results import atomic_write_text

    fractions = parse_fractions(fractions)
    if isinstance(orders, str):
        orders = [o.strip() for o in orders.split(",") if o.strip()]
    for order in orders or [None]:
        check_options(level, scope, order, action, how)
    for name, value in (("importance task", importance_task), ("after task", after_task)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a task number >= 1, got {value!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"Run directory {run_dir} does not exist")
    importance = load_importance(run_dir, task=importance_task)
    models = load_task_models(run_dir, after_task=after_task)
    anchor = folded_anchor(run_dir, models, importance_task) if action == "anchor" else None
    tasks, evaluated_on, source, note = _evaluation_tasks(run_dir, len(models), data)
    out = Path(out) if out is not None else RunDir(run_dir).augment_dir
    settings = {"fractions": [f for f in fractions if f > 0], "level": level, "action": action, "scope": scope,
                "orders": list(orders), "how": how, "importance_task": importance_task,
                "after_task": after_task, "data": source, "seed": int(seed)}
    stem = f"ablation_{action}_{level}" + augment_settings_suffix(settings)
    table = ablation_curve(tasks, models, importance, fractions, orders, level, scope, action,
                           how, anchor, seed)
    table["evaluated_on"] = evaluated_on
    table["importance"] = "summed over tasks" if importance_task is None else f"task {importance_task}"
    table["models"] = "final" if after_task is None else f"after task {after_task}"
    table["name"] = stem
    table["augment_settings"] = {**settings, "data_requested": data}
    table["label"] = augment_settings_label(settings)
    notes = [] if note is None else [note]
    table["notes"] = notes
    paths = [out / f"{stem}.png", out / f"{stem}.json", out / f"{stem}.csv"]
    plot_ablation(table, paths[0])
    atomic_write_text(paths[1], json.dumps(table, indent=1))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["order", "fraction", "task", "accuracy", "drop"])
    writer.writeheader()
    writer.writerows(ablation_rows(table))
    atomic_write_text(paths[2], buffer.getvalue())
    if maps:
        from sequential_learning.interpret.layers import conv_layer_paths, find_layer

        covered = set(as_importance(importance))
        # The maps depend on Ω, the models, the reduction and the seed only.
        maps_suffix = augment_settings_suffix(settings, ("how", "importance_task", "after_task",
                                                         "seed"))
        for layer_path in conv_layer_paths(models[0]):
            found = find_layer(models[0], layer_path)
            if is_plain_conv(found) and found.kernel.path in covered:
                target = out / f"importance_maps_{found.name}{maps_suffix}.png"
                importance_maps(models[0], importance, found, how=how, seed=seed, path=target)
                paths.append(target)
    return {"table": table, "paths": paths, "evaluated_on": evaluated_on, "notes": notes}
