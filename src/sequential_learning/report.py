"""The one-file HTML report of a run or of a comparison of methods.

`write_report(directory)` writes `report.html` into a run directory (it holds `results.json`) or a
comparison directory (it holds `comparison.json` and one run folder per method). The file is
self-contained: plots are embedded as PNG data URIs, the style sheet and the one small script are
inline, and a Content-Security-Policy forbids loading anything else, so it opens offline and can
be mailed or archived on its own.

The report is safe to open whatever the folder holds: every text from `results.json` /
`comparison.json` is escaped, the page links only to relative paths inside the folder (a
method's name becomes a link only when it names an existing sub-folder), and the policy lets
exactly one script run, the report's own (by its `sha256-` hash), never inline script that a
tampered file might smuggle in. A malformed `results.json` or `comparison.json` raises a
`SeqlError` naming the file and what is expected.

A run's report holds the config, the environment (Python, TensorFlow, Keras, device), ACC / BWT /
FWT / forgetting, the accuracy matrix as a coloured table, the task curves, timing, the Ω
summaries, and the figures other commands left in the run directory (`explain/`, `augment/`,
`importance.png`, `ablation.png`, `drift.png`, `sweep.png`).

The environment is recorded in `environment.json` the first time a report is written (at the end
of the run when `run_experiment` writes it) and reused when the report is rebuilt.

Example:
```python
from sequential_learning.report import write_report
write_report("runs/20250101-120000-split-digits-fisher")   # -> .../report.html
```
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from sequential_learning.errors import SeqlError
from sequential_learning.results import Results, atomic_write_text

REPORT_NAME = "report.html"
ENVIRONMENT_NAME = "environment.json"
# Figures other commands may leave in a run directory, with their section titles.
EXTRA_FIGURES = {
    "ablation.png": "Ablation (augment)",
    "drift.png": "Weight drift",
    "sweep.png": "λ sweep",
}
FIGURE_FOLDERS = {
    "explain": "Explanations (explain/)",
    "augment": "Importance masking (augment/)",
}
MAX_IMAGES_PER_SECTION = 48

_e = html.escape

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;
 background:#f6f7f9;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:1.2rem 1.5rem 3rem}
h1{font-size:1.5rem;margin:.2rem 0 .2rem}h2{font-size:1.15rem;margin:1.8rem 0 .6rem;
 border-bottom:1px solid #d5d9e0;padding-bottom:.25rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
.sub{color:#5b6475;margin:0 0 1rem}
table{border-collapse:collapse;font-size:.85rem;background:#fff}
th,td{border:1px solid #d5d9e0;padding:.25rem .5rem;text-align:right;vertical-align:top}
th{background:#eef0f4;font-weight:600}td.k,th.k{text-align:left}th[colspan]{text-align:center}
td.v{text-align:left;font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-word}
.scroll{overflow-x:auto;max-width:100%}
table.compact{font-size:.75rem}table.compact td,table.compact th{padding:.15rem .35rem}
.cards{display:flex;flex-wrap:wrap;gap:.7rem}
.card{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:.5rem .9rem;
 flex:1 1 200px;max-width:260px}
.card .n{font-size:1.4rem;font-weight:600}.card .l{font-size:.75rem;color:#5b6475}
img.wide{max-width:min(100%,800px)}
img{max-width:100%;height:auto;background:#fff;border:1px solid #d5d9e0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.8rem}
figure{margin:0}figcaption{font-size:.75rem;color:#5b6475;word-break:break-all}
.note{font-size:.8rem;color:#5b6475}b.best{color:#0a6b2f}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
a{color:#1f5fbf}
"""

