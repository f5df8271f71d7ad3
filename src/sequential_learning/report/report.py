"""The one-file HTML report of a run or of a comparison of methods.

`write_report(directory)` writes `report.html` into a run directory (it holds `results.json`) or a
comparison directory (it holds `comparison.json` and one run folder per method). The file is
self-contained: plots are embedded as PNG data URIs, the style sheet and the one small script are
inline, and a Content-Security-Policy forbids loading anything else, so it opens offline and can
be mailed or archived on its own.

This module prepares the data (reading and checking files, computing the tables, formatting the
numbers) and hands plain values to the jinja2 templates in `templates/`, which hold all the
markup. The templates are rendered with autoescape on, so every text from `results.json` /
`comparison.json` is escaped; the page links only to relative paths inside the folder (a method's
name becomes a link only when it names an existing sub-folder), and the policy lets exactly one
script run, the report's own (by the `sha256-` hash of the script as rendered), never inline script
that a tampered file might smuggle in. A malformed `results.json` or `comparison.json` raises a
`SeqlError` naming the file and what is expected.

A run's report holds the config, the environment (Python, TensorFlow, Keras, device), ACC / BWT /
FWT / forgetting, the accuracy matrix as a coloured table, the task curves, timing, the Ω
summaries, and the figures other commands left in the run directory (`explain/`, `augment/`,
`importance.png`, `ablation.png`, `drift.png`, `sweep.png`).

Example:
```python
from sequential_learning.report import write_report
write_report("runs/20250101-120000-split-digits-fisher")   # -> .../report.html
```
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from sequential_learning.errors import SeqlError
from sequential_learning.report.environment import (
    environment_info,
    recorded_environment,
)
from sequential_learning.report.inputs import (
    href,
    inside,
    load_comparison,
    load_results,
    load_seeds,
)
from sequential_learning.results import Results, atomic_write_text
from sequential_learning.rundir import RunDir

#: The report's file in a run or comparison folder (see `RunDir.report_html`).
REPORT_NAME = RunDir(".").report_html.name
# Figures other commands may leave in a run directory, with their section titles.
EXTRA_FIGURES = {
    RunDir(".").stream_curve_png.name: "Online: accuracy against samples seen",
    "ablation.png": "Ablation (augment)",
    "drift.png": "Weight drift",
    RunDir(".").sweep_png.name: "λ sweep",
}
FIGURE_FOLDERS = {
    RunDir(".").explain_dir.name: "Explanations (explain/)",
    RunDir(".").augment_dir.name: "Importance masking (augment/)",
}
MAX_IMAGES_PER_SECTION = 48

_METRIC_HELP = {
    "acc": ("ACC", "mean final metric over all tasks"),
    "bwt": ("BWT", "effect of later tasks on earlier ones (negative: forgetting)"),
    "fwt": ("FWT", "metric on a task before training it, against the untrained model"),
    "forgetting": ("forgetting", "mean drop from the best earlier value to the final one"),
    "task_il_acc": ("ACC (task-IL)", "mean final accuracy with the task known (the arg-max over "
                    "its own classes), from the same class-incremental run"),
}


@functools.cache
def _templates() -> jinja2.Environment:
    """The templates shipped in `sequential_learning/report/templates`, autoescaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sequential_learning.report", "templates"),
        autoescape=True,  # every {{ value }} is HTML-escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# The report's one script, exactly as the page renders it: its hash is what the policy allows.
