"""Explanation drift: how much a task's explanations change while later tasks are learned.

For each task, the Grad-CAM and occlusion maps of its validation images by its model right after
the task are compared (Spearman rank correlation) with the maps after every later task, from the
run's checkpoints. `drift_runs` is the work behind `seql drift RUN_DIR...`.

Example:
```python
table = explanation_drift(["runs/none", "runs/fisher"], images=16, path="drift.png")
print(drift_text(table))
```
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from scipy import stats

from sequential_learning.interpret.checkpoints import read_samples, weights_after_task
from sequential_learning.interpret.plots import plot_drift
from sequential_learning.rundir import RunDir

DRIFT_METHODS: tuple[str, ...] = ("grad-cam", "occlusion")


def rankdata(values: Any) -> np.ndarray:
    """Ranks 1..n of a flattened array, ties given their average rank.

    `scipy.stats.rankdata` (method `"average"`) of the flattened array.

    Args:
        values: an array of any shape (flattened).

    Returns:
        The ranks, float64, shape `(values.size,)`.

    Example:
    ```python
    >>> rankdata([10, 20, 20, 5])
    array([2. , 3.5, 3.5, 1. ])
    ```
    """
    return stats.rankdata(np.ravel(np.asarray(values)), method="average").astype(np.float64)


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two arrays (flattened); NaN when either is constant.

    The Pearson correlation of the centred ranks (`rankdata`). `scipy.stats.spearmanr` gives the
    same value to within a rounding step (about 1e-16) but not bit for bit, and warns on a
    constant map; this keeps the drift tables' numbers as they were.

    Args:
        a: an array (e.g. one saliency map).
        b: an array of the same size.

    Returns:
        ρ in [-1, 1], or NaN when either array is constant (it has no ranking).

    Raises:
        ValueError: the arrays differ in size.

    Example:
    ```python
    >>> spearman([1, 2, 3, 4], [10, 20, 30, 400])
    1.0
    ```
    """
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"spearman needs arrays of the same size, got {a.size} and {b.size}")
    ra, rb = rankdata(a) - (a.size + 1) / 2, rankdata(b) - (b.size + 1) / 2
    denominator = math.sqrt(float(np.sum(ra * ra)) * float(np.sum(rb * rb)))
    return float(np.sum(ra * rb) / denominator) if denominator > 0 else math.nan



def _fit_input(model: keras.Model, x: np.ndarray) -> np.ndarray:
    shape = tuple(model.input_shape[1:])
    if None not in shape and x.shape[1:] != shape and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        return x.reshape((len(x), *shape))
    return x


