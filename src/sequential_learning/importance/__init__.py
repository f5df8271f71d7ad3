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
from sequential_learning.importance.mas import MASImportance, mas_importance
from sequential_learning.importance.penalty import PENALTY_MODES, ConsolidationPenalty
from sequential_learning.importance.simple import (
    InverseWeightMagnitudeImportance,
    NoImportance,
    RandomImportance,
    WeightDecayImportance,
    WeightMagnitudeImportance,
)
from sequential_learning.importance.synaptic_intelligence import SynapticIntelligenceImportance
from sequential_learning.importance.trackers import (
    MomentumImportance,
    SignFlipImportance,
    WeightChangeImportance,
)


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
    penalty_mode: str = "separate"


_REGISTRY: dict[EWCMethod, _Entry] = {}


def register(
    method: EWCMethod,
    factory: Callable[..., ImportanceEstimator],
    description: str,
    options: tuple[str, ...] = (),
    penalty_mode: str = "separate",
) -> None:
    """Registers the estimator factory of `method`.

    Args:
        method: the enum member.
        factory: called with the options named in `options` (keyword arguments).
        description: one line, shown by `seql list methods`.
        options: the keyword settings the factory accepts.
        penalty_mode: the penalty the method's paper defines, used when a run does not choose
            one: `separate` (a term per task, EWC) or `online` (one cumulative Ω anchored at the
            latest weights: MAS and SI, with γ = 1).
    """
    if penalty_mode not in PENALTY_MODES:
        raise ValueError(f"Unknown penalty mode {penalty_mode!r}; expected one of {PENALTY_MODES}")
    _REGISTRY[method] = _Entry(factory, description, tuple(options), penalty_mode)


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
register(
    EWCMethod.SIGN_FLIPPING,
    SignFlipImportance,
    "Omega = 1 / (1 + sign flips of the weight between training steps)",
)
register(
    EWCMethod.MOMENTUM_BASED,
    MomentumImportance,
    "Omega = 1 / (1 + reversals of the weight's update direction between steps)",
)
register(
    EWCMethod.WEIGHT_CHANGE,
    lambda net=False, **_: WeightChangeImportance(net),
    "Omega = 1 / (1 + path length sum |dtheta|); option net: |theta_end - theta_start|",
    ("net",),
)
register(
    EWCMethod.MAS,
    lambda fisher_samples=1000, **_: MASImportance(fisher_samples),
    "memory aware synapses: mean per-sample |d ||f(x)||^2 / dtheta| (no labels); "
    "penalty online",
    ("fisher_samples",),
    penalty_mode="online",
)
register(
    EWCMethod.SYNAPTIC_INTELLIGENCE,
    lambda xi=0.1, **_: SynapticIntelligenceImportance(xi),
    "synaptic intelligence: path integral max(0, -sum g dtheta) / (dtheta_task^2 + xi); "
    "penalty online",
    ("xi",),
    penalty_mode="online",
)
register(
    EWCMethod.WEIGHT_MAGNITUDE, WeightMagnitudeImportance, "Omega = |theta| (a control)"
)
register(
    EWCMethod.INVERSE_WEIGHT_MAGNITUDE,
    lambda epsilon=1e-2, **_: InverseWeightMagnitudeImportance(epsilon),
    "Omega = 1 / (|theta| + epsilon) (a control)",
    ("epsilon",),
)
register(
    EWCMethod.RANDOM,
    lambda seed=None, **_: RandomImportance(seed),
    "Omega ~ U(0, 1) per weight, seeded (a control)",
    ("seed",),
)


def available_methods() -> list[EWCMethod]:
    """The methods that have an estimator registered, in enum order."""
    return [m for m in EWCMethod if m in _REGISTRY]


def method_description(method: EWCMethod) -> str:
    """The one-line description of a registered method."""
    return _REGISTRY[method].description


def default_penalty_mode(method: EWCMethod | str) -> str:
    """The penalty mode a method's paper defines (`separate` or `online`).

    EWC keeps a term per task (`separate`); MAS (Aljundi et al. 2018) and SI (Zenke et al. 2017)
    accumulate Ω over tasks and anchor it at the weights after the latest task, which is the
    `online` mode with γ = 1. The other methods have no paper of their own and use `separate`.
    """
    return _REGISTRY[parse_method(method)].penalty_mode


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
    "InverseWeightMagnitudeImportance",
    "MASImportance",
    "MomentumImportance",
    "NoImportance",
    "RandomImportance",
    "SignFlipImportance",
    "SynapticIntelligenceImportance",
    "WeightChangeImportance",
    "WeightDecayImportance",
    "WeightMagnitudeImportance",
    "FISHER_MODES",
    "PENALTY_MODES",
    "available_methods",
    "create_estimator",
    "default_penalty_mode",
    "fisher_information",
    "mas_importance",
    "method_description",
    "parse_method",
    "register",
]
