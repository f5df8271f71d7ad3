"""Continual-learning methods as plugins on one seam (see `plugins.base` for the hooks).

Built in: the EWC family (`Consolidation`: fisher, mas, si, ... with their penalty), experience
replay (`ExperienceReplay`), LwF (`LearningWithoutForgetting`), A-GEM (`AGEM`), DER++
(`DERPlusPlus`) and the reference points `Joint` and `Cumulative`. `register_method` adds a
user's own under a name; `make_plugins` turns a method specification into plugins.

Importing this package imports no TensorFlow (the classes load on first use), so the command
line lists and checks methods at once.

Example:
```python
from sequential_learning.plugins import ExperienceReplay, make_plugins
plugins = make_plugins("fisher+replay", ewc_lambda=100.0, memory=500)
```
"""

from __future__ import annotations

import importlib
from typing import Any

from sequential_learning import importance
from sequential_learning.plugins.registry import (
    BIC_EXEMPLARS,
    BIC_TEMPERATURE,
    BIC_VAL_FRACTION,
    DERPP_ALPHA,
    DERPP_BETA,
    GEM_MARGIN,
    ICARL_TEMPERATURE,
    LWF_ALPHA,
    LWF_TEMPERATURE,
    MEMORY,
    MEMORY_BATCH,
    MIR_CANDIDATES,
    REPLAY_POLICY,
    XDER_ETA,
    XDER_GAMMA,
    XDER_MARGIN,
    MethodSpec,
    Option,
    available_methods,
    method_options,
    method_spec,
    parse_mapping,
    register_method,
    split_methods,
)

_EXPORTS = {
    "Plugin": "base",
    "Run": "base",
    "Experience": "base",
    "Step": "base",
    "Router": "routing",
    "MemoryBuffer": "buffer",
    "Consolidation": "consolidation",
    "ExperienceReplay": "replay",
    "DERPlusPlus": "derpp",
    "ERACE": "er_ace",
    "MIR": "mir",
    "XDER": "xder",
    "AGEM": "agem",
    "GEM": "gem",
    "GDumb": "gdumb",
    "LearningWithoutForgetting": "lwf",
    "ICaRL": "icarl",
    "BiC": "bic",
    "Joint": "reference",
    "Cumulative": "reference",
}

__all__ = [*_EXPORTS, "MethodSpec", "Option", "available_methods", "describe_methods",
           "make_plugins", "method_options", "method_spec", "parse_mapping", "register_method",
           "split_methods"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"sequential_learning.plugins.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'sequential_learning.plugins' has no attribute {name!r}")


# -- the built-in methods (their options: `importance` for the EWC family, `registry` for the rest;
# each factory imports its TensorFlow class only when called) -------------------------------------
def _consolidation(member: importance.EWCMethod):
    """The factory of an EWC-family method: its estimator and the penalty, as one plugin."""

    def make(**values):
        from sequential_learning.plugins.consolidation import Consolidation

        lam, samples, mode, gamma, normalize = (values.get(o.name, o.default)
                                                for o in importance.PENALTY_OPTIONS)
        estimator = importance.create_estimator(member, **{**values, "fisher_samples": samples})
        return Consolidation(estimator, None, 0.0 if lam is None else lam, mode, gamma,
                             normalize, samples)

    return make


def _lazy(module: str, attribute: str):
    def make(**options):
        cls = getattr(importlib.import_module(f"sequential_learning.plugins.{module}"), attribute)
        return cls(**options)

    return make


for _member in importance.EWCMethod:
    if _member is importance.EWCMethod.NONE:
        register_method("none", lambda: None, importance.method_description(_member),
                        family="none")
        continue
    _own = [o for o in importance.method_options(_member) if o not in importance.PENALTY_OPTIONS]
    register_method(_member.value, _consolidation(_member), importance.method_description(_member),
                    (*importance.PENALTY_OPTIONS, *_own), family="importance")
register_method(
    "replay", _lazy("replay", "ExperienceReplay"),
    "experience replay: a buffer of past samples (reservoir, or class-balanced), a buffer "
    "batch's loss added to every step", (MEMORY, MEMORY_BATCH, REPLAY_POLICY), family="replay")
register_method(
    "derpp", _lazy("derpp", "DERPlusPlus"),
    "dark experience replay++: buffer logits matched (alpha) and labels replayed (beta)",
    (MEMORY, MEMORY_BATCH, DERPP_ALPHA, DERPP_BETA), family="replay")
register_method(
    "er-ace", _lazy("er_ace", "ERACE"),
    "experience replay with asymmetric cross-entropy: the incoming batch's loss over its own "
    "classes, a buffer batch's over every class seen", (MEMORY, MEMORY_BATCH), family="replay")
register_method(
    "mir", _lazy("mir", "MIR"),
    "maximally interfered retrieval: replays the buffer samples whose loss a virtual update on "
    "the batch raises most", (MEMORY, MEMORY_BATCH, MIR_CANDIDATES), family="replay")
register_method(
    "xder", _lazy("xder", "XDER"),
    "extended DER (class-incremental): DER++ with logit updates of the buffer and a "
    "future-heads constraint", (MEMORY, MEMORY_BATCH, DERPP_ALPHA, DERPP_BETA, XDER_GAMMA,
                                XDER_MARGIN, XDER_ETA), family="replay")
