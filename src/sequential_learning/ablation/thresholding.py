"""`threshold_model`: a new model in which a fraction of the weights, chosen by Ω, is replaced.

The chosen weights (or units, or filters) are set to zero, to noise N(0, std(w)/10), or back to
an anchor θ*; the original model and its variables are never changed. `AblationPlan` ranks the
items once, so every fraction of an ablation curve reuses one ranking.

Example:
```python
pruned = threshold_model(models[0], load_importance("runs/x"), 0.2, order="low")
pruned.name     # 'task_1_zero_low_0.2'
```
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from sequential_learning.ablation.aggregation import ImportanceGroup, as_values, importance_groups
from sequential_learning.ablation.options import Importance, check_fraction, check_options

#: Noise replacing a weight is N(0, std(w) / NOISE_DIVISOR), std over the weight's variable.
NOISE_DIVISOR = 10.0


def _ranking(groups: list[ImportanceGroup], order: str, how: str, scope: str, seed: int) -> list[np.ndarray]:
    """Per scope unit (the whole model, or each layer), item indices in ablation order."""
    rng = np.random.default_rng(seed)
    if order == "magnitude":
        scores = [g.reduce([np.abs(keras.ops.convert_to_numpy(m.variable)) for m in g.members], "mean") for g in groups]
    else:
        scores = [g.reduce([m.omega for m in g.members], how) for g in groups]
    pools = [np.concatenate(scores)] if scope == "model" else scores
    rankings = []
    for s in pools:
        tiebreak = rng.random(len(s))  # ties (e.g. Ω = 0) in a seeded random order
        if order == "random":
            rankings.append(rng.permutation(len(s)))
        elif order == "high":
            rankings.append(np.lexsort((tiebreak, -s)))
        else:
            rankings.append(np.lexsort((tiebreak, s)))
    return rankings


class AblationPlan:
    """The ranking of one (model, Ω, level, scope, order), reusable for every fraction.

    Args:
        model: the model whose weights are replaced.
        importance: Ω as `{variable path: array}` or `(paths, arrays)`.
        level: `weight`, `unit` or `filter`.
        scope: `model` (rank everything together) or `layer` (the fraction of each layer).
        order: `low`, `high`, `random` or `magnitude`: which items go first.
        how: `mean`, `min` or `max`: Ω's reduction per unit.
        seed: the seed of `random` and of ties.

    Example:
    ```python
    plan = AblationPlan(model, omega, "weight", "model", "low", "mean", seed=0)
    chosen = plan.chosen(0.2)   # per group, a boolean per item: replaced at 20%
    ```
    """

    def __init__(self, model, importance, level, scope, order, how, seed):
        self.level, self.scope, self.order, self.how = level, scope, order, how
        self.groups = importance_groups(importance, model, level)
        self.seed = int(seed)
        self.rankings = _ranking(self.groups, order, how, scope, self.seed)
        self.originals = {m.path: np.asarray(keras.ops.convert_to_numpy(m.variable)) for g in self.groups for m in g.members}

    @property
    def items(self) -> int:
        return sum(g.items for g in self.groups)

    def chosen(self, fraction: float) -> list[np.ndarray]:
        """Per group, a boolean per item: whether it is replaced at `fraction`."""
        sizes = [g.items for g in self.groups]
        pools = [np.zeros(sum(sizes), bool)] if self.scope == "model" else [np.zeros(s, bool) for s in sizes]
        for pool, ranking in zip(pools, self.rankings):
            pool[ranking[: int(math.floor(fraction * len(pool) + 0.5))]] = True
        if self.scope == "layer":
            return pools
        return np.split(pools[0], np.cumsum(sizes)[:-1])

    def values(self, fraction: float, action: str, anchor: dict | None) -> tuple[dict, int]:
        """`({path: new array}, number of items replaced)`."""
        rng = np.random.default_rng(self.seed + 1)
        new, count = {}, 0
        for group, chosen in zip(self.groups, self.chosen(fraction)):
            count += int(chosen.sum())
            for member, mask in zip(group.members, group.masks(chosen)):
                original = self.originals[member.path]
                if action == "zero":
                    replacement = np.zeros_like(original)
                elif action == "noise":
                    scale = float(np.std(original)) / NOISE_DIVISOR
                    replacement = rng.normal(0.0, scale, original.shape).astype(original.dtype)
                else:
                    replacement = anchor[member.path].astype(original.dtype)
                new[member.path] = np.where(mask, replacement, original)
        return new, count


def check_anchor(action: str, anchor: Any, plan: AblationPlan) -> dict | None:
    """The anchor values an `anchor` action needs, checked against the plan's variables.

    Args:
        action: `zero`, `noise` or `anchor`.
        anchor: θ* as a model, `{variable path: array}` or `(paths, arrays)`; needed only for
            `anchor`.
        plan: the `AblationPlan` (its variables' paths and shapes).

    Returns:
        `{variable path: array}` for `anchor`, None for the other actions.

    Raises:
        ValueError: when `anchor` is missing, lacks a variable or has another shape.

    Example:
    ```python
    values = check_anchor("anchor", models_after_task[0], plan)
    ```
    """
    if action != "anchor":
        return None
    if anchor is None:
        raise ValueError("action 'anchor' needs the anchor values θ* (anchor=): a model, "
                         "{variable path: array} or (paths, arrays), e.g. the weights right after "
                         "the task the importance belongs to")
    values = as_values(anchor, "anchor")
    for path, original in plan.originals.items():
        if path not in values:
            raise ValueError(f"anchor: no value for variable {path!r}")
        if tuple(values[path].shape) != tuple(original.shape):
            raise ValueError(f"anchor: variable {path!r} has shape {tuple(values[path].shape)} but "
                             f"the model's has shape {tuple(original.shape)}")
    return values



def copy_model(model: keras.Model, name: str) -> keras.Model:
    """A copy of a model with the same weights and a new name (the original is left as it is).

    Args:
        model: the model to copy (functional, sequential or subclassed with a config).
        name: the copy's name.

    Returns:
        The copy.

    Example:
    ```python
    work = copy_model(task_model, "task_1_zero_low_0.2")
    ```
    """
    try:
        clone = keras.models.clone_model(model)
    except Exception:  # noqa: BLE001 - subclassed models: rebuild from the config
        clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    clone.name = name
    return clone


def assign_values(model: keras.Model, values: Mapping[str, np.ndarray]) -> None:
    """Assigns values to a model's variables by path (variables not named are left alone).

    Args:
        model: the model.
        values: `{variable path: array}`.

    Returns:
        None.

    Example:
    ```python
    assign_values(work, plan.originals)   # restore the weights before the next fraction
    ```
    """
    for v in model.weights:
        if v.path in values:
            v.assign(values[v.path])


def ablation_name(model_name: str, action: str, order: str, fraction: float, level: str = "weight",
                  scope: str = "model") -> str:
    """The name of a thresholded model, e.g. `task_1_zero_low_0.2` (`_unit`, `_per_layer`
    appended when not at level weight or scope model).

    Args:
        model_name: the original model's name.
        action: `zero`, `noise` or `anchor`.
        order: `low`, `high`, `random` or `magnitude`.
        fraction: the fraction replaced.
        level: `weight`, `unit` or `filter`.
        scope: `model` or `layer`.

    Returns:
        The name.

    Example:
    ```python
    ablation_name("task_1", "zero", "low", 0.2, level="unit")   # "task_1_zero_low_0.2_unit"
    ```
    """
    name = f"{model_name}_{action}_{order}_{fraction:g}"
    if level != "weight":
        name += f"_{level}"
    if scope != "model":
        name += f"_per_{scope}"
    return name


def threshold_model(
    model: keras.Model,
    importance: Importance,
    fraction: float,
    scope: str = "model",
    order: str = "low",
    action: str = "zero",
    level: str = "weight",
    how: str = "mean",
    anchor: Any = None,
    seed: int = 0,
) -> keras.Model:
    """A new model in which a fraction of the covered weights, chosen by Ω, is replaced.

    Args:
        model: the model; it and its variables are left untouched.
        importance: `{variable path: Ω}` or `(paths, arrays)`; only these variables are ablated
            (the task heads, which Ω does not cover, are kept as they are).
        fraction: in [0, 1]: the share of weights (or units / filters at those levels) replaced.
        scope: `"model"` ranks all covered items together; `"layer"` replaces `fraction` of each
            layer's items.
        order: which go first: `"low"` (least important), `"high"` (most important),
            `"random"` (seeded) or `"magnitude"` (smallest mean |θ|, the pruning baseline).
        action: `"zero"`, `"noise"` (N(0, std(w)/10) with std over the weight's variable, seeded)
            or `"anchor"` (the value in `anchor`).
        level: `"weight"`, `"unit"` or `"filter"` (see `aggregate_importance`).
        how: how Ω is reduced per unit or filter: `"mean"`, `"min"` or `"max"`.
        anchor: for `action="anchor"`: θ*, as a model, `{path: array}` or `(paths, arrays)` —
            e.g. `load_task_models(run_dir, after_task=k)[k - 1]` for task k's Ω.
        seed: seeds the random order, the tie-breaking of equal Ω, and the noise.

    Returns:
        A new Keras model named after what was done (e.g. `task_1_zero_low_0.2`).

    Raises:
        ValueError: fraction outside [0, 1]; unknown scope, order, action, level or how;
            importance (or anchor) that does not match the model's variables, naming the
            variable and both shapes.

    Example:
    ```python
    >>> pruned = threshold_model(model, load_importance(run_dir), 0.2, order="low")
    >>> pruned.name
    'task_1_zero_low_0.2'
    ```
    """
    fraction = check_fraction(fraction)
    check_options(level, scope, order, action, how)
    plan = AblationPlan(model, importance, level, scope, order, how, seed)
    anchor_values = check_anchor(action, anchor, plan)
    values, _ = plan.values(fraction, action, anchor_values)
    clone = copy_model(model, ablation_name(model.name, action, order, fraction, level, scope))
    assign_values(clone, values)
    return clone