# Sets <body data-images-ok="true"> once every image has decoded (checked by the tests in a
# headless browser) and data-image-count to the number of images. It is the only script the
# Content-Security-Policy lets run: by its hash, so no other inline script or `javascript:` URL can.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesOk = ok ? "true" : "false";
  document.body.dataset.imageCount = String(images.length);
});
"""

SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()
                                           ).decode("ascii")
_CSP = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src '{SCRIPT_HASH}'; base-uri 'none'; form-action 'none'")

_METRIC_HELP = {
    "acc": ("ACC", "mean final metric over all tasks"),
    "bwt": ("BWT", "effect of later tasks on earlier ones (negative: forgetting)"),
    "fwt": ("FWT", "metric on a task before training it, against the untrained model"),
    "forgetting": ("forgetting", "mean drop from the best earlier value to the final one"),
    "task_il_acc": ("ACC (task-IL)", "mean final accuracy with the task known (the arg-max over "
                    "its own classes), from the same class-incremental run"),
}


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
    if (directory / "results.json").is_file():
        return _run_report(directory)
    if (directory / "comparison.json").is_file():
        return _comparison_report(directory)
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
    if (directory / "results.json").is_file():
        _load_results(directory)  # a malformed file raises before anything is written
    elif (directory / "comparison.json").is_file():
        for method in _load_comparison(directory / "comparison.json"):
            if ("/" not in method and _inside(directory, method, folder=True)
                    and (directory / method / "results.json").is_file()):
                _load_results(directory / method)
    else:
        build_report_html(directory)  # raises the one-line error
    env_path = directory / ENVIRONMENT_NAME
    if not env_path.is_file():
        atomic_write_text(env_path, json.dumps(environment_info(), indent=2))
    path = directory / REPORT_NAME
    atomic_write_text(path, build_report_html(directory))
    return path


def environment_info() -> dict[str, Any]:
    """Versions and device of the running process: Python, TensorFlow, Keras, NumPy, device,
    and how the consolidation penalty ran (the fused native kernel or TensorFlow's ops)."""
    import keras
    import tensorflow as tf

    import sequential_learning
    from sequential_learning import native

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except Exception:  # details are best effort; the device name is enough
            details = {}
        gpus.append(details.get("device_name", device.name))
    cpu = _cpu_name()
    cores = os.cpu_count()
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "sequential_learning": sequential_learning.__version__,
        "platform": platform.platform(),
        "device": ", ".join(gpus) if gpus else f"CPU only ({cpu}, {cores} cores)",
        "gpus": gpus,
        "cpu": cpu,
        "cpu_cores": cores,
        "penalty_kernel": native.status(decide=False),
        "recorded": _dt.datetime.now().isoformat(timespec="seconds"),
    }


# -- run report ------------------------------------------------------------------------------------
def _run_report(directory: Path) -> str:
    results = _load_results(directory)
    config = results.config
    title = f"{config.get('benchmark', 'task stream')} — {config.get('method', 'run')}"
    done = f"{results.completed_tasks} of {results.num_tasks} tasks completed"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>Run <code>{_e(directory.resolve().name)}</code> · {_e(done)} · "
        f"metric <code>{_e(results.metric)}</code>"
        f"{'' if results.higher_is_better else ' (lower is better)'}</p>",
        _nav(["metrics", "matrix", "curves", "timing", "importance", "config", "environment"]
             + [_slug(t) for t in _extra_sections(directory)]),
        "<h2 id='metrics'>Metrics</h2>",
        _metric_cards(results.metrics),
        "<h2 id='matrix'>Accuracy matrix</h2>",
        f"<p class='note'>R[i, j]: {_e(results.metric)} on task j after training task i; "
        "the first row is the untrained model (the baseline for FWT).</p>",
        _matrix_table(results),
        "<h2 id='curves'>Task curves</h2>",
        "<p class='note'>Every task evaluated after every epoch; dashed lines mark the ends of "
        "tasks.</p>",
        _image(_png_or_render(directory / "task_curves.png", lambda: _task_curves(results)),
               "task curves"),
        "<h2 id='timing'>Timing</h2>",
        _timing_table(results),
        "<h2 id='importance'>Importance Ω</h2>",
        _importance_section(directory, results),
        "<h2 id='config'>Config</h2>",
        _config_table(config),
        "<h2 id='environment'>Environment</h2>",
        _environment_table(_environment(directory)),
        *_extras(directory),
        _files(directory),
    ]
    return _page(title, body)


def _metric_cards(metrics: dict) -> str:
    cards = []
    for key, (label, help_text) in _METRIC_HELP.items():
        if key not in metrics and key.startswith("task_il"):
            continue  # only class-incremental runs have it
        cards.append(
            f"<div class='card' title='{_e(help_text)}'><div class='n'>{_fmt(metrics.get(key))}"
            f"</div><div class='l'>{_e(label)} — {_e(help_text)}</div></div>"
        )
    return f"<div class='cards'>{''.join(cards)}</div>"