register_method(
    "a-gem", _lazy("agem", "AGEM"),
    "averaged gradient episodic memory: the step's gradient projected so the loss on a "
    "memory batch does not rise", (MEMORY, MEMORY_BATCH), family="projection")
register_method(
    "gem", _lazy("gem", "GEM"),
    "gradient episodic memory: the step's gradient projected (the paper's dual QP) so that no "
    "earlier task's memory loss rises", (MEMORY, GEM_MARGIN), family="projection")
register_method(
    "gdumb", _lazy("gdumb", "GDumb"),
    "GDumb: a greedy class-balanced memory; the model retrained from scratch on it alone at "
    "every task", (MEMORY,), family="replay")
register_method(
    "lwf", _lazy("lwf", "LearningWithoutForgetting"),
    "learning without forgetting: the previous model's outputs on the new data distilled "
    "into the old heads / classes", (LWF_ALPHA, LWF_TEMPERATURE), family="distillation")
register_method(
    "icarl", _lazy("icarl", "ICaRL"),
    "iCaRL: herding exemplars in the training set, distillation of the old classes, "
    "nearest-mean-of-exemplars accuracy (nme_acc) beside the network's",
    (MEMORY, ICARL_TEMPERATURE), family="replay")
register_method(
    "bic", _lazy("bic", "BiC"),
    "BiC (class-IL): exemplars, distillation weighted n_old/n_seen, and a bias correction "
    "(alpha, beta on the new classes' logits) fitted on held-out exemplars",
    (MEMORY, BIC_VAL_FRACTION, BIC_EXEMPLARS, BIC_TEMPERATURE), family="replay")
register_method("joint", _lazy("reference", "Joint"),
                "upper bound: every task trains on the data of every task (all at once)",
                family="reference")
register_method("cumulative", _lazy("reference", "Cumulative"),
                "trains each task on the data of every task so far", family="reference")


def make_plugins(method: Any, **options) -> list:
    """The plugins of a method specification.

    Args:
        method: an `EWCMethod`; a registered name (`"fisher"`, `"replay"`) or names joined with
            `+`; a `Plugin` instance; a mapping `{"name": ..., option: value}` (its options win
            over `options`); or a list of these.
        **options: options for the named methods (each takes the ones it declares, checked:
            a bad value raises ValueError naming the option).

    Returns:
        The plugins, in order (empty for `none`).

    Example:
    ```python
    make_plugins(["fisher", {"name": "replay", "memory": 200}], ewc_lambda=50.0)
    ```
    """
    from sequential_learning.plugins.base import Plugin

    items = list(method) if isinstance(method, list | tuple) else [method]
    plugins = []
    for item in items:
        if isinstance(item, Plugin):
            plugins.append(item)
        elif isinstance(item, dict):
            plugins += _from_mapping(item, options)
        elif isinstance(item, str):
            for name in split_methods(item):
                plugins += method_spec(name).make(**options)
        elif hasattr(item, "value") and hasattr(item, "name"):  # an EWCMethod member
            plugins += method_spec(item.value).make(**options)
        else:
            raise ValueError(f"method: {item!r} is not a method name, a plugin or a mapping")
    return plugins


def _from_mapping(item: dict, options: dict) -> list:
    spec, own = parse_mapping(item)
    return spec.make(**{**options, **own})


def describe_methods(lambdas: dict | None = None) -> list[str]:
    """`seql list methods`: the methods by family, each with its options and their defaults.

    The weight-importance methods' shared options are listed once, under "options of each".

    Args:
        lambdas: each weight-importance method's default λ, `{name: λ}`, shown beside it.

    Returns:
        The lines to print.

    Example:
    ```python
    for line in describe_methods({"fisher": 50.0}):
        print(line)
    ```
    """
    lambdas = lambdas or {}
    specs = available_methods()
    shared = None
    lines = []
    groups = [
        ("importance", "Weight-importance methods: the penalty lambda/2 sum Omega (theta - "
                       "theta*)^2 (combine one with the others using +, e.g. fisher+replay)"),
        ("other", "Replay, distillation and projection (combine with +)"),
        ("reference", "Reference points (run alone)"),
    ]
    for family, title in groups:
        members = [s for s in specs if _group(s.family) == family]
        if not members:
            continue
        lines.append(title)
        if family == "importance":
            with_options = next(s for s in members if s.options)
            shared = {o.name for o in with_options.options[:5]}
            lines.append("  options of each:")
            lines += [f"  {'':<18}   {_option_text(o)}" for o in with_options.options[:5]]
        for spec in members:
            extra = f" (default lambda {lambdas[spec.name]:g})" if spec.name in lambdas else ""
            lines.append(f"  {spec.name:<18} {spec.description}{extra}")
            for option in spec.options:
                if shared is not None and family == "importance" and option.name in shared:
                    continue
                lines.append(f"  {'':<18}   {_option_text(option)}")
    return lines


def _group(family: str) -> str:
    if family in ("importance", "none"):
        return "importance"
    return "reference" if family == "reference" else "other"


def _option_text(option: Option) -> str:
    default = option.unset if option.default is None else option.default
    where = option.cli_flag or f"{option.name} (Python, config files)"
    return f"{where} {default}: {option.help}"
