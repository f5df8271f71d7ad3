"""The options of an ablation, and the checks every entry point runs on them.

`level` (what one ranked item is), `how` (Ω's reduction per unit), `scope` (rank the whole model
or each layer), `order` (which items go first) and `action` (what replaces them), each with its
allowed values; `check_fraction` and `parse_fractions` for the fractions replaced.

Example:
```python
check_options("unit", "layer", "low", "zero", "mean")      # a ValueError names a bad one
parse_fractions("0.5,0.1,0.2")                            # [0.1, 0.2, 0.5]
```
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

LEVELS: tuple[str, ...] = ("weight", "unit", "filter")
HOWS: tuple[str, ...] = ("mean", "min", "max")
SCOPES: tuple[str, ...] = ("model", "layer")
ORDERS: tuple[str, ...] = ("low", "high", "random", "magnitude")
ACTIONS: tuple[str, ...] = ("zero", "noise", "anchor")

Importance = Mapping[str, Any] | tuple[Sequence[str], Sequence[Any]]


def check_choice(value: Any, allowed: Sequence[str], what: str) -> str:
    """Checks that an option's value is one of those allowed.

    Args:
        value: the value given.
        allowed: the allowed values.
        what: the option's name, for the message.

    Returns:
        `value`, unchanged.

    Raises:
        ValueError: naming the option and the allowed values.

    Example:
    ```python
    check_choice("low", ORDERS, "order")   # "low"
    ```
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"Unknown {what} {value!r}; expected one of: {', '.join(allowed)}")
    return value


def check_fraction(fraction: Any, what: str = "fraction") -> float:
    """`fraction` as a float in [0, 1], or a ValueError naming it.

    Args:
        fraction: the value given.
        what: its name, for the message.

    Returns:
        The fraction as a float.

    Example:
    ```python
    check_fraction(0.2)   # 0.2; check_fraction(2) raises
    ```
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
        math.isfinite(float(fraction)) and 0.0 <= float(fraction) <= 1.0
    ):
        raise ValueError(f"{what} must be a number in [0, 1], got {fraction!r}")
    return float(fraction)


def parse_fractions(text: str | Sequence[float]) -> list[float]:
    """`"0.1,0.2,0.5"` (or a list) as checked fractions, sorted, without duplicates.

    Args:
        text: comma-separated fractions, or a sequence of numbers.

    Returns:
        The fractions as floats in [0, 1], ascending.

    Raises:
        ValueError: for no fraction, or one that is not a number in [0, 1].

    Example:
    ```python
    parse_fractions("0.5,0.1,0.2")   # [0.1, 0.2, 0.5]
    ```
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        values = []
        for p in parts:
            try:
                values.append(float(p))
            except ValueError:
                raise ValueError(f"fractions: {p!r} is not a number (give e.g. 0.1,0.2,0.5)") from None
    else:
        values = list(text)
    if not values:
        raise ValueError("fractions: give at least one fraction in [0, 1], e.g. 0.1,0.2,0.5")
    return sorted({check_fraction(v, "fractions: each fraction") for v in values})


def check_options(level, scope, order, action, how):
    """Checks an ablation's options together (a ValueError names the first bad one).

    Args:
        level: one of `LEVELS` (`weight`, `unit`, `filter`).
        scope: one of `SCOPES` (`model`, `layer`).
        order: one of `ORDERS` (`low`, `high`, `random`, `magnitude`).
        action: one of `ACTIONS` (`zero`, `noise`, `anchor`).
        how: one of `HOWS` (`mean`, `min`, `max`).

    Returns:
        None.

    Example:
    ```python
    check_options("unit", "layer", "low", "zero", "mean")
    ```
    """
    check_choice(level, LEVELS, "level")
    check_choice(scope, SCOPES, "scope")
    check_choice(order, ORDERS, "order")
    check_choice(action, ACTIONS, "action")
    check_choice(how, HOWS, "how")
