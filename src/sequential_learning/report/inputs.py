"""What the report reads from a folder, checked before anything is shown or written.

`load_results` and `load_comparison` read `results.json` and `comparison.json`, and turn any
malformed document (not UTF-8, not JSON, not an object, a missing key, a wrong type or length)
into a one-line `SeqlError` naming the file and what was expected. `inside` and `href` are the
only way the report links to anything: relative paths inside the folder, percent-encoded.

Example:
```python
from pathlib import Path
from sequential_learning.report.inputs import load_results
results = load_results(Path("runs/mine"))   # Results, or SeqlError naming runs/mine/results.json
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sequential_learning.errors import SeqlError
from sequential_learning.results import Results
from sequential_learning.rundir import RunDir

#: The metrics `seql compare` writes per method (task_il_acc only for class-incremental runs).
METRIC_KEYS = ("acc", "bwt", "fwt", "forgetting", "task_il_acc")

_RESULTS_EXPECTED = "expected the results.json a run writes"
_SEEDS_EXPECTED = ("expected the seeds.json `seql compare --seeds` writes: `seeds`, a list of "
                   "integers >= 0, and `methods`, per method each metric's mean, std and values "
                   "(one per seed)")
_COMPARISON_EXPECTED = ("expected an object keyed by method, each an object of numbers (acc, bwt, "
                        "fwt, forgetting, ewc_lambda, seconds), as `seql compare` writes")


# -- links: relative paths inside the folder, nothing else ----------------------------------------
def inside(directory: Path, relative: str, folder: bool = False) -> bool:
    """Whether `relative` is a plain relative path inside `directory` that exists.

    Args:
        directory: the report's folder.
        relative: a `/`-separated path; no scheme, not absolute, no `..` or `.` segment, no
            backslash or NUL, and no symbolic link out of `directory`.
        folder: require an existing folder (otherwise any existing file or folder).

    Returns:
        True when the report may link to it.

    Example:
    ```python
    inside(Path("runs/cmp"), "fisher", folder=True)   # True when runs/cmp/fisher/ exists
    inside(Path("runs/cmp"), "../etc")                 # False
    ```
    """
    parts = relative.split("/")
    if (not relative or "\\" in relative or "\x00" in relative
            or any(p in ("", ".", "..") for p in parts)):
        return False
    path = directory / relative
    try:
        if not path.resolve().is_relative_to(directory.resolve()):
            return False  # a symbolic link out of the folder
        return path.is_dir() if folder else path.exists()
    except (OSError, ValueError):
        return False


def href(*parts: str) -> str:
    """A relative URL of path segments, each percent-encoded.

    A `:` can never make it a scheme (`javascript:`), a `/` or `..` inside a segment never a path
    out of the folder, and a quote never ends the attribute.

    Args:
        *parts: the path's segments, relative to the report's folder.

    Returns:
        The URL, each segment percent-encoded and joined with `/`.

    Example:
    ```python
    href("javascript:alert(1)", "report.html")   # 'javascript%3Aalert%281%29/report.html'
    ```
    """
    return "/".join(quote(part, safe="") for part in parts)


# -- reading JSON ----------------------------------------------------------------------------------
def _read_json(path: Path, expected: str) -> Any:
    """The JSON document in `path`, or a one-line `SeqlError` naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise SeqlError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise SeqlError(f"{path} is not UTF-8 text (byte {error.start}); {expected}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SeqlError(f"{path} is not valid JSON ({error.msg} at line {error.lineno} column "
                        f"{error.colno}); {expected}") from None
    except RecursionError:
        raise SeqlError(f"{path} is nested too deeply; {expected}") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def _number(value: Any, nullable: bool = True) -> bool:
    if value is None:
        return nullable
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_list(value: Any, length: int | None = None) -> bool:
    return (isinstance(value, list) and (length is None or len(value) == length)
            and all(_number(v) for v in value))


def _matrix(value: Any, width: int, rows: int | None = None) -> bool:
    return (isinstance(value, list) and (rows is None or len(value) == rows)
            and all(_number_list(row, width) for row in value))


def _integers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)


def _summary(summary: Any) -> bool:
    if summary is None:
        return True
    return isinstance(summary, dict) and all(
        s is None or (isinstance(s, dict) and all(_number(v) for v in s.values()))
        for s in summary.values()
    )


