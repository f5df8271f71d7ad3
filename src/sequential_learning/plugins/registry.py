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

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sequential_learning.options import (
    Option,
    bool_option,
    choice_option,
    float_option,
    int_option,
)

__all__ = ["ENTRY_POINT_GROUP", "MethodSpec", "Option", "all_options", "available_methods",
           "bool_option", "check_families", "choice_option", "float_option", "int_option",
           "method_options", "method_spec", "parse_mapping", "register_method", "split_methods"]

ENTRY_POINT_GROUP = "sequential_learning.methods"


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, factory, description, options and family.

    Made by `register_method`; `make(**options)` calls the factory.

    Args:
        name: its name (kebab case), e.g. `replay`.
        factory: called with the options it declares (keywords); returns a `Plugin`, a list of
            them, or None.
        description: one line, for `seql list methods`.
        options: the `Option`s it accepts.
        family: `importance`, `replay`, `distillation`, `projection`, `reference`, `none` or
            `other`.

    Example:
    ```python
    spec = method_spec("replay")
    plugins = spec.make(memory=200, ewc_lambda=5.0)    # ewc_lambda is not replay's: ignored
    ```
    """

    name: str
    factory: Callable[..., Any]
    description: str
    options: tuple[Option, ...] = ()
    family: str = "other"

    def make(self, **options) -> list:
        """The method's plugins, made with the options it declares.

        Args:
            **options: option values by name; those the method does not declare, and None values,
                are ignored; the others are checked (`Option.validate`).

        Returns:
            A list of `Plugin`s (empty when the factory returns None).

        Raises:
            ValueError: a declared option's value is not allowed.

        Example:
        ```python
        [p.name for p in method_spec("replay").make(memory=200)]    # ['replay']
        ```
        """
        own = {o.name: o for o in self.options}
        kwargs = {k: own[k].validate(v, k) for k, v in options.items()
                  if k in own and v is not None}
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
    declared = {o.config_key: o for n, s in _METHODS.items() if n != name for o in s.options}
    for option in options:
        other = declared.get(option.config_key)
        if other is not None and other != option:
            raise ValueError(f"method {name!r}: option {option.config_key!r} is declared by another "
                             "method with other settings; reuse that Option or choose a new name")
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
    """Every registered method, built-in first, in registration order.

    The first call also loads the methods of installed packages' entry points (group
    `sequential_learning.methods`).

    Returns:
        A list of `MethodSpec`s.

    Example:
    ```python
    [s.name for s in available_methods() if s.family == "replay"]    # ['replay', 'derpp']
    ```
    """
    _load_entry_points()
    return list(_METHODS.values())


def method_spec(name: str) -> MethodSpec:
    """The registered method called `name`.

    Case, surrounding spaces and `_` for `-` do not matter, and aliases are accepted
    (`FISHER_MATRIX` and `ewc` for `fisher`, `er` for `replay`, `der++` for `derpp`, ...). An
    unknown name loads the entry points' methods before it is refused.

    Args:
        name: the method's name or alias.

    Returns:
        Its `MethodSpec`.

    Raises:
        ValueError: for an unknown name; the message lists the known ones.

    Example:
    ```python
    method_spec("FISHER_MATRIX").name    # 'fisher'
    ```
    """
    key = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower().replace("_", "-"))
    if key not in _METHODS:
        _load_entry_points()
    if key not in _METHODS:
        known = ", ".join(_METHODS)
        raise ValueError(f"Unknown method {name!r}; known methods: {known}")
    return _METHODS[key]


def split_methods(text: str) -> list[str]:
    """The methods of a `+`-joined method text, each checked and normalised.

    `der++` is read as `derpp` (DER++'s name, as in Mammoth) before the text is split.

    Args:
        text: methods joined with `+`, e.g. `"fisher+replay"`.

    Returns:
        The methods' registered names, in the order given.

    Raises:
        ValueError: an empty part (`"fisher+"`) or an unknown method.

    Example:
    ```python
    split_methods("EWC+der++")    # ['fisher', 'derpp']
    ```
    """
    # DER++ is named `derpp`, as in Mammoth; `der++` is read as that name.
    parts = [p.strip() for p in re.sub(r"(?i)der\+\+", "derpp", str(text)).split("+")]
    if not all(parts):
        raise ValueError(f"method {text!r}: join methods with '+', e.g. fisher+replay")
    return [method_spec(p).name for p in parts]


def parse_mapping(item: dict) -> tuple[MethodSpec, dict]:
    """A method given as `{"name": ..., option: value}`: its spec and its checked options.

    Args:
        item: the mapping, as in a config file's `plugins:` list.

    Returns:
        `(spec, options)`: the method's `MethodSpec` and the mapping without `name`.

    Raises:
        ValueError: without a name, for an unknown method, or an option it does not have or a
            value that option does not allow (one line, naming them).

    Example:
    ```python
    spec, options = parse_mapping({"name": "replay", "memory": 200})
    spec.name, options    # ('replay', {'memory': 200})
    ```
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
        own[key].validate(value, key)
    return spec, values


def check_families(members: Sequence[tuple[str, str]]) -> None:
    """Checks that methods given as (name, family) can run together.

    Each method once, at most one weight-importance method, and a reference point (`joint`,
    `cumulative`) alone.

    Args:
        members: `(name, family)` pairs, e.g. from `method_spec(name).family`.

    Returns:
        None.

    Raises:
        ValueError: a method given twice, two importance methods, or a reference point combined
            with another method.

    Example:
    ```python
    check_families([("fisher", "importance"), ("replay", "replay")])    # fine
    check_families([("fisher", "importance"), ("mas", "importance")])   # ValueError
    ```
    """
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


def all_options() -> dict[str, Option]:
    """Every option of every registered method, by config key.

    An option shared by several methods appears once; the order is that of registration.

    Returns:
        A dict from config key to `Option`.

    Example:
    ```python
    all_options()["memory"].default    # 500
    ```
    """
    out: dict[str, Option] = {}
    for spec in available_methods():
        for option in spec.options:
            out.setdefault(option.config_key, option)
    return out


def method_options(names: Sequence[str]) -> dict[str, Option]:
    """The options of the named methods, one entry per option name (the first method's wins).

    Args:
        names: method names or aliases.

    Returns:
        A dict from option name (the factory's keyword) to `Option`.

    Raises:
        ValueError: an unknown method.

    Example:
    ```python
    list(method_options(["replay"]))    # ['memory', 'memory_batch', 'replay_policy']
    ```
    """
    out: dict[str, Option] = {}
    for name in names:
        for option in method_spec(name).options:
            out.setdefault(option.name, option)
    return out


# -- the options of the replay, distillation and projection methods -----------------------------
# One definition each: the plugin classes (which import TensorFlow) take their defaults and checks
# from here, and `plugins/__init__.py` registers the methods with them.
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
# MIR: the authors' code scores 50 candidates for a replayed batch of 10 (--subsample 50,
# --buffer_batch_size 10); by default the same ratio, 5 per replayed sample.
MIR_CANDIDATES = int_option("mir_candidates", None, "buffer samples scored per step; the "
                            "memory_batch most interfered are replayed", none=True,
                            unset="5 x memory_batch, at most the memory")
# X-DER: Mammoth's xder_ce defaults (--gamma 0.85, --constr_margin 0.3, --constr_eta 0.01).
XDER_GAMMA = float_option("xder_gamma", 0.85, "logit update: no transplanted logit above gamma "
                          "times the stored target logit", strict=True, high=1.0)
XDER_MARGIN = float_option("xder_margin", 0.3, "future-heads constraint: margin of the ground "
                           "truth's head over the future classes' logits")
XDER_ETA = float_option("xder_eta", 0.01, "weight of the future-heads constraint")
LWF_ALPHA = float_option("lwf_alpha", 1.0, "weight of the distillation loss")
LWF_TEMPERATURE = float_option("lwf_temperature", 2.0, "distillation temperature", strict=True)
# iCaRL's and BiC's distillation temperature: T = 2 in PyCIL's iCaRL and in the BiC paper.
ICARL_TEMPERATURE = float_option("icarl_temperature", 2.0, "iCaRL's distillation temperature",
                                 strict=True)
BIC_TEMPERATURE = float_option("bic_temperature", 2.0, "BiC's distillation temperature",
                               strict=True)
# BiC's held-out share of the memory: the paper's 9:1 train/validation split of the exemplars.
BIC_VAL_FRACTION = float_option("bic_val_fraction", 0.1, "share of each class's exemplars held "
                                "out of training to fit the bias correction", strict=True,
                                high=0.5)
BIC_EXEMPLARS = choice_option("bic_exemplars", "herding", "how BiC chooses each class's "
                              "training exemplars: herding (as iCaRL) or random",
                              ("herding", "random"))
# GEM's margin: the lower bound on the dual variables, the authors' `memory_strength` (0.5 in
# their code and Mammoth's).
GEM_MARGIN = float_option("gem_margin", 0.5, "GEM's margin (memory strength): lower bound of "
                          "the dual variables")

_ALIASES = {
    "ewc": "fisher", "fisher-matrix": "fisher", "fisher_matrix": "fisher",
    "synaptic-intelligence": "si", "synaptic_intelligence": "si",
    "weight-magnitude": "magnitude", "weight_magnitude": "magnitude",
    "inverse-weight-magnitude": "inverse-magnitude",
    "inverse_weight_magnitude": "inverse-magnitude",
    "er": "replay", "agem": "a-gem", "der++": "derpp",
}
