"""Weight-importance methods, chosen from one enum, plug-and-play.

`EWCMethod` names every method of the reference design; `create_estimator` builds the estimator
for a method from keyword settings, and `METHODS` maps the command line's kebab-case names to
members. A method enters the registry with `register`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from sequential_learning.importance.base import ImportanceEstimator, TaskContext
from sequential_learning.importance.fisher import FISHER_MODES, FisherImportance, fisher_information
from sequential_learning.importance.penalty import PENALTY_MODES, ConsolidationPenalty
from sequential_learning.importance.simple import NoImportance, WeightDecayImportance


class EWCMethod(enum.Enum):
    """The weight-importance methods. Values are the command line's kebab-case names."""

    NONE = "none"
    WEIGHT_DECAY = "weight-decay"
    SIGN_FLIPPING = "sign-flipping"
    MOMENTUM_BASED = "momentum-based"
    WEIGHT_CHANGE = "weight-change"
    FISHER_MATRIX = "fisher"
    MAS = "mas"
    SYNAPTIC_INTELLIGENCE = "si"
    WEIGHT_MAGNITUDE = "magnitude"
    INVERSE_WEIGHT_MAGNITUDE = "inverse-magnitude"
    RANDOM = "random"


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., ImportanceEstimator]
    description: str
    options: tuple[str, ...]


_REGISTRY: dict[EWCMethod, _Entry] = {}


def register(
    method: EWCMethod,
    factory: Callable[..., ImportanceEstimator],
    description: str,
    options: tuple[str, ...] = (),
) -> None:
    """Registers the estimator factory of `method`.

    Args:
        method: the enum member.
        factory: called with the options named in `options` (keyword arguments).
        description: one line, shown by `seql list methods`.
        options: the keyword settings the factory accepts.
    """
    _REGISTRY[method] = _Entry(factory, description, tuple(options))


register(EWCMethod.NONE, NoImportance, "no consolidation: plain fine-tuning")
register(
    EWCMethod.WEIGHT_DECAY, WeightDecayImportance, "Omega = 1: L2 pull towards the last anchor"
)
register(
    EWCMethod.FISHER_MATRIX,
    lambda fisher_mode="exact", fisher_samples=1000, **_: FisherImportance(
        fisher_mode, fisher_samples
    ),
    "diagonal Fisher information (EWC); modes exact, sampled, empirical, batch",
    ("fisher_mode", "fisher_samples"),
)


def available_methods() -> list[EWCMethod]:
    """The methods that have an estimator registered, in enum order."""
    return [m for m in EWCMethod if m in _REGISTRY]


def method_description(method: EWCMethod) -> str:
    """The one-line description of a registered method."""
    return _REGISTRY[method].description


def parse_method(value: EWCMethod | str) -> EWCMethod:
    """Turns `fisher`, `FISHER_MATRIX` or `EWCMethod.FISHER_MATRIX` into a registered member.

    Raises:
        ValueError: for an unknown or unregistered method; the message lists the known ones.
    """
    if isinstance(value, EWCMethod):
        method = value
    else:
        text = str(value).strip()
        method = None
        for m in EWCMethod:
            if text.lower() in (m.value, m.name.lower(), m.name.lower().replace("_", "-")):
                method = m
                break
        if method is None:
            known = ", ".join(m.value for m in available_methods())
            raise ValueError(f"Unknown method {value!r}; known methods: {known}")
    if method not in _REGISTRY:
        known = ", ".join(m.value for m in available_methods())
        raise ValueError(f"Method {method.value!r} is not available yet; available: {known}")
    return method


def create_estimator(method: EWCMethod | str, **options) -> ImportanceEstimator:
    """Builds the estimator of `method` with the settings it accepts (others are ignored).

    Example:
    ```python
    estimator = create_estimator("fisher", fisher_mode="sampled", fisher_samples=500)
    ```
    """
    entry = _REGISTRY[parse_method(method)]
    return entry.factory(**{k: v for k, v in options.items() if k in entry.options})


__all__ = [
    "EWCMethod",
    "ImportanceEstimator",
    "TaskContext",
    "ConsolidationPenalty",
    "FisherImportance",
    "NoImportance",
    "WeightDecayImportance",
    "FISHER_MODES",
    "PENALTY_MODES",
    "available_methods",
    "create_estimator",
    "fisher_information",
    "method_description",
    "parse_method",
    "register",
]
