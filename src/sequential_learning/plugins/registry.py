"""The open, string-keyed registry of methods: every name `--method` and `plugins:` accept.

A method is a factory that makes zero or more `Plugin`s from keyword options. The EWC family
(`fisher`, `mas`, `si`, ...: each `EWCMethod`) makes one `Consolidation` plugin, `none` makes none,
and `replay`, `lwf`, `a-gem`, `derpp` (DER++), `joint` and `cumulative` make their own. Methods combine
with `+` (`fisher+replay`). A user registers a method without editing the package:

```python
import sequential_learning as sl

sl.plugins.register_method("count-steps", CountSteps, "counts training steps")
manager = sl.SequentialLearningManager(base, tasks, method="fisher+count-steps")
```

or, for the command line, from an installed package's entry point in the group
`sequential_learning.methods` (the entry point is a callable that registers its methods).

This module imports no TensorFlow: `seql list methods` and argument checks answer at once.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ENTRY_POINT_GROUP = "sequential_learning.methods"


@dataclass(frozen=True)
class Option:
    """One keyword option of a method, with its default and its check.

    Attributes:
        name: the keyword (snake case); the config key and, in kebab case, the CLI flag.
        default: its value when not given.
        help: one line.
        check: returns whether a value is allowed.
        expected: what is allowed, for the error message ("an integer >= 1").
        flag: its `seql` option when that is not `--` + the name in kebab case; "" when the
            command line has none (Python and config files only).
        unset: what a default of None means, for listings ("the batch size").
    """

    name: str
    default: Any
    help: str
    check: Callable[[Any], bool]
    expected: str
    flag: str | None = None
    unset: str = "none"

    @property
    def cli_flag(self) -> str:
        """The `seql` option that sets it ("" for none)."""
        return self.flag if self.flag is not None else "--" + self.name.replace("_", "-")

    def validate(self, value: Any) -> Any:
        """Returns `value` if allowed, else raises ValueError naming the option."""
        if not self.check(value):
            raise ValueError(f"{self.name}: {value!r} is not allowed; expected {self.expected}")
        return value


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes:
        name: its name (kebab case), e.g. `replay`.
        factory: called with the options it declares (keywords); returns a `Plugin`, a list of
            them, or None.
        description: one line, for `seql list methods`.
        options: the `Option`s it accepts.
        family: `importance`, `replay`, `distillation`, `projection`, `reference` or `other`.
    """

    name: str
    factory: Callable[..., Any]
    description: str
    options: tuple[Option, ...] = ()
    family: str = "other"

    def make(self, **options) -> list:
        """The method's plugins, made with the options it declares (others are ignored)."""
        own = {o.name: o for o in self.options}
        kwargs = {k: own[k].validate(v) for k, v in options.items() if k in own and v is not None}
        made = self.factory(**kwargs)
        if made is None:
            return []
        return list(made) if isinstance(made, list | tuple) else [made]


_METHODS: dict[str, MethodSpec] = {}
_entry_points_loaded = False


def register_method(
    name: str,
    factory: Callable[..., Any],
    description: str,
    options: Sequence[Option] = (),
    family: str = "other",
    replace: bool = False,
) -> MethodSpec:
    """Registers a method under `name`.

    Args:
        name: the name `--method` takes (kebab case, no `+` or `,`).
        factory: called with the declared options as keywords; returns a `Plugin`, a list of
            `Plugin`s, or None (no plugin: plain fine-tuning).
        description: one line, shown by `seql list methods`.
        options: the `Option`s the factory accepts.
        family: what kind of method it is (shown in listings).
        replace: allow replacing a method already registered under `name`.

    Returns:
        The `MethodSpec`.

    Example:
    ```python
    register_method("my-replay", lambda memory=200: MyReplay(memory), "my replay",
                    options=[memory_option()])
    ```
    """
    name = str(name).strip().lower()
    if not name or any(c in name for c in "+, "):
        raise ValueError(f"method name {name!r}: use letters, digits and '-' (no '+', ',' or space)")
    if name in _METHODS and not replace:
        raise ValueError(f"method {name!r} is already registered (pass replace=True to replace it)")
    spec = MethodSpec(name, factory, description, tuple(options), family)
    _METHODS[name] = spec
    return spec


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()()


def available_methods() -> list[MethodSpec]:
    """Every registered method (built-in first, in registration order)."""
    _builtins()
    _load_entry_points()
    return list(_METHODS.values())


def method_spec(name: str) -> MethodSpec:
    """The registered method called `name` (aliases: `FISHER_MATRIX`, `ewc` for `fisher`, ...).

    Raises:
        ValueError: for an unknown name; the message lists the known ones.
    """
    _builtins()
    key = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower().replace("_", "-"))
    if key not in _METHODS:
        _load_entry_points()
    if key not in _METHODS:
        known = ", ".join(_METHODS)
        raise ValueError(f"Unknown method {name!r}; known methods: {known}")
    return _METHODS[key]