def _explain(model, x, y, method: str, layer) -> np.ndarray:
    from sequential_learning.interpret.gradcam import grad_cam
    from sequential_learning.interpret.occlusion import occlusion_sensitivity

    if method == "grad-cam":
        return grad_cam(model, x, y, layer=layer)
    side = min(x.shape[1:3])
    patch = max(1, side // 7)
    return occlusion_sensitivity(model, x, y, patch_size=patch, stride=max(1, patch // 2),
                                 baseline=0.0)


def _run_label(run_dir: Path) -> str:
    from sequential_learning.results import Results

    try:
        config = Results.load(run_dir).config
    except Exception:  # noqa: BLE001 - a label is a nicety; the folder name will do
        return run_dir.name
    return str(config.get("method", run_dir.name))


def explanation_drift(
    runs: str | Path | Sequence[str | Path],
    methods: Sequence[str] = DRIFT_METHODS,
    images: int = 16,
    layer: str | None = None,
    labels: Sequence[str] | None = None,
    path: str | Path | None = None,
    json_path: str | Path | None = None,
) -> dict:
    """How much each task's explanations change while later tasks are learned.

    For each run and each task k, the first `images` of `samples/task_k.npz` are explained (for
    their labels) by task k's model as it was right after task k and after every later task j
    (from the run's checkpoints); the similarity at j is the mean over images of the Spearman
    rank correlation between the map at j and the map right after k (1 at j = k).

    Args:
        runs: one run directory, or several (e.g. `none` and `fisher` on the same stream).
        methods: any of `DRIFT_METHODS` (`grad-cam` at the last convolutional layer, or
            `layer`; `occlusion` with square patches of about a seventh of the image side).
            Grad-CAM is skipped, with a note, for models without convolutions.
        images: images per task.
        layer: Grad-CAM's layer (default: the last convolutional layer).
        labels: a label per run (default: the run's method; the folder name when two agree).
        path: write `drift.png` there: similarity against the tasks learned since, one line per
            run and method, and task 1's similarity after each task.
        json_path: write the table there as JSON.

    Returns:
        `{"rows": [{"run", "method", "task", "after_task", "similarity", "valid_images",
        "accuracy"}], "by_distance": {run: {method: [mean similarity d tasks later]}},
        "notes": [...]}`.

    Example:
    ```python
    table = explanation_drift(["runs/none", "runs/fisher"], ["grad-cam"], images=8)
    print(drift_text(table))
    ```
    """
    from sequential_learning.checkpoint import load_task_models
    from sequential_learning.results import Results

    run_dirs = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]
    if not run_dirs:
        raise ValueError("explanation_drift needs at least one run directory")
    methods = list(methods)
    if not methods:
        raise ValueError("methods: give at least one of " + ", ".join(DRIFT_METHODS))
    for m in methods:
        if not isinstance(m, str) or m not in DRIFT_METHODS:
            raise ValueError(f"Unknown explanation method {m!r}; expected one of: "
                             f"{', '.join(DRIFT_METHODS)}")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be an integer >= 1, got {images!r}")
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise ValueError(f"Run directory {run_dir} does not exist")
    names = list(labels) if labels else [_run_label(r) for r in run_dirs]
    if len(names) != len(run_dirs):
        raise ValueError(f"{len(run_dirs)} runs but {len(names)} labels")
    if len(set(names)) < len(names):
        names = [f"{n} ({r.name})" for n, r in zip(names, run_dirs)]
    if len(set(names)) < len(names):
        names = [f"{n} [{i + 1}]" for i, n in enumerate(names)]
    rows, notes, by_distance = [], [], {}
    for run_dir, name in zip(run_dirs, names):
        from sequential_learning.interpret.layers import conv_layer_paths

        models = load_task_models(run_dir)
        try:
            matrix = Results.load(run_dir).accuracy_matrix
        except Exception:  # noqa: BLE001 - accuracy is context only
            matrix = None
        count = len(models)
        run_methods = list(methods)
        if "grad-cam" in run_methods and not conv_layer_paths(models[0]):
            run_methods.remove("grad-cam")
            notes.append(f"{name}: no convolutional layer, Grad-CAM skipped")
        if not run_methods:
            raise ValueError(f"{run_dir}: none of {methods} applies to its models (Grad-CAM needs a "
                             "convolutional layer; add occlusion)")
        samples = {k: read_samples(run_dir, k, images) for k in range(1, count + 1)}
        samples = {k: (_fit_input(models[k - 1], x), y) for k, (x, y) in samples.items()}
        maps: dict[tuple, np.ndarray] = {}
        for j in range(1, count + 1):
            weights_after_task(run_dir, j, models)
            for k in range(1, j + 1):
                x, y = samples[k]
                for m in run_methods:
                    maps[m, k, j] = _explain(models[k - 1], x, y, m, layer)
        by_distance[name] = {}
        for m in run_methods:
            per_distance: list[list[float]] = [[] for _ in range(count)]
            for k in range(1, count + 1):
                for j in range(k, count + 1):
                    values = [spearman(a, b) for a, b in zip(maps[m, k, k], maps[m, k, j])]
                    valid = [v for v in values if not math.isnan(v)]
                    similarity = float(np.mean(valid)) if valid else math.nan
                    acc = None if matrix is None else float(matrix[j - 1, k - 1])
                    rows.append({"run": name, "method": m, "task": k, "after_task": j,
                                 "similarity": similarity, "valid_images": len(valid),
                                 "accuracy": acc})
                    if not math.isnan(similarity):
                        per_distance[j - k].append(similarity)
            by_distance[name][m] = [float(np.mean(v)) if v else math.nan for v in per_distance]
    table = {"rows": rows, "by_distance": by_distance, "notes": notes,
             "settings": {"methods": methods, "images": images, "layer": layer,
                          "runs": [str(r) for r in run_dirs]}}
    if json_path is not None:
        from sequential_learning.results import atomic_write_text, to_jsonable

        atomic_write_text(json_path, json.dumps(to_jsonable(table), indent=1))
    if path is not None:
        plot_drift(table, path)
    return table


def drift_text(table: dict) -> str:
    """Mean similarity to the maps right after each task, by tasks learned since.

    Args:
        table: an `explanation_drift` table.

    Returns:
        A plain-text table as one string.

    Example:
    ```python
    print(drift_text(explanation_drift("runs/x", ["grad-cam"])))
    ```
    """
    width = max(len(v) for r in table["by_distance"].values() for v in r.values())
    header = f"{'run':<20} {'method':<10} " + " ".join(f"{'+' + str(d):>6}" for d in range(width))
    lines = [header, "-" * len(header)]
    for run, per_method in table["by_distance"].items():
        for m, values in per_method.items():
            lines.append(f"{run[:20]:<20} {m:<10} " + " ".join(f"{v:6.3f}" for v in values))
    return "\n".join(lines)



def drift_runs(
    run_dirs: Sequence[str | Path],
    methods: Sequence[str] | str = DRIFT_METHODS,
    images: int = 16,
    layer: str | None = None,
    out: str | Path | None = None,
) -> dict:
    """`seql drift`: `explanation_drift` of one or more runs; `drift.png`, `drift.json` written to
    `out` (default: the first run's `augment/` folder).

    Args:
        run_dirs: the run folders.
        methods: any of `DRIFT_METHODS` (`grad-cam`, `occlusion`), a list or
            comma-separated.
        images: validation images per task.
        layer: the convolutional layer to explain; None: the last one.
        out: the folder to write to.

    Returns:
        `{"table": the drift table, "paths": files written}`.

    Example:
    ```python
    done = drift_runs(["runs/none", "runs/fisher"], methods="grad-cam", images=8)
    ```
    """
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not run_dirs:
        raise ValueError("drift: give at least one run directory")
    out = Path(out) if out is not None else RunDir(run_dirs[0]).augment_dir
    paths = [out / "drift.png", out / "drift.json"]
    table = explanation_drift(run_dirs, methods, images, layer, path=paths[0], json_path=paths[1])
    return {"table": table, "paths": paths}
