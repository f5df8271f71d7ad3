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
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"Unknown {what} {value!r}; expected one of: {', '.join(allowed)}")
    return value


def check_fraction(fraction: Any, what: str = "fraction") -> float:
    """`fraction` as a float in [0, 1], or a ValueError naming it."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
        math.isfinite(float(fraction)) and 0.0 <= float(fraction) <= 1.0
    ):
        raise ValueError(f"{what} must be a number in [0, 1], got {fraction!r}")
    return float(fraction)


def parse_fractions(text: str | Sequence[float]) -> list[float]:
    """`"0.1,0.2,0.5"` (or a list) as checked fractions, sorted, without duplicates."""
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
    check_choice(level, LEVELS, "level")
    check_choice(scope, SCOPES, "scope")
    check_choice(order, ORDERS, "order")
    check_choice(action, ACTIONS, "action")
    check_choice(how, HOWS, "how")