def split_methods(text: str) -> list[str]:
    """`"fisher+replay"` -> `["fisher", "replay"]`, each checked and normalised."""
    # DER++ is named `derpp`, as in Mammoth; `der++` is read as that name.
    parts = [p.strip() for p in re.sub(r"(?i)der\+\+", "derpp", str(text)).split("+")]
    if not all(parts):
        raise ValueError(f"method {text!r}: join methods with '+', e.g. fisher+replay")
    return [method_spec(p).name for p in parts]


def parse_mapping(item: dict) -> tuple[MethodSpec, dict]:
    """A method given as `{"name": ..., option: value}`: its spec and its checked options.

    Raises:
        ValueError: without a name, for an unknown method, or an option it does not have or a
            value that option does not allow (one line, naming them).
    """
    if not isinstance(item.get("name"), str):
        raise ValueError(f"plugins: {item!r} needs a 'name' key")
    spec = method_spec(item["name"])
    own = {o.name: o for o in spec.options}
    values = {k: v for k, v in item.items() if k != "name"}
    for key, value in values.items():
        if key not in own:
            raise ValueError(f"plugins: {spec.name} has no option {key!r}; its options: "
                             f"{', '.join(sorted(own)) or 'none'}")
        own[key].validate(value)
    return spec, values


def check_families(members: Sequence[tuple[str, str]]) -> None:
    """Raises ValueError unless methods given as (name, family) can run together: each once,
    at most one weight-importance method, a reference point alone."""
    names = [name for name, _ in members]
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"methods: {name!r} is given twice in {'+'.join(names)}")
        seen.add(name)
    importance = [name for name, family in members if family == "importance"]
    if len(importance) > 1:
        raise ValueError(
            f"methods: combine at most one weight-importance method with other methods, got "
            f"{'+'.join(importance)}"
        )
    reference = [name for name, family in members if family == "reference"]
    if reference and len(members) > 1:
        raise ValueError(
            f"methods: {reference[0]} is a reference point (the data of several tasks at once) "
            f"and runs alone, got {'+'.join(names)}"
        )


def method_options(names: Sequence[str]) -> dict[str, Option]:
    """The options of the named methods (one entry per option name)."""
    out: dict[str, Option] = {}
    for name in names:
        for option in method_spec(name).options:
            out.setdefault(option.name, option)
    return out


# -- built-in methods ------------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def int_option(name: str, default, help: str, low: int = 1, none: bool = False,
               flag: str | None = None, unset: str = "none") -> Option:
    """An integer option >= `low` (None allowed when `none`)."""
    expected = f"an integer >= {low}" + (", or null" if none else "")
    return Option(name, default, help,
                  lambda v: (none and v is None) or (_is_int(v) and v >= low), expected, flag,
                  unset)


def float_option(name: str, default, help: str, low: float = 0.0, strict: bool = False,
                 flag: str | None = None, unset: str = "none") -> Option:
    """A finite number >= `low` (> `low` when `strict`)."""
    expected = f"a finite number {'>' if strict else '>='} {low:g}"
    return Option(name, default, help,
                  lambda v: _is_number(v) and (v > low if strict else v >= low), expected, flag,
                  unset)


def choice_option(name: str, default, help: str, choices: Sequence[str],
                  flag: str | None = None, unset: str = "none") -> Option:
    """One of `choices`."""
    return Option(name, default, help, lambda v: v in choices, f"one of {', '.join(choices)}",
                  flag, unset)


def bool_option(name: str, default: bool, help: str, flag: str | None = None) -> Option:
    """true or false."""
    return Option(name, default, help, lambda v: isinstance(v, bool), "true or false", flag)


# The options of the replay, distillation and projection methods: one definition each, whose
# defaults `RunConfig` and the plugin classes take too.
REPLAY_POLICIES = ("reservoir", "balanced")
MEMORY = int_option("memory", 500, "samples the buffer holds (all tasks together)")
MEMORY_BATCH = int_option("memory_batch", None, "samples drawn from the buffer per step",
                          none=True, unset="the batch size")
REPLAY_POLICY = choice_option("replay_policy", "reservoir", "reservoir (every sample seen, in "
                              "the step) or balanced (equal per class, after each task)",
                              REPLAY_POLICIES)
# DER++'s weights: on class-incremental split Fashion-MNIST (memory 500, 2 epochs) alpha 0.3
# beta 1 gave ACC 0.79-0.80, alpha 0.1 beta 1 0.78-0.79 (replay 0.76).
DERPP_ALPHA = float_option("derpp_alpha", 0.3, "weight of matching the stored logits")
DERPP_BETA = float_option("derpp_beta", 1.0, "weight of the replayed labels' loss")
LWF_ALPHA = float_option("lwf_alpha", 1.0, "weight of the distillation loss")
LWF_TEMPERATURE = float_option("lwf_temperature", 2.0, "distillation temperature", strict=True)

