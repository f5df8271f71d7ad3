"""Weight-importance methods, chosen from one enum, plug-and-play.

`EWCMethod` names every method of the reference design; `create_estimator` builds the estimator
for a method from keyword settings, and `METHODS` maps the command line's kebab-case names to
members. A method enters the registry with `register`.

Importing this package does not import TensorFlow: the enum, the mode names and the registry are
plain Python, the estimator classes are imported on first use (PEP 562), and each registered
factory imports its class when called. So the config and the command line can check a method's
name without loading TensorFlow.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sequential_learning.importance.modes import FISHER_MODES, PENALTY_MODES
from sequential_learning.options import (
    Option,
    bool_option,
    choice_option,
    float_option,
    int_option,
)

if TYPE_CHECKING:
    from sequential_learning.importance.base import ImportanceEstimator

_PACKAGE = "sequential_learning.importance"
#: The names re-exported from the submodules, which import TensorFlow: loaded on first access.
_LAZY = {
    "ImportanceEstimator": "base",
    "TaskContext": "base",
    "FisherImportance": "fisher",
    "fisher_information": "fisher",
    "MASImportance": "mas",
    "mas_importance": "mas",
    "ConsolidationPenalty": "penalty",
    "InverseWeightMagnitudeImportance": "simple",
    "NoImportance": "simple",
    "RandomImportance": "simple",
    "WeightDecayImportance": "simple",
    "WeightMagnitudeImportance": "simple",
    "SynapticIntelligenceImportance": "synaptic_intelligence",
    "RWalkImportance": "rwalk",
    "MomentumImportance": "trackers",
    "SignFlipImportance": "trackers",
    "WeightChangeImportance": "trackers",
}
_SUBMODULES = frozenset(
    ("base", "fisher", "mas", "modes", "penalty", "per_sample", "rwalk", "simple",
     "synaptic_intelligence", "trackers")
)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{_PACKAGE}.{_LAZY[name]}"), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    if name in _SUBMODULES:  # `importance.fisher` worked without an import when it was eager
        return importlib.import_module(f"{_PACKAGE}.{name}")
    raise AttributeError(f"module {_PACKAGE!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _load(name: str):
    """The estimator class or function `name` of `_LAZY`, imported now."""
    return __getattr__(name)


class EWCMethod(enum.Enum):
    """The weight-importance methods. Values are the command line's kebab-case names.

    Args:
        value: a member's value, e.g. `"fisher"` (use `parse_method` for member names and
            aliases such as `"FISHER_MATRIX"`).

    Example:
    ```python
    EWCMethod("si") is EWCMethod.SYNAPTIC_INTELLIGENCE    # True
    EWCMethod.FISHER_MATRIX.value                         # 'fisher'
    ```
    """

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
    RWALK = "rwalk"


# -- the options, each declared once (the EWC family's plugins and `seql` take them from here) --
#: Options of the consolidation penalty, shared by every method of the family.
EWC_LAMBDA = float_option("ewc_lambda", None, "penalty strength lambda", flag="--lambda",
                          unset="the method's own")
FISHER_SAMPLES = int_option("fisher_samples", 1000, "training inputs used to estimate importance")
PENALTY_MODE = choice_option("penalty_mode", None, "separate terms per task, online, or latest "
                             "(the latest task's importance only)",
                             PENALTY_MODES, unset="the method's own: online for mas and si, "
                             "latest for rwalk, as their papers define them; separate otherwise")
GAMMA = float_option("gamma", 1.0, "online decay", strict=True, high=1.0)
NORMALIZE_IMPORTANCE = bool_option("normalize_importance", False,
                                   "divide each task's importance by its maximum")
PENALTY_OPTIONS = (EWC_LAMBDA, FISHER_SAMPLES, PENALTY_MODE, GAMMA, NORMALIZE_IMPORTANCE)
#: Options of single estimators.
FISHER_MODE = choice_option("fisher_mode", "exact", "exact, sampled, empirical, batch (the "
                            "Fisher information)", FISHER_MODES)
SI_XI = float_option("xi", 0.1, "synaptic intelligence's damping xi", strict=True, flag="--xi",
                     key="si_xi")
WEIGHT_CHANGE_NET = bool_option("net", False, "|theta_end - theta_start| instead of the path "
                                "length", flag="--net-change", key="weight_change_net")
INVERSE_MAGNITUDE_EPSILON = float_option("epsilon", 1e-2, "epsilon in 1/(|theta| + epsilon)", strict=True, flag="--epsilon",
                                         key="inverse_magnitude_epsilon")
RANDOM_SEED = int_option("seed", None, "seed of the random importance", low=0, none=True,
                         flag="", unset="the run's")


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., ImportanceEstimator]
    description: str
    options: tuple[Option, ...]
    penalty_mode: str = "separate"


_REGISTRY: dict[EWCMethod, _Entry] = {}


def register(
    method: EWCMethod,
    factory: Callable[..., ImportanceEstimator],
    description: str,
    options: Sequence[Option | str] = (),
    penalty_mode: str = "separate",
) -> None:
    """Registers the estimator factory of `method` (replacing any registered before).

    Args:
        method: the enum member.
        factory: an estimator class or any callable returning an estimator; called with the
            options of `options` that are given (keyword arguments). The built-in methods
            register factories that import their (TensorFlow) class only when called, so that
            the registry stays cheap to import; a plug-in may do the same.
        description: one line, shown by `seql list methods`.
        options: the `Option`s the factory accepts (a plain name: an option without a check).
        penalty_mode: the penalty the method's paper defines, used when a run does not choose
            one: `separate` (a term per task, EWC), `online` (one cumulative Ω anchored at the
            latest weights: MAS and SI, with γ = 1) or `latest` (the latest task's Ω only,
            anchored at the latest weights: RWalk, whose Ω covers every task so far).

    Returns:
        None.

    Raises:
        ValueError: `penalty_mode` is not one of `PENALTY_MODES`.

    Example:
    ```python
    register(EWCMethod.RANDOM, lambda seed=None: MyRandomImportance(seed),
             "Omega ~ U(0, 1) per weight, seeded", (RANDOM_SEED,))
    ```
    """
    if penalty_mode not in PENALTY_MODES:
        raise ValueError(f"Unknown penalty mode {penalty_mode!r}; expected one of {PENALTY_MODES}")
    declared = tuple(o if isinstance(o, Option) else Option(o, None, o) for o in options)
    _REGISTRY[method] = _Entry(factory, description, declared, penalty_mode)


def _built_in(name: str, *options: Option) -> Callable[..., ImportanceEstimator]:
    """A factory that imports the estimator class `name` when called and passes it `options`
    in order, each given value or the option's default."""

    def factory(**values) -> ImportanceEstimator:
        return _load(name)(*(values.get(o.name, o.default) for o in options))

    factory.__name__ = factory.__qualname__ = name
    return factory


