"""A run's method: the `method` argument (an `EWCMethod`, names, plugins) as checked plugins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sequential_learning.importance import EWCMethod, parse_method
from sequential_learning.plugins.base import Plugin, check_combination


def resolve_method(method: Any, **options: Any) -> tuple[list[Plugin], EWCMethod | str, str]:
    """The plugins of `method`, checked to combine, with the method and its name.

    Args:
        method: an `EWCMethod`, a registered name (`"fisher"`), names joined with `+`
            (`"fisher+replay"`), a `Plugin`, a `{"name": ..., option: value}` mapping, or a list
            of these.
        **options: the methods' options (each plugin takes the ones it declares).

    Returns:
        `(plugins, method, name)`: the method is the `EWCMethod` when it is exactly one of them
        (or none), else its name; the name joins the plugins' names with `+` (`"none"`).

    Example:
    ```python
    plugins, method, name = resolve_method("fisher+replay", ewc_lambda=100.0, memory=500)
    ```
    """
    from sequential_learning.plugins import make_plugins

    plugins: list[Plugin] = make_plugins(method, **options)
    check_combination(plugins)
    name = "+".join(p.name for p in plugins) or "none"
    return plugins, _method_of(method, plugins), name


def _method_of(method: Any, plugins: Sequence[Plugin]) -> EWCMethod | str:
    """The `EWCMethod` when the method is exactly one of them (or none), else its name."""
    if isinstance(method, EWCMethod):
        return method
    if isinstance(method, str) and "+" not in method:
        try:
            return parse_method(method)
        except ValueError:
            pass
    return "+".join(p.name for p in plugins) or EWCMethod.NONE
