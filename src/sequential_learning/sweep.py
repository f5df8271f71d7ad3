"""The λ search: the same stream, seed and initialisation for every λ; the best ACC wins.

λ does not transfer between methods (nor between Fisher modes): each method's Ω has its own
scale. `lambda_sweep` runs one experiment per λ and picks the λ with the best ACC on the tasks'
validation data (the data every task is evaluated on after each epoch); ties go to the smaller λ.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sequential_learning.config import RunConfig, importance_method, run_experiment
from sequential_learning.importance import EWCMethod
from sequential_learning.results import atomic_write_text, to_jsonable
from sequential_learning.rundir import RunDir


def log_spaced(low: float, high: float, points: int) -> list[float]:
    """`points` values from `low` to `high`, evenly spaced on a log scale (rounded to 4 digits).

    Args:
        low: the smallest λ (> 0).
        high: the largest λ (≥ `low`).
        points: how many values (≥ 1; 1 needs `low == high`).

    Returns:
        The values, ascending, as a list of floats.

    Raises:
        ValueError: unless 0 < low <= high and points >= 1 (points == 1 needs low == high).

    Example:
    ```python
    log_spaced(1, 1000, 4)   # [1.0, 10.0, 100.0, 1000.0]
    ```
    """
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high < low:
        raise ValueError(f"lambda range: need 0 < LOW <= HIGH, got LOW={low}, HIGH={high}")
    if int(points) != points or points < 1:
        raise ValueError(f"points: need an integer >= 1, got {points}")
    if points == 1:
        if low != high:
            raise ValueError("points: 1 point needs LOW == HIGH; use 2 or more for a range")
        return [float(low)]
    return [float(f"{v:.4g}") for v in np.geomspace(low, high, int(points))]


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    """Validates and sorts λ values (finite, ≥ 0, no duplicates).

    Args:
        lambdas: the λ values of a sweep, e.g. from `--lambdas 1,10,100`.

    Returns:
        The values as floats, in ascending order.

    Raises:
        ValueError: for an empty list, a negative or non-finite value, or a duplicate.

    Example:
    ```python
    check_lambdas([100, 1, 10])   # [1.0, 10.0, 100.0]
    ```
    """
    try:
        values = [float(v) for v in lambdas]
    except (TypeError, ValueError):
        raise ValueError(f"lambdas: expected numbers, got {lambdas!r}") from None
    if not values:
        raise ValueError("lambdas: the sweep needs at least one lambda value")
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f"lambdas: every value must be a finite number >= 0, got {bad}")
    if len(set(values)) != len(values):
        raise ValueError(f"lambdas: duplicate values in {values}")
    return sorted(values)


def lambda_sweep(
    config: RunConfig,
    lambdas: Sequence[float],
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Runs `config` once per λ and picks the λ with the best ACC on validation data.

    Args:
        config: the run's settings (its `ewc_lambda` is ignored).
        lambdas: the λ values (≥ 0, at least one).
        out_dir: where to write `sweep.json`, `sweep.png` and one run folder per λ
            (`lambda_<value>/`); None writes nothing.
        progress: show a progress line per run.

    Returns:
        `{"method", "benchmark", "selection", "lambdas", "runs": [{ewc_lambda, acc, bwt, fwt,
        forgetting, seconds, diverged}], "best": {...}, "config": {...}}`.

    Raises:
        ValueError: for no λ values, a negative or non-finite λ, or method `none` (no penalty).

    Example:
    ```python
    sweep = lambda_sweep(RunConfig(method="fisher"), [1, 10, 100, 1000], "runs/sweep")
    sweep["best"]["ewc_lambda"]
    ```
    """
    from sequential_learning import plots
    from sequential_learning.manager import TrainingDivergedError

    values = check_lambdas(lambdas)
    config = dataclasses.replace(config, ewc_lambda=values[0]).validate()
    if importance_method(config._method_names()) is EWCMethod.NONE:
        raise ValueError(f"method {config.method} applies no penalty: there is no lambda to "
                         "sweep (sweep a weight-importance method, e.g. fisher or fisher+replay)")
    out = Path(out_dir) if out_dir is not None else None
    runs = []
    for lam in values:
        run_config = dataclasses.replace(config, ewc_lambda=lam).validate()
        run_dir = RunDir(out).sweep_run(lam).root if out is not None else None
        start = time.perf_counter()
        label = f"[{config.method} lambda={lam:g}]" if progress else False
        try:
            metrics = dict(run_experiment(run_config, run_dir, progress=label).metrics)
            diverged = False
        except TrainingDivergedError:
            metrics = {"acc": None, "bwt": None, "fwt": None, "forgetting": None}
            diverged = True
        if progress:
            import sys

            sys.stderr.write("\n")
        runs.append({"ewc_lambda": lam, **metrics, "diverged": diverged,
                     "seconds": time.perf_counter() - start})
    usable = [r for r in runs if r["acc"] is not None and math.isfinite(r["acc"])]
    best = max(usable, key=lambda r: (r["acc"], -r["ewc_lambda"])) if usable else None
    sweep = {
        "method": config.method,
        "benchmark": config.benchmark,
        "selection": "best ACC on the tasks' validation data; ties go to the smaller lambda",
        "lambdas": values,
        "runs": runs,
        "best": best,
        "config": {k: v for k, v in config.to_dict().items() if k != "ewc_lambda"},
    }
    if out is not None:
        atomic_write_text(RunDir(out).sweep_json, json.dumps(to_jsonable(sweep), indent=2))
        plots.sweep_plot(sweep, RunDir(out).sweep_png)
    return sweep


def sweep_table(sweep: dict) -> str:
    """The sweep as a text table, the best λ marked with `*`.

    Args:
        sweep: the sweep's summary as written to `sweep.json`: `method`, `benchmark`, `runs`
            (each with `ewc_lambda`, `acc`, `bwt`, `fwt`, `forgetting`, `seconds`) and `best`.

    Returns:
        The table as one string, a row per λ.

    Example:
    ```python
    print(sweep_table(json.loads(Path("runs/sweep/sweep.json").read_text())))
    ```
    """
    header = f"  {'lambda':>10} {'ACC':>7} {'BWT':>7} {'FWT':>7} {'forget':>7} {'seconds':>8}"
    lines = [f"{sweep['method']} on {sweep['benchmark']}", header, "  " + "-" * (len(header) - 2)]
    best = (sweep.get("best") or {}).get("ewc_lambda")

    def f(v):
        return "    n/a" if v is None or v != v else f"{v:7.3f}"

    for r in sweep["runs"]:
        mark = "*" if r["ewc_lambda"] == best else " "
        lines.append(f"{mark} {r['ewc_lambda']:>10g} {f(r['acc'])} {f(r['bwt'])} {f(r['fwt'])} "
                     f"{f(r['forgetting'])} {r['seconds']:8.1f}"
                     + ("  diverged" if r.get("diverged") else ""))
    return "\n".join(lines)