for _method, _class, _options, _mode, _description in (
    (EWCMethod.NONE, "NoImportance", (), "separate", "no consolidation: plain fine-tuning"),
    (EWCMethod.WEIGHT_DECAY, "WeightDecayImportance", (), "separate",
     "Omega = 1: L2 pull towards the last anchor"),
    (EWCMethod.SIGN_FLIPPING, "SignFlipImportance", (), "separate",
     "Omega = 1 / (1 + sign flips of the weight between training steps)"),
    (EWCMethod.MOMENTUM_BASED, "MomentumImportance", (), "separate",
     "Omega = 1 / (1 + reversals of the weight's update direction between steps)"),
    (EWCMethod.WEIGHT_CHANGE, "WeightChangeImportance", (WEIGHT_CHANGE_NET,), "separate",
     "Omega = 1 / (1 + path length sum |dtheta|); option net: |theta_end - theta_start|"),
    (EWCMethod.FISHER_MATRIX, "FisherImportance", (FISHER_MODE, FISHER_SAMPLES), "separate",
     "diagonal Fisher information (EWC); modes exact, sampled, empirical, batch"),
    (EWCMethod.MAS, "MASImportance", (FISHER_SAMPLES,), "online",
     "memory aware synapses: mean per-sample |d ||f(x)||^2 / dtheta| (no labels); "
     "penalty online"),
    (EWCMethod.SYNAPTIC_INTELLIGENCE, "SynapticIntelligenceImportance", (SI_XI,), "online",
     "synaptic intelligence: path integral max(0, -sum g dtheta) / (dtheta_task^2 + xi); "
     "penalty online"),
    (EWCMethod.WEIGHT_MAGNITUDE, "WeightMagnitudeImportance", (), "separate",
     "Omega = |theta| (a control)"),
    (EWCMethod.INVERSE_WEIGHT_MAGNITUDE, "InverseWeightMagnitudeImportance",
     (INVERSE_MAGNITUDE_EPSILON,), "separate", "Omega = 1 / (|theta| + epsilon) (a control)"),
    (EWCMethod.RANDOM, "RandomImportance", (RANDOM_SEED,), "separate",
     "Omega ~ U(0, 1) per weight, seeded (a control)"),
    (EWCMethod.RWALK, "RWalkImportance", (), "latest",
     "Riemannian walk: EWC++'s running Fisher plus the averaged path-integral score, each "
     "normalised; penalty latest"),
):
    register(_method, _built_in(_class, *_options), _description, _options, _mode)