_ALIASES = {
    "ewc": "fisher", "fisher-matrix": "fisher", "fisher_matrix": "fisher",
    "synaptic-intelligence": "si", "synaptic_intelligence": "si",
    "weight-magnitude": "magnitude", "weight_magnitude": "magnitude",
    "inverse-weight-magnitude": "inverse-magnitude",
    "inverse_weight_magnitude": "inverse-magnitude",
    "er": "replay", "agem": "a-gem", "der++": "derpp",
}

_builtins_done = False


def _builtins() -> None:
    """Registers the built-in methods (once; the factories import TensorFlow only when called)."""
    global _builtins_done
    if _builtins_done:
        return
    _builtins_done = True
    from sequential_learning.importance import (
        FISHER_MODES,
        PENALTY_MODES,
        EWCMethod,
        method_description,
    )

    ewc_options = (
        float_option("ewc_lambda", None, "penalty strength lambda", flag="--lambda",
                     unset="the method's own"),
        int_option("fisher_samples", 1000, "training inputs used to estimate importance"),
        choice_option("penalty_mode", None, "separate terms per task, or online",
                      PENALTY_MODES, unset="the method's own"),
        Option("gamma", 1.0, "online decay", lambda v: _is_number(v) and 0 < v <= 1,
               "a number in (0, 1]"),
        bool_option("normalize_importance", False, "divide each task's importance by its maximum"),
    )
    extra = {
        EWCMethod.FISHER_MATRIX: (choice_option("fisher_mode", "exact", "Fisher information "
                                                "exact, sampled, empirical or batch",
                                                FISHER_MODES),),
        EWCMethod.SYNAPTIC_INTELLIGENCE: (float_option("xi", 0.1, "damping xi", strict=True),),
        EWCMethod.WEIGHT_CHANGE: (bool_option("net", False, "|theta_end - theta_start| instead "
                                              "of the path length", flag="--net-change"),),
        EWCMethod.INVERSE_WEIGHT_MAGNITUDE: (float_option("epsilon", 1e-2, "epsilon in "
                                                          "1/(|theta| + epsilon)", strict=True),),
        EWCMethod.RANDOM: (int_option("seed", None, "seed of the random importance", low=0,
                                      none=True, flag="", unset="the run's"),),
    }
    for member in EWCMethod:
        if member is EWCMethod.NONE:
            register_method("none", lambda: None, method_description(member), family="none")
            continue
        register_method(member.value, _consolidation_factory(member), method_description(member),
                        ewc_options + extra.get(member, ()), family="importance")
    register_method(
        "replay", _lazy("replay", "ExperienceReplay"),
        "experience replay: a buffer of past samples (reservoir, or class-balanced), a buffer "
        "batch's loss added to every step", (MEMORY, MEMORY_BATCH, REPLAY_POLICY),
        family="replay")
    register_method(
        "derpp", _lazy("derpp", "DERPlusPlus"),
        "dark experience replay++: buffer logits matched (alpha) and labels replayed (beta)",
        (MEMORY, MEMORY_BATCH, DERPP_ALPHA, DERPP_BETA), family="replay")
    register_method(
        "a-gem", _lazy("agem", "AGEM"),
        "averaged gradient episodic memory: the step's gradient projected so the loss on a "
        "memory batch does not rise", (MEMORY, MEMORY_BATCH), family="projection")
    register_method(
        "lwf", _lazy("lwf", "LearningWithoutForgetting"),
        "learning without forgetting: the previous model's outputs on the new data distilled "
        "into the old heads / classes",
        (LWF_ALPHA, LWF_TEMPERATURE), family="distillation")
    register_method("joint", _lazy("reference", "Joint"),
                    "upper bound: every task trains on the data of every task (all at once)",
                    family="reference")
    register_method("cumulative", _lazy("reference", "Cumulative"),
                    "trains each task on the data of every task so far", family="reference")


def _consolidation_factory(member):
    def make(ewc_lambda=None, fisher_samples=1000, penalty_mode=None, gamma=1.0,
             normalize_importance=False, **estimator_options):
        from sequential_learning.importance import create_estimator
        from sequential_learning.plugins.consolidation import Consolidation

        estimator = create_estimator(member, fisher_samples=fisher_samples, **estimator_options)
        return Consolidation(estimator, None, 0.0 if ewc_lambda is None else ewc_lambda,
                             penalty_mode, gamma, normalize_importance, fisher_samples)

    return make


def _lazy(module: str, attribute: str):
    def make(**options):
        import importlib

        cls = getattr(importlib.import_module(f"sequential_learning.plugins.{module}"), attribute)
        return cls(**options)

    return make
