"""Tuned defaults applied to a run: what `RunConfig.validate` fills in where a run left it unset.

The defaults are data (`defaults/<benchmark>.yaml`, `defaults/global.yaml`), read by
`config.benchmark_defaults` and `config.method_defaults`; this module applies what they give to
a config and records where each value came from (`defaults_used`): first a benchmark's
per-method entries (`apply_method_defaults`), then the benchmark's own settings, else the global
ones, with λ and the penalty mode of the run's importance method (`resolve_defaults`).
"""

from __future__ import annotations

from typing import Any

from sequential_learning.importance import EWCMethod, default_penalty_mode, parse_method
from sequential_learning.options import Option, is_int, value_text
from sequential_learning.plugins.registry import all_options

#: Settings filled from the defaults files when a run leaves them unset (None).
RESOLVED = ("epochs", "batch_size", "learning_rate", "hidden", "num_tasks", "model",
            "optimizer", "augmentation")


def importance_method(names: list[str]) -> EWCMethod:
    """The weight-importance method among the method `names` (the first one that is one).

    Args:
        names: method names as `split_methods` gives them (`["fisher", "replay"]`); names that are
            no importance method (replay, lwf, ...) are skipped.

    Returns:
        The `EWCMethod`, or `EWCMethod.NONE` when none of `names` is one.

    Example:
    ```python
    importance_method(["fisher", "replay"])     # EWCMethod.FISHER_MATRIX
    ```
    """
    for name in names:
        try:
            method = parse_method(name)
        except ValueError:
            continue
        if method is not EWCMethod.NONE:
            return method
    return EWCMethod.NONE


def apply_method_defaults(config: Any, chosen: dict[str, tuple[Any, str]],
                          fields: dict[str, Option]) -> None:
    """Fills what a run left unset from its benchmark's per-method defaults.

    The run's own values always win: a key given (`config.given_keys`, when set; in Python, a
    value other than the option's default) is kept, and so is a value changed since an earlier
    `validate` filled it in.

    Args:
        config: the `RunConfig` being validated (changed in place: the settings, `more_options`,
            `defaults_used` and what was filled in, for the next `validate`).
        chosen: `config.method_defaults(...)` for the run: `{key: (value, source)}`, the first
            method setting a key already chosen.
        fields: `config.run_options()`: the run's settings; other keys are options of methods
            registered elsewhere (`more_options`).

    Example:
    ```python
    apply_method_defaults(config, method_defaults("seq-cifar10", ["derpp"], 200), run_options())
    ```
    """
    given = getattr(config, "given_keys", None)
    # What an earlier `validate` filled in: a value changed since then is the run's own.
    applied = getattr(config, "_method_defaults_applied", {})
    used = dict(getattr(config, "defaults_used", {}))
    for key, (value, source) in chosen.items():
        if key in fields:
            current, default = getattr(config, key), fields[key].default
        else:
            current, default = config.more_options.get(key), all_options()[key].default
        if key in applied:
            unset = current == applied[key]
        else:
            unset = key not in given if given is not None else current == default
        if not unset and current is not None:
            continue
        if key in fields:
            setattr(config, key, value)
        else:
            config.more_options[key] = value
        applied[key] = value
        used[key] = source
    config._method_defaults_applied = applied
    config.defaults_used = used


def resolve_defaults(config: Any, method: EWCMethod, own: dict, fallback: dict) -> None:
    """Fills the settings a run left as None: the benchmark's own, else the global default.

    `num_tasks` is the number of `angles` when those are given; λ is the benchmark's for the
    run's importance method, else the method's own; the penalty mode is the method's.

    Args:
        config: the `RunConfig` being validated (changed in place, with `defaults_used`).
        method: the run's importance method (`importance_method`).
        own: the benchmark's defaults (`config.benchmark_defaults(benchmark)`).
        fallback: the global defaults (`config.benchmark_defaults(None)`).

    Example:
    ```python
    resolve_defaults(config, EWCMethod.FISHER_MATRIX, benchmark_defaults("split-digits"),
                     benchmark_defaults(None))
    ```
    """
    used = dict(getattr(config, "defaults_used", {}))
    if config.num_tasks is None and config.angles is not None:
        config.num_tasks = len(config.angles)
        used["num_tasks"] = "angles"
    for key in RESOLVED:
        if getattr(config, key) is None:
            setattr(config, key, own.get(key, fallback[key]))
            used[key] = f"benchmark {config.benchmark}" if key in own else "default"
    if config.ewc_lambda is None:
        lambdas = own.get("ewc_lambda", {})
        if method.value in lambdas:
            config.ewc_lambda = float(lambdas[method.value])
            used["ewc_lambda"] = f"benchmark {config.benchmark}"
        else:
            config.ewc_lambda = float(fallback["ewc_lambda"].get(method.value, 1.0))
            used["ewc_lambda"] = f"method {method.value}"
    if config.penalty_mode is None:
        config.penalty_mode = default_penalty_mode(method)
        used["penalty_mode"] = f"method {method.value}"
    #: Where each value that was not set explicitly came from.
    config.defaults_used = used


def method_defaults_text(table: dict) -> str:
    """A benchmark's `method_defaults` on one line, for `seql list benchmarks` and the docs.

    Args:
        table: the `method_defaults` mapping of a defaults file.

    Returns:
        E.g. `"none: learning_rate=0.1; derpp@200: learning_rate=0.03, derpp_alpha=0.1"`.

    Example:
    ```python
    method_defaults_text({"derpp": {200: {"derpp_alpha": 0.1}}})  # 'derpp@200: derpp_alpha=0.1'
    ```
    """

    def settings(values: dict) -> str:
        return ", ".join(f"{k}={value_text(v)}" for k, v in values.items())

    parts = []
    for method, entry in table.items():
        plain = {k: v for k, v in entry.items() if not is_int(k)}
        if plain:
            parts.append(f"{method}: {settings(plain)}")
        parts += [f"{method}@{k}: {settings(v)}" for k, v in entry.items() if is_int(k)]
    return "; ".join(parts)
