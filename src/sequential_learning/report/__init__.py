"""The HTML report of a run or a comparison, and the figures it shows.

`write_report(directory)` writes a self-contained `report.html` into a run folder (with
`results.json`) or a `seql compare` folder (with `comparison.json`); `build_report_html` returns
the HTML without writing it. The markup lives in jinja2 templates (`templates/`), rendered with
autoescape on; `report.py` reads and checks the folder's files and prepares the values.

Modules:
    report: `write_report`, `build_report_html` (data preparation and rendering).
    inputs: reading and checking `results.json` / `comparison.json`; links inside the folder.
    environment: the versions and device recorded in `environment.json`.
    plots: the figures (task curves, accuracy matrix, comparison, Ω, λ sweep), also
        `sequential_learning.plots`.
    templates/: the page, the run and comparison reports, shared macros, style and script.

Example:
```python
from sequential_learning.report import write_report
write_report("runs/mine")   # runs/mine/report.html
```
"""

from __future__ import annotations

from sequential_learning.report.environment import ENVIRONMENT_NAME, environment_info
from sequential_learning.report.report import (
    EXTRA_FIGURES,
    FIGURE_FOLDERS,
    MAX_IMAGES_PER_SECTION,
    REPORT_NAME,
    SCRIPT_HASH,
    build_report_html,
    write_report,
)

__all__ = [
    "ENVIRONMENT_NAME",
    "EXTRA_FIGURES",
    "FIGURE_FOLDERS",
    "MAX_IMAGES_PER_SECTION",
    "REPORT_NAME",
    "SCRIPT_HASH",
    "build_report_html",
    "environment_info",
    "write_report",
]
