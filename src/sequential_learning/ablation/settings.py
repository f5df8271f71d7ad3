"""The settings of `seql augment` in output names and in words.

Files are named by every setting that changes them (`augment_settings_suffix`), so runs with
other settings never replace each other; `augment_settings_label` says the settings in words.

Example:
```python
augment_settings_suffix({**AUGMENT_DEFAULTS, "importance_task": 2})   # '_omega-task2'
```
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sequential_learning.ablation.options import ORDERS

#: `augment_run`'s defaults: settings equal to these leave no mark in the output names.
AUGMENT_DEFAULTS: dict[str, Any] = {
    "fractions": [0.1, 0.2, 0.5], "level": "weight", "action": "zero", "scope": "model",
    "orders": list(ORDERS), "how": "mean", "importance_task": None, "after_task": None,
    "data": "benchmark", "seed": 0,
}
#: Output names longer than this use a short hash of the settings instead of naming each one.
MAX_NAME_LENGTH = 80


def _fraction_text(fractions: Sequence[float]) -> str:
    return "-".join(f"{f:g}" for f in fractions)


def augment_settings_suffix(settings: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """The part of an output name that says which settings differ from `AUGMENT_DEFAULTS`.

    Args:
        settings: `augment_run`'s settings (`level`, `action` are named by the stem itself);
            `data` is the data actually evaluated on (`"benchmark"` or `"samples"`).
        keys: only these settings (default: every one but `level` and `action`).

    Returns:
        `""` for the defaults, else e.g. `"_omega-task2_after-task3_samples"`; when that would
        be long, `"_s"` and 8 hex digits of a hash of the settings (stable across runs).

    Example:
    ```python
    >>> augment_settings_suffix({**AUGMENT_DEFAULTS, "importance_task": 2, "how": "max"})
    '_how-max_omega-task2'
    ```
    """
    keys = [k for k in AUGMENT_DEFAULTS if k not in ("level", "action")] if keys is None else keys
    changed = {k: settings.get(k) for k in keys if settings.get(k) != AUGMENT_DEFAULTS[k]}
    words = {
        "scope": lambda v: f"per-{v}",  # e.g. ablation_zero_weight_per-layer
        "how": lambda v: f"how-{v}",
        "importance_task": lambda v: f"omega-task{v}",
        "after_task": lambda v: f"after-task{v}",
        "orders": lambda v: "orders-" + "-".join(v),
        "fractions": lambda v: "f" + _fraction_text(v),
        "data": lambda v: str(v),
        "seed": lambda v: f"seed{v}",
    }
    parts = [words[k](v) for k, v in changed.items()]
    suffix = "".join(f"_{p}" for p in parts)
    if len(suffix) > MAX_NAME_LENGTH - 20:
        import hashlib

        text = json.dumps({k: changed[k] for k in sorted(changed)}, sort_keys=True)
        suffix = "_s" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return suffix


def settings_detail(settings: Mapping[str, Any]) -> str:
    """An ablation's settings as one line for reports and plot titles.

    Args:
        settings: the table's `settings` (`importance_task`, `after_task`, `how`, `orders`,
            `fractions`, `seed`, `data`).

    Returns:
        e.g. `"Ω summed over tasks, final models, how mean, orders low/high, fractions 0.1/0.2,
        seed 0, evaluated on the benchmark validation data"`.

    Example:
    ```python
    print(settings_detail(table["settings"]))
    ```
    """
    omega = ("Ω summed over tasks" if settings.get("importance_task") is None
             else f"Ω of task {settings['importance_task']}")
    models = ("final models" if settings.get("after_task") is None
              else f"models after task {settings['after_task']}")
    return (f"{omega}, {models}, how {settings['how']}, orders {'/'.join(settings['orders'])}, "
            f"fractions {_fraction_text(settings['fractions']).replace('-', '/')}, seed "
            f"{settings['seed']}, evaluated on the {settings['data']}")


def augment_settings_label(settings: Mapping[str, Any]) -> str:
    """The settings in words, for a figure or a report.

    Args:
        settings: `augment_run`'s settings (as in the table's `augment_settings`).

    Returns:
        e.g. `"zero, level weight, scope model, Ω summed over tasks, final models, how mean,
        orders low/high/random/magnitude, fractions 0.1/0.2/0.5, seed 0, evaluated on the
        benchmark"`.

    Example:
    ```python
    >>> augment_settings_label({**AUGMENT_DEFAULTS, "after_task": 2})[:40]
    'zero, level weight, scope model, Ω summe'
    ```
    """
    return (f"{settings['action']}, level {settings['level']}, scope {settings['scope']}, "
            + settings_detail(settings))