def available_methods() -> list[EWCMethod]:
    """The methods that have an estimator registered, in enum order.

    Returns:
        A list of `EWCMethod` members (all of them, with the built-in registrations).

    Example:
    ```python
    [m.value for m in available_methods()][:3]    # ['none', 'weight-decay', 'sign-flipping']
    ```
    """
    return [m for m in EWCMethod if m in _REGISTRY]


def method_options(method: EWCMethod | str) -> tuple[Option, ...]:
    """The estimator's own options (the penalty's, `PENALTY_OPTIONS`, are shared by every method).

    Args:
        method: a member, or a name `parse_method` takes.

    Returns:
        A tuple of `Option`s, in the order the factory takes them.

    Raises:
        ValueError: an unknown or unregistered method.

    Example:
    ```python
    [o.name for o in method_options("fisher")]    # ['fisher_mode', 'fisher_samples']
    ```
    """
    return _REGISTRY[parse_method(method)].options


def method_description(method: EWCMethod) -> str:
    """The one-line description of a registered method, as `seql list methods` shows it.

    Args:
        method: a registered member (KeyError otherwise).

    Returns:
        The description.

    Example:
    ```python
    method_description(EWCMethod.WEIGHT_MAGNITUDE)    # 'Omega = |theta| (a control)'
    ```
    """
    return _REGISTRY[method].description


def default_penalty_mode(method: EWCMethod | str) -> str:
    """The penalty mode a method's paper defines (`separate`, `online` or `latest`).

    EWC keeps a term per task (`separate`); MAS (Aljundi et al. 2018) and SI (Zenke et al. 2017)
    accumulate Ω over tasks and anchor it at the weights after the latest task, which is the
    `online` mode with γ = 1. RWalk (Chaudhry et al. 2018) keeps one Ω that already covers every
    task so far, anchored at the latest weights: the `latest` mode. The other methods have no
    paper of their own and use `separate`.

    Args:
        method: a member, or a name `parse_method` takes.

    Returns:
        `"separate"`, `"online"` or `"latest"`.

    Raises:
        ValueError: an unknown or unregistered method.

    Example:
    ```python
    default_penalty_mode("fisher"), default_penalty_mode("mas")    # ('separate', 'online')
    ```
    """
    return _REGISTRY[parse_method(method)].penalty_mode


def parse_method(value: EWCMethod | str) -> EWCMethod:
    """Turns `fisher`, `FISHER_MATRIX` or `EWCMethod.FISHER_MATRIX` into a registered member.

    A string matches a member's value or its name in any case, with `_` or `-`; surrounding
    spaces are ignored.

    Args:
        value: a member, or its value or name.

    Returns:
        The `EWCMethod` member.

    Raises:
        ValueError: for an unknown or unregistered method; the message lists the known ones.

    Example:
    ```python
    parse_method("FISHER_MATRIX"), parse_method("si")
    # (EWCMethod.FISHER_MATRIX, EWCMethod.SYNAPTIC_INTELLIGENCE)
    ```
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

    Args:
        method: a member, or a name `parse_method` takes.
        **options: settings by option name (`fisher_mode`, `fisher_samples`, `xi`, ...); those
            the method does not declare are ignored, and those not given take their defaults.

    Returns:
        An `ImportanceEstimator` (this imports TensorFlow).

    Raises:
        ValueError: an unknown or unregistered method.

    Example:
    ```python
    estimator = create_estimator("fisher", fisher_mode="sampled", fisher_samples=500)
    ```
    """
    entry = _REGISTRY[parse_method(method)]
    return entry.factory(**{o.name: options[o.name] for o in entry.options if o.name in options})


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
    "RWalkImportance",
    "SignFlipImportance",
    "SynapticIntelligenceImportance",
    "WeightChangeImportance",
    "WeightDecayImportance",
    "WeightMagnitudeImportance",
    "FISHER_MODES",
    "PENALTY_MODES",
    "PENALTY_OPTIONS",
    "available_methods",
    "create_estimator",
    "default_penalty_mode",
    "fisher_information",
    "mas_importance",
    "method_description",
    "method_options",
    "parse_method",
    "register",
]
