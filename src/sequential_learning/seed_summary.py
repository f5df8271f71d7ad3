"""A comparison repeated over seeds: the seeds checked, and each method's metrics summarised.

Papers report a method's figures as the mean and standard deviation over several runs (the DER
paper's over 10 seeds, Mammoth's `--seed` loops, Avalanche's examples); one seed can put two close
methods either way round. `seql compare --seeds 0,1,2` runs the whole comparison once per seed
(`OUT/seed-K/`, each an ordinary comparison folder) and writes the summary made here to
`OUT/seeds.json`, with the means as `OUT/comparison.json`.

A metric's mean and its sample standard deviation (n − 1 in the denominator; 0 for one seed)
are given only when every seed's value is a finite number; otherwise both are None and the
values say which seeds had none (FWT of a class-incremental stream is n/a at every seed).

Example:
```python
summary = summarise({0: {"fisher": {"acc": 0.70}}, 1: {"fisher": {"acc": 0.74}}})
summary["methods"]["fisher"]["acc"]    # {'mean': 0.72, 'std': 0.028..., 'values': [0.7, 0.74]}
print(summary_table(summary))
```
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from sequential_learning.errors import SeqlError

#: The metrics the table prints, in order, with their column titles (those some method has).
TABLE = {"acc": "ACC", "bwt": "BWT", "fwt": "FWT", "forgetting": "forgetting",
         "task_il_acc": "TIL ACC", "nme_acc": "NME ACC"}


def check_seeds(seeds: list[int] | None, seed_given: bool) -> list[int] | None:
    """The seeds of `--seeds`, checked.

    Args:
        seeds: the list given (None: one run at `seed`).
        seed_given: whether `--seed` (or a config file's `seed`) was given too.

    Returns:
        The seeds in the order given, or None when `seeds` is None.

    Raises:
        SeqlError: an empty list, a negative or repeated seed, or `--seed` given as well.

    Example:
    ```python
    check_seeds([0, 1, 2], seed_given=False)    # [0, 1, 2]
    check_seeds([0, 0], seed_given=False)       # SeqlError: --seeds: 0 given twice; ...
    ```
    """
    if seeds is None:
        return None
    if seed_given:
        raise SeqlError("give --seed or --seeds, not both (--seeds runs the comparison once at "
                        "each seed)")
    if not seeds:
        raise SeqlError("--seeds: give at least one seed, e.g. 0,1,2")
    negative = [s for s in seeds if s < 0]
    if negative:
        raise SeqlError(f"--seeds: {negative[0]} is negative; expected integers >= 0")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise SeqlError(f"--seeds: {', '.join(map(str, twice))} given twice; each seed once")
    return list(seeds)


def summarise(rows: dict[int, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Each method's metrics over the seeds: mean, sample standard deviation and the values.

    Args:
        rows: `{seed: {method: {metric: value}}}`, the seeds in run order; every seed must
            hold the same methods.

    Returns:
        `{"seeds": [...], "std": "sample (n - 1)", "methods": {method: {metric: {"mean",
        "std", "values"}}}}` for every metric some seed reports for the method (`acc`, `bwt`,
        ..., a method's own such as iCaRL's `nme_acc`, and `seconds`), in the first seed's order.

    Raises:
        ValueError: no seed, or the seeds hold different methods.

    Example:
    ```python
    summarise({0: {"none": {"acc": 0.5}}})["methods"]["none"]["acc"]["std"]    # 0.0
    ```
    """
    if not rows:
        raise ValueError("summarise needs at least one seed")
    seeds = list(rows)
    methods = list(rows[seeds[0]])
    if any(list(rows[s]) != methods for s in seeds):
        raise ValueError("every seed must hold the same methods")
    out: dict[str, Any] = {}
    for method in methods:
        out[method] = {}
        keys = dict.fromkeys(k for s in seeds for k, v in rows[s][method].items()
                             if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
        for key in keys:
            values = [rows[s][method].get(key) for s in seeds]
            if all(v is None for v in values):
                continue
            out[method][key] = {**_mean_std(values), "values": values}
    return {"seeds": seeds, "std": "sample (n - 1)", "methods": out}


def _mean_std(values: list[Any]) -> dict[str, float | None]:
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(finite) < len(values):
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(finite),
            "std": statistics.stdev(finite) if len(finite) > 1 else 0.0}


def means(summary: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """`{method: {metric: mean}}` of a summary (the rows of the seeds' `comparison.json`).

    Args:
        summary: what `summarise` returned.

    Returns:
        The means, None where a seed had no finite value.

    Example:
    ```python
    means(summary)["fisher"]["acc"]    # 0.72
    ```
    """
    return {method: {k: v["mean"] for k, v in metrics.items()}
            for method, metrics in summary["methods"].items()}


def summary_table(summary: dict[str, Any]) -> str:
    """The printed table: `mean ± std` of ACC, BWT, FWT, forgetting, (class-IL) task-IL ACC and
    (iCaRL) the nearest-mean-of-exemplars ACC.

    Args:
        summary: what `summarise` returned.

    Returns:
        The table, with a last line naming the seeds.

    Example:
    ```python
    print(summary_table(summary))
    # method                 ACC              BWT       forgetting ...
    ```
    """
    keys = [k for k in TABLE if any(k in m for m in summary["methods"].values())]
    header = f"{'method':<18}" + "".join(f" {TABLE[k]:>15}" for k in keys) + f" {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for method, metrics in summary["methods"].items():
        cells = []
        for key in keys:
            cell = metrics.get(key, {})
            mean, std = cell.get("mean"), cell.get("std")
            cells.append(f" {'n/a':>15}" if mean is None else f" {mean:7.3f} ± {std:5.3f}")
        seconds = metrics.get("seconds", {}).get("mean")
        shown = "n/a" if seconds is None else f"{seconds:.1f}"
        lines.append(f"{method:<18}{''.join(cells)} {shown:>8}")
    seeds = summary["seeds"]
    lines.append(f"mean ± sample standard deviation over {len(seeds)} seed"
                 f"{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))})")
    return "\n".join(lines)


__all__ = ["TABLE", "check_seeds", "means", "summarise", "summary_table"]