def _results_problem(doc: Any) -> str | None:
    """What is wrong with a results.json document (None when it can be reported)."""
    if not isinstance(doc, dict):
        return f"holds {_kind(doc)}, not an object"
    for key in ("config", "task_names", "accuracy_matrix", "baseline", "history", "epoch_task"):
        if key not in doc:
            return f"has no key {key!r}"
    names = doc["task_names"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        return "'task_names' must be a non-empty list of strings"
    t = len(names)
    metric = doc.get("metric", "accuracy")
    history = doc["history"]
    evaluated = doc.get("evaluated_epochs", [])
    train = doc.get("train_history", {})
    timing = doc.get("timing", {})
    completed = doc.get("completed_tasks", t)
    matrices = doc.get("matrices", {})
    summaries = doc.get("importance_summary", [])
    # In order, each test only once the ones before it hold (`metric in history` needs both).
    checks = [
        (lambda: isinstance(doc["config"], dict), "'config' must be an object"),
        (lambda: _matrix(doc["accuracy_matrix"], t, t),
         f"'accuracy_matrix' must be {t} rows of {t} numbers (or null)"),
        (lambda: _number_list(doc["baseline"], t),
         f"'baseline' must be a list of {t} numbers (or null)"),
        (lambda: isinstance(metric, str), "'metric' must be a string"),
        (lambda: isinstance(history, dict) and all(_matrix(v, t) for v in history.values()),
         f"'history' must map each metric to rows of {t} numbers (or null)"),
        (lambda: metric in history, f"'history' has no rows of the metric {metric!r}"),
        (lambda: len({len(v) for v in history.values()}) == 1,
         "every metric in 'history' must have the same number of rows"),
        (lambda: _integers(doc["epoch_task"]), "'epoch_task' must be a list of integers"),
        (lambda: _integers(evaluated) and (not evaluated or len(evaluated) >= len(history[metric])),
         "'evaluated_epochs' must be empty or a list of integers, one per row of 'history'"),
        (lambda: isinstance(train, dict) and all(_number_list(v) for v in train.values()),
         "'train_history' must map each metric to a list of numbers (or null)"),
        (lambda: isinstance(timing, dict) and _number(timing.get("total_seconds"))
         and all(_number_list(timing.get(k, [])) for k in ("task_seconds", "importance_seconds")),
         "'timing' must be an object of seconds (numbers)"),
        (lambda: isinstance(doc.get("higher_is_better", True), bool),
         "'higher_is_better' must be true or false"),
        (lambda: _integers([completed]) and 0 <= completed <= t,
         f"'completed_tasks' must be an integer from 0 to {t}"),
        (lambda: isinstance(matrices, dict) and all(_matrix(v, t, t) for v in matrices.values()),
         f"'matrices' must map each name to {t} rows of {t} numbers (or null)"),
        (lambda: isinstance(summaries, list) and all(_summary(s) for s in summaries),
         "'importance_summary' must be a list of objects {variable: {mean, max, zero_fraction}}"),
        (lambda: isinstance(doc.get("task_summaries", []), list), "'task_summaries' must be a list"),
    ]
    return next((problem for holds, problem in checks if not holds()), None)


def load_results(directory: Path) -> Results:
    """The `Results` of `directory/results.json`, checked first.

    Args:
        directory: a run folder.

    Returns:
        The run's `Results`.

    Raises:
        SeqlError: one line naming `results.json` and what is wrong with it.

    Example:
    ```python
    results = load_results(Path("runs/x"))
    results.metrics["acc"]
    ```
    """
    path = RunDir(directory).results
    problem = _results_problem(_read_json(path, _RESULTS_EXPECTED))
    if problem is None:
        try:
            return Results.load(path)
        except SeqlError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            problem = f"cannot be read ({error})"
    raise SeqlError(f"{path}: {problem}; {_RESULTS_EXPECTED}")


def load_comparison(path: Path) -> dict[str, dict]:
    """`comparison.json` as `{method: {metric: number or None}}`, checked first.

    Args:
        path: the `comparison.json` that `seql compare` writes.

    Returns:
        One object per method, in the file's order (a `null` row becomes `{}`).

    Raises:
        SeqlError: one line naming the file and what is wrong with it.

    Example:
    ```python
    load_comparison(Path("runs/compare/comparison.json"))["fisher"]["acc"]
    ```
    """
    doc = _read_json(path, _COMPARISON_EXPECTED)
    if not isinstance(doc, dict) or not doc:
        what = "an empty object" if isinstance(doc, dict) else _kind(doc)
        raise SeqlError(f"{path} holds {what}; {_COMPARISON_EXPECTED}")
    out = {}
    for method, row in doc.items():
        row = {} if row is None else row
        if not isinstance(row, dict):
            raise SeqlError(f"{path}: method {method!r} holds {_kind(row)}; {_COMPARISON_EXPECTED}")
        for key in (*METRIC_KEYS, "ewc_lambda", "seconds"):
            if not _number(row.get(key)):
                raise SeqlError(f"{path}: {method!r} {key} is {_kind(row[key])}, not a number; "
                                f"{_COMPARISON_EXPECTED}")
        out[method] = row
    return out


def load_seeds(path: Path) -> dict[str, Any] | None:
    """`seeds.json` of a comparison made at several seeds, checked first.

    Args:
        path: the `seeds.json` that `seql compare --seeds` writes.

    Returns:
        `{"seeds": [...], "methods": {method: {metric: {"mean", "std", "values"}}}}`, or None
        while the comparison is still being made (its `methods` is null until every seed ran).

    Raises:
        SeqlError: one line naming the file and what is wrong with it.

    Example:
    ```python
    load_seeds(Path("runs/seeds/seeds.json"))["methods"]["fisher"]["acc"]["mean"]
    ```
    """
    doc = _read_json(path, _SEEDS_EXPECTED)
    seeds = doc.get("seeds") if isinstance(doc, dict) else None
    if not (isinstance(seeds, list) and seeds and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise SeqlError(f"{path}: `seeds` is not a list of integers >= 0; {_SEEDS_EXPECTED}")
    methods = doc.get("methods")
    if methods is None:
        return None
    if not isinstance(methods, dict) or not methods:
        raise SeqlError(f"{path}: `methods` is {_kind(methods)}; {_SEEDS_EXPECTED}")
    for method, metrics in methods.items():
        if not isinstance(metrics, dict):
            raise SeqlError(f"{path}: method {method!r} holds {_kind(metrics)}; {_SEEDS_EXPECTED}")
        for key, cell in metrics.items():
            if not (isinstance(cell, dict) and _number(cell.get("mean"))
                    and _number(cell.get("std")) and _number_list(cell.get("values"), len(seeds))):
                raise SeqlError(f"{path}: {method!r} {key} is not an object of mean, std and "
                                f"{len(seeds)} values; {_SEEDS_EXPECTED}")
    return {"seeds": seeds, "methods": methods}