def _matrix_table(results: Results) -> str:
    r = np.asarray(results.accuracy_matrix, dtype=float)
    b = np.asarray(results.baseline, dtype=float)
    t = results.num_tasks
    finite = np.concatenate([r[np.isfinite(r)], b[np.isfinite(b)]])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    head = "".join(
        f"<th title='{_e(name)}'>T{j + 1}</th>" for j, name in enumerate(results.task_names)
    )
    rows = [f"<tr><th class='k'>untrained</th>{_cells(b, low, high, results.higher_is_better)}</tr>"]
    for i in range(t):
        label = f"after T{i + 1}"
        rows.append(
            f"<tr><th class='k' title='{_e(results.task_names[i])}'>{_e(label)}</th>"
            f"{_cells(r[i], low, high, results.higher_is_better)}</tr>"
        )
    names = "; ".join(f"T{j + 1} = {name}" for j, name in enumerate(results.task_names))
    return (f"<div class='scroll'><table class='matrix'><tr><th class='k'>evaluated on →</th>"
            f"{head}</tr>{''.join(rows)}</table></div><p class='note'>{_e(names)}</p>")


def _cells(values, low: float, high: float, higher_is_better: bool) -> str:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from sequential_learning.plots import text_colour

    cmap = colormaps["viridis" if higher_is_better else "viridis_r"]
    out = []
    for v in values:
        if v is None or not np.isfinite(v):
            out.append("<td style='background:#f0f0f0;color:#595959'>—</td>")
            continue
        x = 0.5 if high <= low else (float(v) - low) / (high - low)
        colour = to_hex(cmap(x))
        ink = text_colour(colour)  # black or white, whichever contrasts more (WCAG)
        out.append(f"<td style='background:{colour};color:{ink}'>{_fmt(v)}</td>")
    return "".join(out)


def _timing_table(results: Results) -> str:
    timing = results.timing or {}
    task_s = list(timing.get("task_seconds", []))
    importance_s = list(timing.get("importance_seconds", []))
    rows = []
    for k, seconds in enumerate(task_s):
        imp = importance_s[k] if k < len(importance_s) else None
        train = seconds - imp if (seconds is not None and imp is not None) else seconds
        name = results.task_names[k] if k < len(results.task_names) else f"task {k + 1}"
        rows.append(f"<tr><td class='k'>{_e(name)}</td><td>{_fmt(train, 2)}</td>"
                    f"<td>{_fmt(imp, 2)}</td><td>{_fmt(seconds, 2)}</td></tr>")
    total = timing.get("total_seconds")
    rows.append(f"<tr><th class='k'>run (with evaluation and saving)</th><td></td><td></td>"
                f"<th>{_fmt(total, 2)}</th></tr>")
    return ("<table><tr><th class='k'>task</th><th>training + evaluation s</th>"
            "<th>importance s</th><th>task s</th></tr>" + "".join(rows) + "</table>")


def _importance_section(directory: Path, results: Results) -> str:
    summaries = results.importance_summary or []
    parts = []
    if any(summaries):
        names: list[str] = []
        for summary in summaries:
            for name in summary or {}:
                if name not in names:
                    names.append(name)
        tasks = [k for k, s in enumerate(summaries) if s]
        head1 = "".join(f"<th colspan='3'>T{k + 1}</th>" for k in tasks)
        head2 = "<th>mean</th><th>max</th><th>zeros</th>" * len(tasks)
        rows = []
        for name in names:
            cells = []
            for k in tasks:
                s = summaries[k].get(name) or {}
                zeros = s.get("zero_fraction")
                cells.append(
                    f"<td>{_sci(s.get('mean'))}</td><td>{_sci(s.get('max'))}</td>"
                    f"<td>{'—' if zeros is None else f'{100 * zeros:.0f}%'}</td>"
                )
            rows.append(f"<tr><td class='k'><code>{_e(name)}</code></td>{''.join(cells)}</tr>")
        parts.append(
            "<p class='note'>Ω measured after each task, per covered variable: mean, maximum and "
            "fraction of exact zeros.</p>"
            f"<div class='scroll'><table class='compact'><tr><th class='k' rowspan='2'>variable"
            f"</th>{head1}</tr><tr>{head2}</tr>{''.join(rows)}</table></div>"
        )
    else:
        method = results.config.get("method", "")
        parts.append(f"<p class='note'>No importance was measured (method "
                     f"<code>{_e(str(method))}</code>).</p>")
    figure = directory / "importance.png"
    if figure.is_file():
        parts.append("<h3>Ω held by the penalty after the last task</h3>")
        parts.append(_image(figure.read_bytes(), "importance histogram"))
    return "\n".join(parts)


