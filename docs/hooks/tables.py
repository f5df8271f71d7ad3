"""mkdocs hook: the methods and benchmarks tables, written from the registries.

A page that holds `<!-- seql:methods -->` or `<!-- seql:benchmarks -->` gets the table in its
place, generated from `sequential_learning.plugins.available_methods()` (every method with its
options, as `seql list methods` shows them), `data.benchmarks.BENCHMARKS` and the tuned defaults
in `sequential_learning/defaults/*.yaml`. A method or benchmark registered in one place is
therefore documented without editing a page. The registry imports no TensorFlow, so this is fast.
"""

from __future__ import annotations

from pathlib import Path

import yaml

_DEFAULTS = Path(__file__).resolve().parents[2] / "src" / "sequential_learning" / "defaults"


def _defaults(name: str) -> dict:
    path = _DEFAULTS / f"{name}.yaml"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _option(option) -> str:
    default = option.unset if option.default is None else option.default
    where = option.cli_flag or option.name
    return f"`{where}` ({_cell(default)})"


def methods_table() -> str:
    """Markdown table of every registered method, its family, default λ and options."""
    from sequential_learning.plugins import available_methods

    lambdas = _defaults("global").get("ewc_lambda", {})
    specs = available_methods()
    families = [set(s.options) for s in specs if s.family == "importance"]
    shared = set.intersection(*families) if families else set()
    ordered = [o for s in specs for o in s.options if o in shared]
    shared_text = ", ".join(_option(o) for o in dict.fromkeys(ordered))
    rows = [f"Every weight-importance method also takes the penalty's options: {shared_text}.", "",
            "| method | family | default λ | options (default) | what it does |",
            "| --- | --- | --- | --- | --- |"]
    for spec in specs:
        lam = lambdas.get(spec.name)
        lam = "" if lam is None or spec.family != "importance" else f"{lam:g}"
        options = ", ".join(_option(o) for o in spec.options if o not in shared) or "—"
        rows.append(f"| `{spec.name}` | {spec.family} | {lam} | {options} | "
                    f"{_cell(spec.description)} |")
    return "\n".join(rows)


def benchmarks_table() -> str:
    """Markdown table of every named benchmark with its scenarios and tuned defaults."""
    from sequential_learning.data.benchmarks import BENCHMARKS

    rows = ["| name | stream | data | scenarios (default first) | tuned defaults | description |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, spec in BENCHMARKS.items():
        tuned = _defaults(name)
        per_method = tuned.pop("method_defaults", None)
        tuned_text = ", ".join(
            f"{k}: {', '.join(f'{m} {v:g}' for m, v in value.items())}"
            if isinstance(value, dict) else f"{k}: {value}" for k, value in tuned.items()) or "—"
        if per_method:
            from sequential_learning.config import method_defaults_text

            tuned_text += f"; per method (and buffer): {method_defaults_text(per_method)}"
        rows.append(f"| `{name}` | {spec.kind} | {spec.dataset or '—'} | "
                    f"{', '.join(spec.scenarios)} | {_cell(tuned_text)} | "
                    f"{_cell(spec.description)} |")
    return "\n".join(rows)


_TABLES = {"<!-- seql:methods -->": methods_table, "<!-- seql:benchmarks -->": benchmarks_table}


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 - mkdocs' hook signature
    for marker, make in _TABLES.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