_SCRIPT = _templates().get_template("report.js").render()
SCRIPT_HASH = "sha256-" + base64.b64encode(
    hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
_CSP = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src '{SCRIPT_HASH}'; base-uri 'none'; form-action 'none'")


# -- public API ------------------------------------------------------------------------------------
def build_report_html(directory: str | os.PathLike) -> str:
    """The HTML of the report of a run or comparison directory (nothing is written).

    Args:
        directory: a run directory (with `results.json`) or a comparison directory (with
            `comparison.json`).

    Returns:
        The self-contained HTML document.

    Raises:
        SeqlError: `directory` is neither a run nor a comparison directory, or its
            `results.json` / `comparison.json` (or a method's `results.json`) is malformed.

    Example:
    ```python
    text = build_report_html("runs/mine")
    ```
    """
    directory = Path(directory)
    run = RunDir(directory)
    if run.results.is_file():
        return _render("run.html.j2", _run_context(directory))
    if run.comparison_json.is_file():
        seeds = load_seeds(run.seeds_json) if run.seeds_json.is_file() else None
        if seeds is not None:
            return _render("seeds.html.j2", _seeds_context(directory, seeds))
        return _render("comparison.html.j2", _comparison_context(directory))
    raise SeqlError(
        f"{str(directory)!r} is not a run directory: it holds neither results.json (a run) nor "
        "comparison.json (a comparison)"
    )


def write_report(directory: str | os.PathLike) -> Path:
    """Writes `report.html` into a run or comparison directory (atomically).

    Records the environment in `environment.json` first when the directory has none yet.

    Args:
        directory: a run directory (with `results.json`) or a comparison directory (with
            `comparison.json`).

    Returns:
        The path of `report.html`.

    Raises:
        SeqlError: `directory` is neither a run nor a comparison directory, or a JSON file the
            report is built from is malformed (nothing is written then).

    Example:
    ```python
    write_report("runs/mine")   # runs/mine/report.html
    ```
    """
    directory = Path(directory)
    run = RunDir(directory)
    if run.results.is_file():
        load_results(directory)  # a malformed file raises before anything is written
    elif run.comparison_json.is_file():
        for method in load_comparison(run.comparison_json):
            if _has_run(directory, method):
                load_results(run.method_run(method).root)
        if run.seeds_json.is_file():
            load_seeds(run.seeds_json)
    else:
        build_report_html(directory)  # raises the one-line error
    env_path = run.environment_json
    if not env_path.is_file():
        atomic_write_text(env_path, json.dumps(environment_info(), indent=2))
    path = run.report_html
    atomic_write_text(path, build_report_html(directory))
    return path


# -- rendering -------------------------------------------------------------------------------------
def _render(template: str, context: dict[str, Any]) -> str:
    """The page `template` renders with `context`, the policy, the script and the footer."""
    page = _templates().get_template(template).render(
        csp=_CSP,
        script=_SCRIPT,
        version=_package_version(),
        written=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        **context,
    )
    if f"<script>{_SCRIPT}</script>" not in page:  # the policy's hash would not match
        raise RuntimeError("the report's script was not rendered as hashed")
    return page


# -- run report ------------------------------------------------------------------------------------
def _run_context(directory: Path) -> dict[str, Any]:
    results = load_results(directory)
    config = results.config
    extras = _extras(directory)
    sections = ["metrics", "matrix", "curves", "timing", "importance", "config", "environment"]
    run = RunDir(directory)
    figure = run.importance_png
    return {
        "title": f"{config.get('benchmark', 'task stream')} — {config.get('method', 'run')}",
        "run_name": directory.resolve().name,
        "done": f"{results.completed_tasks} of {results.num_tasks} tasks completed",
        "metric": results.metric,
        "higher_is_better": results.higher_is_better,
        "nav": _nav(sections + [section["id"] for section in extras]),
        "cards": [
            {"label": label, "help": help_text, "value": _fmt(results.metrics.get(key))}
            for key, (label, help_text) in _METRIC_HELP.items()
            if key in results.metrics or not key.startswith("task_il")  # class-incremental only
        ],
        "matrix": _matrix_table(results),
        "curves": _data_uri(_png_or_render(run.task_curves_png,
                                           lambda: _task_curves(results))),
        "timing": _timing(results),
        "importance": {
            **_importance(results),
            "method": str(config.get("method", "")),
            "figure": _data_uri(figure.read_bytes()) if figure.is_file() else None,
        },
        "config": _key_values(config),
        "environment": _key_values(recorded_environment(directory)),
        "extras": extras,
        "files": [(href(path.name), path.name)
                  for path in (run.results, run.history, run.config, run.environment_json,
                               run.models, run.samples)
                  if inside(directory, path.name)],
    }


def _matrix_table(results: Results) -> dict[str, Any]:
    """The accuracy matrix as rows of coloured cells (the untrained row first)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from sequential_learning.report.plots import text_colour

    r = np.asarray(results.accuracy_matrix, dtype=float)
    b = np.asarray(results.baseline, dtype=float)
    finite = np.concatenate([r[np.isfinite(r)], b[np.isfinite(b)]])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    cmap = colormaps["viridis" if results.higher_is_better else "viridis_r"]

    def cells(values) -> list[dict[str, str]]:
        out = []
        for v in values:
            if not np.isfinite(v):
                out.append({"background": "#f0f0f0", "ink": "#595959", "text": "—"})
                continue
            colour = to_hex(cmap(0.5 if high <= low else (float(v) - low) / (high - low)))
            # Black or white text, whichever contrasts more with the cell (WCAG).
            out.append({"background": colour, "ink": text_colour(colour), "text": _fmt(v)})
        return out

    names = results.task_names
    rows = [{"label": "untrained", "title": None, "cells": cells(b)}]
    rows += [{"label": f"after T{i + 1}", "title": names[i], "cells": cells(r[i])}
             for i in range(results.num_tasks)]
    return {"task_names": names, "rows": rows,
            "legend": "; ".join(f"T{j + 1} = {name}" for j, name in enumerate(names))}


def _timing(results: Results) -> dict[str, Any]:
    timing = results.timing or {}
    task_s = list(timing.get("task_seconds", []))
    importance_s = list(timing.get("importance_seconds", []))
    rows = []
    for k, seconds in enumerate(task_s):
        imp = importance_s[k] if k < len(importance_s) else None
        train = seconds - imp if (seconds is not None and imp is not None) else seconds
        name = results.task_names[k] if k < len(results.task_names) else f"task {k + 1}"
        rows.append((name, _fmt(train, 2), _fmt(imp, 2), _fmt(seconds, 2)))
    return {"rows": rows, "total": _fmt(timing.get("total_seconds"), 2)}


def _importance(results: Results) -> dict[str, Any]:
    """Ω's mean, max and fraction of zeros per covered variable, for each task that measured it."""
    summaries = results.importance_summary or []
    names: list[str] = []
    for summary in summaries:
        names += [name for name in summary or {} if name not in names]
    tasks = [k for k, s in enumerate(summaries) if s]
    rows = []
    for name in names:
        cells = []
        for k in tasks:
            s = summaries[k].get(name) or {}
            zeros = s.get("zero_fraction")
            cells.append((_sci(s.get("mean")), _sci(s.get("max")),
                          "—" if zeros is None else f"{100 * zeros:.0f}%"))
        rows.append({"name": name, "cells": cells})
    return {"tasks": [k + 1 for k in tasks], "rows": rows}


def _extras(directory: Path) -> list[dict[str, Any]]:
    """The sections of figures other commands left in the run directory, and TensorBoard's."""
    out = []
    for folder, title in FIGURE_FOLDERS.items():
        files = _pngs(directory / folder)
        if files:
            shown = files[:MAX_IMAGES_PER_SECTION]
            out.append({"id": _slug(title), "title": title, "folder": folder,
                        "more": len(files) - len(shown),
                        "figures": [{"src": _data_uri(p.read_bytes()), "alt": p.stem,
                                     "caption": p.relative_to(directory).as_posix()}
                                    for p in shown]})
    for name, title in EXTRA_FIGURES.items():
        path = directory / name
        if path.is_file():
            out.append({"id": _slug(title), "title": title, "figures": [],
                        "image": _data_uri(path.read_bytes())})
    if RunDir(directory).tensorboard.is_dir():
        out.append({"id": "tensorboard", "title": "TensorBoard", "figures": [], "image": None,
                    "logdir": str(RunDir(directory).tensorboard)})
    return out


# -- comparison report -----------------------------------------------------------------------------
def _has_run(directory: Path, method: str) -> bool:
    """Whether `method` names an existing sub-folder of `directory` holding a results.json."""
    return ("/" not in method and inside(directory, method, folder=True)
            and RunDir(directory).method_run(method).results.is_file())


def _comparison_context(directory: Path) -> dict[str, Any]:
    run = RunDir(directory)
    comparison = load_comparison(run.comparison_json)
    methods = list(comparison)
    # Only a method whose name is an existing sub-folder has a run to read and a link to follow.
    folders = {m for m in methods if "/" not in m and inside(directory, m, folder=True)}
    runs = {m: load_results(run.method_run(m).root) for m in methods if _has_run(directory, m)}
    first = next(iter(runs.values()), None)
    benchmark = first.config.get("benchmark", "task stream") if first else "task stream"
    sections = []
    for method in methods:
        results = runs.get(method)
        section = {"id": f"method-{_slug(method)}", "name": method, "missing": None}
        if results is None:
            section["missing"] = ("with results.json" if method in folders
                                  else "(the name is not a sub-folder)")
        else:
            section.update(
                folder=href(method) + "/",
                report=(href(method, REPORT_NAME)
                        if inside(directory, f"{method}/{REPORT_NAME}") else None),
                ewc_lambda=_fmt(results.config.get("ewc_lambda"), 6),
                matrix=_matrix_table(results),
                curves=_data_uri(_png_or_render(run.method_run(method).task_curves_png,
                                                lambda r=results: _task_curves(r))),
            )
        sections.append(section)
    # The comparison's own record of the environment, else the first method's (written at the
    # end of its run).
    source = directory
    if not run.environment_json.is_file():
        source = next((run.method_run(m).root for m in runs
                       if run.method_run(m).environment_json.is_file()), directory)
    return {
        "title": f"{benchmark} — comparison of {len(methods)} methods",
        "run_name": directory.resolve().name,
        "nav": _nav(["table", "plot", *(s["id"] for s in sections), "config", "environment"]),
        "table": _comparison_table(directory, comparison, first.higher_is_better if first else True,
                                   folders),
        "plot": _data_uri(_png_or_render(run.comparison_png,
                                         lambda: _comparison_plot(comparison))),
        "methods": sections,
        "config": _shared_config(runs),
        "environment": _key_values(recorded_environment(source)),
    }


# -- a comparison made at several seeds (`seql compare --seeds`) -----------------------------------
def _seeds_context(directory: Path, seeds: dict[str, Any]) -> dict[str, Any]:
    run = RunDir(directory)
    comparison = load_comparison(run.comparison_json)  # the means
    methods = list(comparison)
    # A seed's folder is read only when it is a plain sub-folder; the first one that holds a
    # method's run gives the benchmark and the settings (the same at every seed but the seed).
    folders = {s: f"seed-{s}" for s in seeds["seeds"] if inside(directory, f"seed-{s}", folder=True)}
    runs: dict[str, Results] = {}
    for method in methods:
        for folder in folders.values():
            if _has_run(directory / folder, method):
                runs[method] = load_results(RunDir(directory / folder).method_run(method).root)
                break
    first = next(iter(runs.values()), None)
    benchmark = first.config.get("benchmark", "task stream") if first else "task stream"
    spread = {m: {k: cell.get("std") for k, cell in seeds["methods"].get(m, {}).items()}
              for m in methods}
    table = _comparison_table(directory, comparison, first.higher_is_better if first else True,
                              set(), spread)
    keys = [k for k in ("acc", "bwt", "forgetting", "task_il_acc")
            if any(k in seeds["methods"].get(m, {}) for m in methods)]
    sections = []
    for method in methods:
        metrics = seeds["methods"].get(method, {})
        rows = []
        for i, seed in enumerate(seeds["seeds"]):
            folder = folders.get(seed)
            linked = (folder is not None and "/" not in method
                      and inside(directory, f"{folder}/{method}/{REPORT_NAME}"))
            rows.append({"seed": seed,
                         "href": href(folder, method, REPORT_NAME) if linked else None,
                         "cells": [_fmt(metrics[k]["values"][i]) if k in metrics else "—"
                                   for k in keys]})
        sections.append({"id": f"method-{_slug(method)}", "name": method, "rows": rows})
    config = _shared_config(runs)
    if config is not None:
        config["shared"] = [(k, v) for k, v in config["shared"] if k != "seed"]
        config["differ"] = [(k, v) for k, v in config["differ"] if k != "seed"]
    return {
        "title": f"{benchmark} — comparison of {len(methods)} methods over "
                 f"{len(seeds['seeds'])} seeds",
        "run_name": directory.resolve().name,
        "seeds": [(s, href(folders[s], REPORT_NAME)
                   if s in folders and inside(directory, f"{folders[s]}/{REPORT_NAME}") else None)
                  for s in seeds["seeds"]],
        "nav": _nav(["table", "plot", *(s["id"] for s in sections), "config", "environment"]),
        "table": table,
        "head": [_METRIC_HELP[k][0] for k in keys],
        "plot": _data_uri(_png_or_render(run.comparison_png,
                                         lambda: _comparison_plot(comparison))),
        "methods": sections,
        "config": config,
        "environment": _key_values(recorded_environment(directory)),
    }


def _comparison_table(directory: Path, comparison: dict, higher: bool,
                      folders: set[str], spread: dict | None = None) -> dict[str, Any]:
    """The metrics table; with `spread` (`{method: {metric: std}}`, a comparison over seeds)
    each cell is `mean ± std` and the best is the best mean."""
    keys = ["acc", "bwt", "fwt", "forgetting"]
    if any("task_il_acc" in row for row in comparison.values()):
        keys.append("task_il_acc")
    # Which value is best in each column (forgetting is lower-better; so is every metric of a
    # lower-is-better measure such as MSE).
    sign = {k: (1 if higher else -1) for k in ("acc", "bwt", "fwt", "task_il_acc")}
    sign["forgetting"] = -1
    best = {}
    for key in keys:
        values = [(sign[key] * row[key], method) for method, row in comparison.items()
                  if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
        if len(values) > 1:
            best[key] = max(values)[1]
    rows = []
    for method, row in comparison.items():
        linked = method in folders and inside(directory, f"{method}/{REPORT_NAME}")
        rows.append({
            "name": method,
            "href": href(method, REPORT_NAME) if linked else None,
            "ewc_lambda": _fmt(row.get("ewc_lambda"), 6),
            "cells": [(_fmt(row.get(key)) + _spread(spread, method, key), best.get(key) == method)
                      for key in keys],
            "seconds": _fmt(row.get("seconds"), 1),
        })
    return {"head": [_METRIC_HELP[k][0] for k in keys], "rows": rows}


def _spread(spread: dict | None, method: str, key: str) -> str:
    std = (spread or {}).get(method, {}).get(key)
    return "" if std is None else f" ± {_fmt(std)}"


def _shared_config(runs: dict[str, Results]) -> dict[str, Any] | None:
    """The settings every method shares, and per method those that differ (None without runs)."""
    if not runs:
        return None
    configs = [r.config for r in runs.values()]
    keys = [k for k in configs[0] if all(k in c for c in configs)]
    shared = {k: configs[0][k] for k in keys if all(c[k] == configs[0][k] for c in configs)}
    differ = [k for k in dict.fromkeys(k for c in configs for k in c) if k not in shared]
    return {
        "shared": _key_values(shared),
        "methods": list(runs),
        "differ": [(k, [_value(c.get(k, "—")) for c in configs]) for k in differ],
    }


# -- values ----------------------------------------------------------------------------------------
def _nav(sections: list[str]) -> list[tuple[str, str]]:
    return [(s, s.replace("-", " ")) for s in sections]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "section"


def _key_values(mapping: dict) -> list[tuple[str, str]]:
    return [(str(k), _value(v)) for k, v in mapping.items()]


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return _fmt(v, 6)
    return json.dumps(v, separators=(", ", ": "))


def _fmt(v: Any, digits: int = 3) -> str:
    """A number with `digits` decimals (or significant digits beyond 3), `—` for None / NaN."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        return "—" if v is None else str(v)
    v = float(v)
    if not math.isfinite(v):
        return "—"
    if abs(v) >= 10 ** 5 or (digits > 3 and v != 0 and abs(v) < 10 ** (-digits)):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}f}" if digits <= 3 else f"{v:.{digits}g}"


def _sci(v: Any) -> str:
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "—"
    return "0" if v == 0 else f"{v:.2e}"


# -- figures ---------------------------------------------------------------------------------------
def _pngs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.png") if p.is_file())


def _data_uri(png: bytes) -> str:
    """A `data:image/png;base64,` URI (base64 holds no character that HTML escaping changes)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png_or_render(path: Path, render: Callable[[], Any]) -> bytes:
    """The PNG at `path`, or the figure `render()` draws when the file is missing."""
    if path.is_file():
        return path.read_bytes()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = render()
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _task_curves(results: Results):
    from sequential_learning.report.plots import task_curves

    return task_curves(results)


def _comparison_plot(comparison: dict):
    from sequential_learning.report.plots import comparison as plot_comparison

    return plot_comparison({m: {k: v for k, v in row.items() if k in _METRIC_HELP}
                            for m, row in comparison.items()})


def _package_version() -> str:
    module = sys.modules.get("sequential_learning")
    return getattr(module, "__version__", "")