def _extra_sections(directory: Path) -> list[str]:
    titles = [t for folder, t in FIGURE_FOLDERS.items() if _pngs(directory / folder)]
    titles += [t for name, t in EXTRA_FIGURES.items() if (directory / name).is_file()]
    if (directory / "tensorboard").is_dir():
        titles.append("TensorBoard")
    return titles


def _extras(directory: Path) -> list[str]:
    out = []
    for folder, title in FIGURE_FOLDERS.items():
        files = _pngs(directory / folder)
        if not files:
            continue
        out.append(f"<h2 id='{_slug(title)}'>{_e(title)}</h2>")
        shown = files[:MAX_IMAGES_PER_SECTION]
        figures = [
            f"<figure>{_image(p.read_bytes(), p.stem)}<figcaption>"
            f"{_e(p.relative_to(directory).as_posix())}</figcaption></figure>"
            for p in shown
        ]
        out.append(f"<div class='grid'>{''.join(figures)}</div>")
        if len(files) > len(shown):
            out.append(f"<p class='note'>{len(files) - len(shown)} more PNGs in "
                       f"<code>{_e(folder)}/</code> are not shown.</p>")
    for name, title in EXTRA_FIGURES.items():
        path = directory / name
        if path.is_file():
            out.append(f"<h2 id='{_slug(title)}'>{_e(title)}</h2>")
            out.append(_image(path.read_bytes(), title))
    if (directory / "tensorboard").is_dir():
        out.append("<h2 id='tensorboard'>TensorBoard</h2>")
        out.append("<p>Per-task training logs and every task's validation metrics against the "
                   f"global epoch: <code>tensorboard --logdir "
                   f"{_e(str(directory / 'tensorboard'))}</code></p>")
    return out


def _files(directory: Path) -> str:
    names = ["results.json", "history.csv", "config.yaml", "environment.json", "models", "samples"]
    links = [f"<a href='{_e(_href(n))}'>{_e(n)}</a>" for n in names if _inside(directory, n)]
    return ("<h2 id='files'>Files</h2><p class='note'>In this folder: " + " · ".join(links)
            + "</p>") if links else ""


# -- comparison report -----------------------------------------------------------------------------
def _comparison_report(directory: Path) -> str:
    comparison = _load_comparison(directory / "comparison.json")
    methods = list(comparison)
    # Only a method whose name is an existing sub-folder has a run to read and a link to follow.
    folders = {m for m in methods if "/" not in m and _inside(directory, m, folder=True)}
    runs: dict[str, Results] = {}
    for method in methods:
        if method in folders and (directory / method / "results.json").is_file():
            runs[method] = _load_results(directory / method)
    first = next(iter(runs.values()), None)
    benchmark = first.config.get("benchmark", "task stream") if first else "task stream"
    title = f"{benchmark} — comparison of {len(methods)} methods"
    higher = first.higher_is_better if first else True
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='sub'>Comparison <code>{_e(directory.resolve().name)}</code> · same stream, "
        "seed and initial weights for every method</p>",
        _nav(["table", "plot"] + [f"method-{_slug(m)}" for m in methods]
             + ["config", "environment"]),
        "<h2 id='table'>Metrics</h2>",
        _comparison_table(directory, comparison, higher, folders),
        "<h2 id='plot'>Plot</h2>",
        _image(_png_or_render(directory / "comparison.png",
                              lambda: _comparison_plot(comparison)), "comparison"),
    ]
    for method in methods:
        body.append(f"<h2 id='method-{_slug(method)}'>{_e(method)}</h2>")
        results = runs.get(method)
        if results is None:
            what = "with results.json" if method in folders else "(the name is not a sub-folder)"
            body.append(f"<p class='note'>No run folder <code>{_e(method)}/</code> {what}.</p>")
            continue
        link = (f" · <a href='{_e(_href(method, REPORT_NAME))}'>full report</a>"
                if _inside(directory, f"{method}/{REPORT_NAME}") else "")
        body.append(f"<p class='note'>Run folder <a href='{_e(_href(method) + '/')}'>"
                    f"{_e(method)}/</a>{link}"
                    f" · λ = {_fmt(results.config.get('ewc_lambda'), 6)}</p>")
        body.append(_matrix_table(results))
        body.append(_image(_png_or_render(directory / method / "task_curves.png",
                                          lambda r=results: _task_curves(r)),
                           f"{method} task curves", wide=True))
    body.append("<h2 id='config'>Config</h2>")
    body.append(_shared_config(runs))
    body.append("<h2 id='environment'>Environment</h2>")
    # The comparison's own record, else the first method's (written at the end of its run).
    source = directory
    if not (directory / ENVIRONMENT_NAME).is_file():
        source = next((directory / m for m in runs if (directory / m / ENVIRONMENT_NAME).is_file()),
                      directory)
    body.append(_environment_table(_environment(source)))
    return _page(title, body)


def _comparison_table(directory: Path, comparison: dict, higher: bool, folders: set[str]) -> str:
    keys = ["acc", "bwt", "fwt", "forgetting"]
    if any("task_il_acc" in (row or {}) for row in comparison.values()):
        keys.append("task_il_acc")
    # Which value is best in each column (forgetting is lower-better; so is every metric of a
    # lower-is-better measure such as MSE).
    sign = {k: (1 if higher else -1) for k in ("acc", "bwt", "fwt", "task_il_acc")}
    sign["forgetting"] = -1
    best = {}
    for key in keys:
        values = []
        for method, row in comparison.items():
            value = (row or {}).get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                values.append((sign[key] * value, method))
        if len(values) > 1:
            best[key] = max(values)[1]
    head = "".join(f"<th>{_e(_METRIC_HELP[k][0])}</th>" for k in keys)
    rows = []
    for method, row in comparison.items():
        row = row or {}
        name = _e(method)
        if method in folders and _inside(directory, f"{method}/{REPORT_NAME}"):
            name = f"<a href='{_e(_href(method, REPORT_NAME))}'>{name}</a>"
        cells = []
        for key in keys:
            text = _fmt(row.get(key))
            cells.append(f"<td><b class='best'>{text}</b></td>" if best.get(key) == method
                         else f"<td>{text}</td>")
        rows.append(f"<tr><td class='k'>{name}</td><td>{_fmt(row.get('ewc_lambda'), 6)}</td>"
                    f"{''.join(cells)}<td>{_fmt(row.get('seconds'), 1)}</td></tr>")
    return (f"<table><tr><th class='k'>method</th><th>λ</th>{head}<th>seconds</th></tr>"
            + "".join(rows) + "</table><p class='note'>Best value per column in bold.</p>")


def _shared_config(runs: dict[str, Results]) -> str:
    if not runs:
        return "<p class='note'>No method's results were found.</p>"
    configs = [r.config for r in runs.values()]
    keys = [k for k in configs[0] if all(k in c for c in configs)]
    shared = {k: configs[0][k] for k in keys if all(c[k] == configs[0][k] for c in configs)}
    differ = [k for k in dict.fromkeys(k for c in configs for k in c) if k not in shared]
    parts = ["<h3>Settings shared by every method</h3>", _config_table(shared)]
    if differ:
        head = "".join(f"<th class='k'>{_e(m)}</th>" for m in runs)
        rows = "".join(
            f"<tr><td class='k'>{_e(k)}</td>"
            + "".join(f"<td class='v'>{_e(_value(r.config.get(k, '—')))}</td>"
                      for r in runs.values())
            + "</tr>"
            for k in differ
        )
        parts += ["<h3>Settings per method</h3>",
                  f"<div class='scroll'><table><tr><th class='k'>key</th>{head}</tr>{rows}"
                  "</table></div>"]
    return "\n".join(parts)


# -- links: relative paths inside the folder, nothing else ----------------------------------------
def _inside(directory: Path, relative: str, folder: bool = False) -> bool:
    """Whether `relative` is a plain relative path (no scheme, not absolute, no `..`, no `.`) that
    names an existing file or folder (with `folder`, an existing folder) inside `directory`."""
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


def _href(*parts: str) -> str:
    """A relative URL of path segments, each percent-encoded: a `:` can never make it a scheme
    (`javascript:`), a `/` or `..` inside a segment never a path out of the folder."""
    return "/".join(quote(part, safe="") for part in parts)


# -- reading results.json and comparison.json -----------------------------------------------------
_RESULTS_EXPECTED = "expected the results.json a run writes"


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


def _load_results(directory: Path) -> Results:
    """The `Results` of `directory/results.json`, or a one-line `SeqlError` naming the file."""
    path = directory / "results.json"
    problem = _results_problem(_read_json(path, _RESULTS_EXPECTED))
    if problem is None:
        try:
            return Results.load(path)
        except SeqlError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            problem = f"cannot be read ({error})"
    raise SeqlError(f"{path}: {problem}; {_RESULTS_EXPECTED}")


def _load_comparison(path: Path) -> dict[str, dict]:
    """`comparison.json` as `{method: {metric: number or None}}`, or a one-line `SeqlError`."""
    expected = ("expected an object keyed by method, each an object of numbers (acc, bwt, fwt, "
                "forgetting, ewc_lambda, seconds), as `seql compare` writes")
    doc = _read_json(path, expected)
    if not isinstance(doc, dict) or not doc:
        what = "an empty object" if isinstance(doc, dict) else _kind(doc)
        raise SeqlError(f"{path} holds {what}; {expected}")
    numeric = [*_METRIC_HELP, "ewc_lambda", "seconds"]
    out = {}
    for method, row in doc.items():
        row = {} if row is None else row
        if not isinstance(row, dict):
            raise SeqlError(f"{path}: method {method!r} holds {_kind(row)}; {expected}")
        for key in numeric:
            if not _number(row.get(key)):
                raise SeqlError(f"{path}: {method!r} {key} is {_kind(row[key])}, not a number; "
                                f"{expected}")
        out[method] = row
    return out


# -- pieces ----------------------------------------------------------------------------------------
def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style>"
        f"<script>{_SCRIPT}</script></head>\n<body><main>\n"
        + "\n".join(part for part in body if part)
        + "\n<p class='note'>Written by sequential_learning "
        f"{_e(_package_version())} on {_e(_dt.datetime.now().strftime('%Y-%m-%d %H:%M'))}.</p>"
        "\n</main></body></html>\n"
    )


def _nav(sections: list[str]) -> str:
    links = [f"<a href='#{_e(s)}'>{_e(s.replace('-', ' '))}</a>" for s in sections]
    return f"<p class='note'>{' · '.join(links)}</p>"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "section"


def _config_table(config: dict) -> str:
    rows = "".join(
        f"<tr><td class='k'>{_e(str(k))}</td><td class='v'>{_e(_value(v))}</td></tr>"
        for k, v in config.items()
    )
    return f"<div class='scroll'><table>{rows}</table></div>"


def _environment(directory: Path) -> dict:
    path = directory / ENVIRONMENT_NAME
    if path.is_file():
        try:
            doc = json.loads(path.read_bytes().decode("utf-8"))
            if isinstance(doc, dict):
                return doc
        except (OSError, ValueError, RecursionError):  # unreadable: record it afresh
            pass
    return {**environment_info(), "note": "captured when this report was built, not with the run"}


def _environment_table(env: dict) -> str:
    order = ["device", "python", "tensorflow", "keras", "numpy", "sequential_learning", "platform",
             "cpu", "cpu_cores", "recorded", "note"]
    keys = [k for k in order if k in env] + [k for k in env if k not in order and k != "gpus"]
    return _config_table({k: env[k] for k in keys})


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return _fmt(v, 6)
    return json.dumps(v, separators=(", ", ": "))


def _fmt(v, digits: int = 3) -> str:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        return "—" if v is None else _e(str(v))
    v = float(v)
    if not math.isfinite(v):
        return "—"
    if abs(v) >= 10 ** 5 or (digits > 3 and v != 0 and abs(v) < 10 ** (-digits)):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}f}" if digits <= 3 else f"{v:.{digits}g}"


def _sci(v) -> str:
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "—"
    return "0" if v == 0 else f"{v:.2e}"


def _pngs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.png") if p.is_file())


def _image(png: bytes, alt: str, wide: bool = False) -> str:
    data = base64.b64encode(png).decode("ascii")
    size = " class='wide'" if wide else ""
    return f"<img alt='{_e(alt)}'{size} src='data:image/png;base64,{data}'>"


def _png_or_render(path: Path, render) -> bytes:
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
    from sequential_learning import plots

    return plots.task_curves(results)


def _comparison_plot(comparison: dict):
    from sequential_learning import plots

    return plots.comparison({m: {k: v for k, v in (row or {}).items()
                                 if k in _METRIC_HELP} for m, row in comparison.items()})


def _package_version() -> str:
    module = sys.modules.get("sequential_learning")
    return getattr(module, "__version__", "")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
