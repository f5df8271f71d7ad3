"""Model augmentation by weight importance: does Ω explain what a network learned?

The reference design's `ModelAugmentation` thresholded weights by their importance Ω. This module
asks the question with measurements:

* `aggregate_importance`: Ω per weight, per unit (a Dense unit's incoming kernel column and its
  bias share one value) or per convolutional filter (a filter's kernel and bias share one value).
* `threshold_model`: a *new* model in which a fraction of the weights (or units, or filters) chosen
  by Ω is set to zero, to noise N(0, std(w)/10), or back to an anchor θ*; the original model and
  its variables are never changed.
* `ablation_curve`: every task's accuracy as the fraction grows, for the orders `low` (least
  important first), `high` (most important first), `random` and `magnitude` (smallest |θ| first,
  the classic pruning baseline); `ablation.png`, one panel per task, one line per order.
* `explanation_drift`: how much the Grad-CAM and occlusion maps of a task's validation images
  change while later tasks are learned (Spearman similarity to the maps right after the task).
* `importance_maps`: per conv filter, Ω beside the filter's kernel and its activation-maximisation
  image, most and least important filters side by side.
* `augment_run` and `drift_runs`: the work behind `seql augment RUN_DIR` and `seql drift RUN_DIR`.

Ω covers the variables the consolidation penalty covers (the shared base), matched to a model's
variables by path (e.g. `base_conv_1/kernel`). Variables Ω does not cover — the task heads — are
never ablated. Arrays in, arrays out; figures are written with the Agg canvas, never shown.

Example:
```python
from sequential_learning.checkpoint import load_importance, load_task_models
models = load_task_models("runs/x")
importance = load_importance("runs/x")            # (paths, arrays), summed over tasks
pruned = threshold_model(models[0], importance, 0.2, order="low")   # named task_1_zero_low_0.2
table = ablation_curve(tasks, models, importance, [0.1, 0.2, 0.5], path="ablation.png")
```
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

LEVELS: tuple[str, ...] = ("weight", "unit", "filter")
HOWS: tuple[str, ...] = ("mean", "min", "max")
SCOPES: tuple[str, ...] = ("model", "layer")
ORDERS: tuple[str, ...] = ("low", "high", "random", "magnitude")
ACTIONS: tuple[str, ...] = ("zero", "noise", "anchor")
DRIFT_METHODS: tuple[str, ...] = ("grad-cam", "occlusion")
#: Noise replacing a weight is N(0, std(w) / NOISE_DIVISOR), std over the weight's variable.
NOISE_DIVISOR = 10.0

Importance = Mapping[str, Any] | tuple[Sequence[str], Sequence[Any]]


# -- input checks ----------------------------------------------------------------------------------
def _choice(value: Any, allowed: Sequence[str], what: str) -> str:
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


def as_importance(importance: Importance) -> dict[str, np.ndarray]:
    """Ω as `{variable path: array}`, from a dict or from `(paths, arrays)` (`load_importance`)."""
    if isinstance(importance, Mapping):
        items = list(importance.items())
    elif isinstance(importance, (tuple, list)) and len(importance) == 2:
        paths, arrays = importance
        if isinstance(paths, str) or len(paths) != len(arrays):
            raise ValueError("importance as (paths, arrays) needs one array per path, got "
                             f"{len(paths)} paths and {len(arrays)} arrays")
        items = list(zip(paths, arrays))
    else:
        raise ValueError("importance must be {variable path: array} or (paths, arrays) as "
                         f"returned by load_importance, got {type(importance).__name__}")
    if not items:
        raise ValueError("importance covers no variables")
    out = {}
    for path, array in items:
        a = np.asarray(keras.ops.convert_to_numpy(array), dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"importance of variable {path!r} contains NaN or infinity")
        out[str(path)] = a
    return out


def _model_variables(model: keras.Model) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for v in model.weights:
        if v.path in found and found[v.path] is not v:
            raise ValueError(f"Model {model.name!r} has two variables with path {v.path!r}; "
                             "importance cannot be matched to it by path")
        found[v.path] = v
    return found


def _match(importance: Mapping[str, np.ndarray], model: keras.Model) -> list[tuple[str, Any, np.ndarray]]:
    variables = _model_variables(model)
    matched = []
    for path, omega in importance.items():
        if path not in variables:
            raise ValueError(
                f"importance covers variable {path!r}, which model {model.name!r} does not have; "
                f"its variables are: {', '.join(variables)}"
            )
        shape = tuple(variables[path].shape)
        if tuple(omega.shape) != shape:
            raise ValueError(
                f"importance of variable {path!r} has shape {tuple(omega.shape)} but the model's "
                f"variable has shape {shape}"
            )
        matched.append((path, variables[path], omega))
    return matched


def _as_values(values: Any, what: str) -> dict[str, np.ndarray]:
    """Anchor values as `{path: array}`, from a model, a dict or `(paths, arrays)`."""
    if isinstance(values, keras.Model):
        return {v.path: np.asarray(v.numpy()) for v in values.weights}
    try:
        return as_importance(values)
    except ValueError as error:
        raise ValueError(f"{what}: {str(error).replace('importance', 'values')}") from None


# -- grouping: which weights share one value --------------------------------------------------------
def _owners(model: keras.Model) -> dict[str, tuple[str, keras.layers.Layer]]:
    """`{variable path: (layer path, layer)}` for the leaf layers of a (nested) model."""
    from sequential_learning.interpret.base import walk_layers

    owners: dict[str, tuple[str, keras.layers.Layer]] = {}
    for layer_path, layer in walk_layers(model):
        if isinstance(layer, keras.Model):
            continue
        for v in layer.weights:
            owners.setdefault(v.path, (layer_path, layer))
    return owners


def _is_plain_conv(layer: keras.layers.Layer | None) -> bool:
    from sequential_learning.interpret.base import is_conv

    return layer is not None and is_conv(layer) and not isinstance(
        layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
                keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
    )


def _output_axis(layer: keras.layers.Layer | None, variable: Any, path: str) -> int:
    """The axis of `variable` that indexes its layer's output units (or filters)."""
    kind = type(layer).__name__ if layer is not None else "no layer"
    bias = getattr(layer, "bias", None) if layer is not None else None
    kernel = getattr(layer, "kernel", None) if layer is not None else None
    if bias is not None and bias.path == path:
        return -1
    if kernel is not None and kernel.path == path:
        if isinstance(layer, keras.layers.Dense) or _is_plain_conv(layer):
            transposed = isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                                            keras.layers.Conv3DTranspose))
            return -2 if transposed else -1
    if len(variable.shape) == 1:
        return -1  # a per-channel vector (e.g. BatchNormalization's gamma): one value per unit
    raise ValueError(
        f"variable {path!r} of layer type {kind} cannot be grouped by unit or filter (only Dense "
        "and convolution kernels and biases can); use level='weight'"
    )


@dataclass
class _Member:
    path: str
    variable: Any
    omega: np.ndarray
    axis: int | None  # None: one item per element (level weight)


@dataclass
class _Group:
    """The covered variables of one layer; `items` things (weights or units) to rank."""

    layer: str
    conv: bool
    members: list[_Member]
    level: str

    @property
    def units(self) -> int:
        m = self.members[0]
        return int(m.omega.shape[m.axis])

    @property
    def items(self) -> int:
        if self.level == "weight":
            return sum(m.omega.size for m in self.members)
        return self.units

    def reduce(self, arrays: Sequence[np.ndarray], how: str) -> np.ndarray:
        """One value per item: the arrays themselves (weights) or reduced per unit by `how`."""
        if self.level == "weight":
            return np.concatenate([np.ravel(a) for a in arrays])
        columns = [np.moveaxis(a, m.axis, -1).reshape(-1, self.units)
                   for a, m in zip(arrays, self.members)]
        stacked = np.concatenate(columns, axis=0)
        return {"mean": np.mean, "min": np.min, "max": np.max}[how](stacked, axis=0)

    def masks(self, chosen: np.ndarray) -> list[np.ndarray]:
        """Per member, a boolean array shaped like its variable: True where an item is chosen."""
        if self.level == "weight":
            out, start = [], 0
            for m in self.members:
                out.append(chosen[start:start + m.omega.size].reshape(m.omega.shape))
                start += m.omega.size
            return out
        out = []
        for m in self.members:
            shape = [1] * m.omega.ndim
            shape[m.axis] = self.units
            out.append(np.broadcast_to(chosen.reshape(shape), m.omega.shape))
        return out


def _groups(importance: Importance, model: keras.Model, level: str) -> list[_Group]:
    _choice(level, LEVELS, "level")
    omega = as_importance(importance)
    owners = _owners(model)
    by_layer: dict[str, tuple[keras.layers.Layer | None, list]] = {}
    for path, variable, array in _match(omega, model):
        layer_path, layer = owners.get(path, (path, None))
        by_layer.setdefault(layer_path, (layer, []))[1].append((path, variable, array))
    groups = []
    for layer_path, (layer, entries) in by_layer.items():
        conv = _is_plain_conv(layer)
        if level == "filter" and not conv:
            continue  # level filter ablates convolutional filters only
        if level == "weight":
            members = [_Member(p, v, a, None) for p, v, a in entries]
        else:
            members = [_Member(p, v, a, _output_axis(layer, v, p)) for p, v, a in entries]
            units = {int(m.omega.shape[m.axis]) for m in members}
            if len(units) > 1:
                raise ValueError(
                    f"layer {layer_path!r}: its covered variables disagree on the number of units "
                    f"({', '.join(f'{m.path} {m.omega.shape}' for m in members)})"
                )
        groups.append(_Group(layer_path, conv, members, "weight" if level == "weight" else "unit"))
    if not groups:
        raise ValueError(
            "level 'filter' needs convolutional layers among the variables the importance covers "
            f"({', '.join(omega)}); use level 'unit' or 'weight'"
        )
    return groups


def aggregate_importance(
    importance: Importance, model: keras.Model, level: str = "weight", how: str = "mean"
) -> dict[str, np.ndarray]:
    """Ω per weight, per unit or per convolutional filter.

    Args:
        importance: `{variable path: Ω}` or `(paths, arrays)` (as `load_importance` returns);
            every path must be a variable of `model` with the same shape.
        model: the model the importance belongs to (a task model with a nested base is fine).
        level: `"weight"` (Ω itself), `"unit"` (a Dense unit's incoming kernel column and its
            bias share one value; a conv filter's kernel and bias share one value per filter) or
            `"filter"` (as `"unit"`, for convolutional layers only: other layers are left out).
        how: how a unit's weights are reduced to one value: `"mean"`, `"min"` or `"max"`.

    Returns:
        `{variable path: array}`: at level weight, Ω shaped like the variable; otherwise one value
        per unit, shape `(units,)`, the same array for a layer's kernel and bias.

    Raises:
        ValueError: unknown level or how, a path the model lacks, a shape that differs (naming
            the variable and both shapes), or a variable that cannot be grouped.

    Example:
    >>> per_filter = aggregate_importance(importance, model, level="filter")
    >>> per_filter["base_conv_1/kernel"].shape
    (32,)
    """
    _choice(how, HOWS, "how")
    out = {}
    for group in _groups(importance, model, level):
        if group.level == "weight":
            out.update({m.path: m.omega.astype(np.float32) for m in group.members})
            continue
        value = group.reduce([m.omega for m in group.members], how).astype(np.float32)
        out.update({m.path: value for m in group.members})
    return out


# -- thresholding ----------------------------------------------------------------------------------
def _ranking(groups: list[_Group], order: str, how: str, scope: str, seed: int) -> list[np.ndarray]:
    """Per scope unit (the whole model, or each layer), item indices in ablation order."""
    rng = np.random.default_rng(seed)
    if order == "magnitude":
        scores = [g.reduce([np.abs(m.variable.numpy()) for m in g.members], "mean") for g in groups]
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


class _Plan:
    """The ranking of one (model, Ω, level, scope, order), reusable for every fraction."""

    def __init__(self, model, importance, level, scope, order, how, seed):
        self.level, self.scope, self.order, self.how = level, scope, order, how
        self.groups = _groups(importance, model, level)
        self.seed = int(seed)
        self.rankings = _ranking(self.groups, order, how, scope, self.seed)
        self.originals = {m.path: np.asarray(m.variable.numpy()) for g in self.groups for m in g.members}

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


def _check_anchor(action: str, anchor: Any, plan: _Plan) -> dict | None:
    if action != "anchor":
        return None
    if anchor is None:
        raise ValueError("action 'anchor' needs the anchor values θ* (anchor=): a model, "
                         "{variable path: array} or (paths, arrays), e.g. the weights right after "
                         "the task the importance belongs to")
    values = _as_values(anchor, "anchor")
    for path, original in plan.originals.items():
        if path not in values:
            raise ValueError(f"anchor: no value for variable {path!r}")
        if tuple(values[path].shape) != tuple(original.shape):
            raise ValueError(f"anchor: variable {path!r} has shape {tuple(values[path].shape)} but "
                             f"the model's has shape {tuple(original.shape)}")
    return values


def _check_options(level, scope, order, action, how):
    _choice(level, LEVELS, "level")
    _choice(scope, SCOPES, "scope")
    _choice(order, ORDERS, "order")
    _choice(action, ACTIONS, "action")
    _choice(how, HOWS, "how")


def _clone(model: keras.Model, name: str) -> keras.Model:
    try:
        clone = keras.models.clone_model(model)
    except Exception:  # noqa: BLE001 - subclassed models: rebuild from the config
        clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    clone.name = name
    return clone


def _assign(model: keras.Model, values: Mapping[str, np.ndarray]) -> None:
    for v in model.weights:
        if v.path in values:
            v.assign(values[v.path])


def ablation_name(model_name: str, action: str, order: str, fraction: float, level: str = "weight",
                  scope: str = "model") -> str:
    """The name of a thresholded model, e.g. `task_1_zero_low_0.2` (`_unit`, `_layer` appended
    when not at level weight or scope model)."""
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
    >>> pruned = threshold_model(model, load_importance(run_dir), 0.2, order="low")
    >>> pruned.name
    'task_1_zero_low_0.2'
    """
    fraction = check_fraction(fraction)
    _check_options(level, scope, order, action, how)
    plan = _Plan(model, importance, level, scope, order, how, seed)
    anchor_values = _check_anchor(action, anchor, plan)
    values, _ = plan.values(fraction, action, anchor_values)
    clone = _clone(model, ablation_name(model.name, action, order, fraction, level, scope))
    _assign(clone, values)
    return clone


# -- ablation curves -------------------------------------------------------------------------------
def _task_data(task: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(task, "x_val") and hasattr(task, "y_val"):  # benchmarks.TaskData
        return np.asarray(task.x_val), np.asarray(task.y_val)
    data = getattr(task, "validation_data", task)  # a SequentialTask, or (x, y)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    raise ValueError("each task must be (x, y) arrays, a TaskData or a SequentialTask with array "
                     f"validation data, got {type(task).__name__}")


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Top-1 accuracy of `model` on `(x, y)` (called with `training=False`)."""
    y = np.asarray(y).reshape(-1)
    correct = 0
    for i in range(0, len(x), batch_size):
        out = keras.ops.convert_to_numpy(model(np.asarray(x[i:i + batch_size], np.float32),
                                               training=False))
        correct += int(np.sum(np.argmax(out, axis=-1) == y[i:i + batch_size]))
    return correct / max(len(x), 1)


def ablation_curve(
    tasks: Sequence[Any],
    model_for_task: Sequence[keras.Model] | Callable[[int], keras.Model] | keras.Model,
    importance: Importance,
    fractions: Sequence[float],
    orders: Sequence[str] = ORDERS,
    level: str = "weight",
    scope: str = "model",
    action: str = "zero",
    how: str = "mean",
    anchor: Any = None,
    seed: int = 0,
    path: str | Path | None = None,
    json_path: str | Path | None = None,
    task_names: Sequence[str] | None = None,
) -> dict:
    """Every task's accuracy after replacing a growing fraction of weights, for several orders.

    For each task, a copy of its model is ablated (the given models are left untouched); the
    items are ranked once per order, so a larger fraction replaces a superset of a smaller one.
    Fraction 0 (the unablated model) is always included.

    Args:
        tasks: one per task: `(x_val, y_val)`, a `TaskData` or a `SequentialTask`.
        model_for_task: the task models (a list), a callable `k -> model` (0-based), or one model
            for every task.
        importance: Ω, as for `threshold_model`.
        fractions: fractions in [0, 1].
        orders: any of `ORDERS`.
        level, scope, action, how, anchor, seed: as for `threshold_model`.
        path: write the figure there (one panel per task, one line per order).
        json_path: write the table there as JSON.
        task_names: names for the panels (default `task 1`, ...).

    Returns:
        The table: `{"fractions", "orders", "task_names", "baseline": [acc per task],
        "accuracy": {order: [[acc per task] per fraction]}, "replaced": {order: [items replaced
        per fraction]}, "items": total items, "settings": {...}}`.

    Example:
    >>> table = ablation_curve(stream.tasks, models, load_importance(run), [0.1, 0.2])
    >>> table["accuracy"]["low"][1]    # every task's accuracy with 20% lowest-Ω weights zeroed
    """
    fractions = [0.0] + [f for f in parse_fractions(list(fractions)) if f > 0]
    orders = list(orders)
    if not orders:
        raise ValueError("orders: give at least one of " + ", ".join(ORDERS))
    for order in orders:
        _check_options(level, scope, order, action, how)
    data = [_task_data(t) for t in tasks]
    if not data:
        raise ValueError("ablation_curve needs at least one task")
    if isinstance(model_for_task, keras.Model):
        models = [model_for_task] * len(data)
    elif callable(model_for_task):
        models = [model_for_task(k) for k in range(len(data))]
    else:
        models = list(model_for_task)
    if len(models) != len(data):
        raise ValueError(f"{len(data)} tasks but {len(models)} task models")
    omega = as_importance(importance)
    accuracy_table = {o: [[0.0] * len(data) for _ in fractions] for o in orders}
    replaced = {o: [0] * len(fractions) for o in orders}
    baseline, items, untouched = [], 0, set()
    for k, (model, (x, y)) in enumerate(zip(models, data)):
        work = _clone(model, f"{model.name}_ablation")
        untouched |= {v.path for v in model.weights} - set(omega)
        baseline.append(accuracy(work, x, y))
        for order in orders:
            plan = _Plan(model, omega, level, scope, order, how, seed)
            anchor_values = _check_anchor(action, anchor, plan)
            items = plan.items
            for i, fraction in enumerate(fractions):
                if fraction == 0.0:
                    accuracy_table[order][i][k] = baseline[k]
                    continue
                values, count = plan.values(fraction, action, anchor_values)
                _assign(work, values)
                accuracy_table[order][i][k] = accuracy(work, x, y)
                replaced[order][i] = count
    table = {
        "fractions": fractions,
        "orders": orders,
        "task_names": list(task_names) if task_names else [f"task {k + 1}" for k in range(len(data))],
        "baseline": baseline,
        "accuracy": accuracy_table,
        "replaced": replaced,
        "items": items,
        "settings": {"level": level, "scope": scope, "action": action, "how": how, "seed": seed,
                     "covered": sorted(omega), "untouched": sorted(untouched)},
    }
    if json_path is not None:
        from sequential_learning.results import atomic_write_text

        atomic_write_text(json_path, json.dumps(table, indent=1))
    if path is not None:
        plot_ablation(table, path)
    return table


def ablation_drops(table: dict, fraction: float, tasks: Sequence[int] | None = None) -> dict[str, float]:
    """Mean accuracy drop (baseline − ablated) over `tasks` (0-based; default all) per order."""
    if fraction not in table["fractions"]:
        raise ValueError(f"fraction {fraction} is not in the table ({table['fractions']})")
    i = table["fractions"].index(fraction)
    chosen = list(range(len(table["baseline"]))) if tasks is None else list(tasks)
    base = np.asarray(table["baseline"])[chosen]
    return {o: float(np.mean(base - np.asarray(table["accuracy"][o][i])[chosen]))
            for o in table["orders"]}


def ablation_rows(table: dict) -> list[dict]:
    """The table as flat rows: order, fraction, task, accuracy, drop."""
    rows = []
    for order in table["orders"]:
        for i, fraction in enumerate(table["fractions"]):
            for k, name in enumerate(table["task_names"]):
                acc = table["accuracy"][order][i][k]
                rows.append({"order": order, "fraction": fraction, "task": name, "accuracy": acc,
                             "drop": table["baseline"][k] - acc})
    return rows


def ablation_text(table: dict) -> str:
    """A plain-text table: one row per (order, fraction), one column per task, then the mean."""
    names = [f"T{k + 1}" for k in range(len(table["task_names"]))]
    header = f"{'order':<10} {'fraction':>8} " + " ".join(f"{n:>6}" for n in names) + f" {'mean':>6}"
    lines = [header, "-" * len(header)]
    base = table["baseline"]
    lines.append(f"{'none':<10} {0:>8.2f} " + " ".join(f"{a:6.3f}" for a in base)
                 + f" {np.mean(base):6.3f}")
    for order in table["orders"]:
        for i, fraction in enumerate(table["fractions"]):
            if fraction == 0.0:
                continue
            accs = table["accuracy"][order][i]
            lines.append(f"{order:<10} {fraction:>8.2f} " + " ".join(f"{a:6.3f}" for a in accs)
                         + f" {np.mean(accs):6.3f}")
    return "\n".join(lines)


_ORDER_STYLE = {"low": ("tab:green", "o"), "high": ("tab:red", "s"), "random": ("tab:gray", "^"),
                "magnitude": ("tab:blue", "d")}


def plot_ablation(table: dict, path: str | Path) -> Path:
    """`ablation.png`: one panel per task, accuracy against the fraction replaced, a line per order."""
    from matplotlib.figure import Figure

    from sequential_learning.plots import save_figure

    n = len(table["task_names"])
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    figure = Figure(figsize=(3.0 * cols, 2.8 * rows + 0.5))
    axes = figure.subplots(rows, cols, squeeze=False, sharey=True)
    for k in range(rows * cols):
        ax = axes[k // cols][k % cols]
        if k >= n:
            ax.set_axis_off()
            continue
        for order in table["orders"]:
            color, marker = _ORDER_STYLE.get(order, (None, "x"))
            ax.plot(table["fractions"], [row[k] for row in table["accuracy"][order]],
                    marker=marker, color=color, label=order)
        ax.set_title(table["task_names"][k], fontsize=9)
        ax.set_xlabel("fraction replaced")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if k % cols == 0:
            ax.set_ylabel("accuracy")
    axes[0][0].legend(fontsize=8, title="order", title_fontsize=8)
    s = table["settings"]
    title = (f"Ablation by importance: {s['action']} at level {s['level']}, scope "
             f"{s['scope']} (heads untouched)")
    if table.get("augment_settings"):
        title += "\n" + textwrap.fill(_settings_detail(table["augment_settings"]), 40 * cols)
    figure.suptitle(title, fontsize=10 if table.get("augment_settings") else None)
    figure.tight_layout()
    return save_figure(figure, path)


# -- importance maps -------------------------------------------------------------------------------
def importance_maps(
    model: keras.Model,
    importance: Importance,
    layer: str | keras.layers.Layer | None = None,
    how: str = "mean",
    steps: int = 64,
    seed: int = 0,
    path: str | Path | None = None,
    show: int = 8,
) -> dict:
    """Per conv filter: Ω aggregated, the filter's kernel and its activation-maximisation image.

    Args:
        model: a model with a convolutional layer Ω covers.
        importance: Ω, as for `threshold_model`.
        layer: the convolutional layer (name, path or object); None: the last one.
        how: Ω's reduction per filter.
        steps: gradient-ascent steps of activation maximisation.
        seed: seeds activation maximisation's starting noise.
        path: write a figure there: the `show` most and least important filters, each with its
            kernel (mean over input channels) and activation-maximisation image.
        show: filters drawn at each end.

    Returns:
        `{"layer": name, "importance": (F,), "kernels": (F, kh, kw, in), "images": (F, *input),
        "order": filter indices from most to least important}`.
    """
    from sequential_learning.interpret.activations import filter_activation_maximization
    from sequential_learning.interpret.base import resolve_conv_layer
    from sequential_learning.interpret.kernels import kernel_weights

    found = resolve_conv_layer(model, layer, "importance maps")
    if not _is_plain_conv(found):
        raise ValueError(f"layer {found.name!r} ({type(found).__name__}) is not a plain "
                         "convolution; importance maps need Conv1D/2D/3D")
    per_filter = aggregate_importance(importance, model, "filter", how)
    if found.kernel.path not in per_filter:
        raise ValueError(f"the importance does not cover layer {found.name!r} (its kernel is "
                         f"{found.kernel.path!r}; covered: {', '.join(per_filter) or 'none'})")
    omega = per_filter[found.kernel.path]
    kernels, _ = kernel_weights(model, found)
    images = filter_activation_maximization(model, found, steps=steps, seed=seed)
    result = {"layer": found.name, "importance": omega, "kernels": kernels, "images": images,
              "order": np.argsort(-omega, kind="stable")}
    if path is not None:
        plot_importance_maps(result, path, show)
    return result


#: Up to this many filters, the bars of the Ω chart are labelled with their filter numbers.
MAX_LABELLED_FILTERS = 32


def importance_maps_figure(maps: dict, show: int = 8):
    """The figure `plot_importance_maps` saves (a Matplotlib `Figure`, not shown).

    Args:
        maps: as `importance_maps` returns.
        show: filters drawn at each end.

    Returns:
        The figure: Ω of every filter sorted from most to least important (bars labelled with
        their filter numbers up to `MAX_LABELLED_FILTERS` filters, else integer ranks), then the
        most and least important filters' kernels (mean over input channels, blue negative,
        red positive, each on its own symmetric scale) and activation-maximisation images.

    Example:
    >>> figure = importance_maps_figure(importance_maps(model, omega, "base/conv", steps=0))
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, MaxNLocator

    from sequential_learning.interpret.plots import _displayable

    omega, order = np.asarray(maps["importance"]), np.asarray(maps["order"])
    show = max(1, min(int(show), len(order) // 2 or 1))
    picked = [("most important", order[:show]), ("least important", order[::-1][:show])]
    figure = Figure(figsize=(max(5.5, 1.3 * show + 1.5), 7.0))
    grid = figure.add_gridspec(5, show, height_ratios=[1.4, 1, 1, 1, 1])
    top = figure.add_subplot(grid[0, :])
    top.bar(np.arange(len(omega)), omega[order], color="tab:purple")
    if len(omega) <= MAX_LABELLED_FILTERS:
        top.xaxis.set_major_locator(FixedLocator(np.arange(len(omega))))
        top.set_xticklabels([str(int(f)) for f in order],
                            fontsize=8 if len(omega) <= 16 else 6)
        top.set_xlabel("filter number, most to least important")
    else:
        top.xaxis.set_major_locator(MaxNLocator(integer=True))
        top.set_xlabel("rank of the filter, most to least important")
    top.set_xlim(-0.6, len(omega) - 0.4)
    top.set_ylabel("Ω per filter")
    for block, (label, indices) in enumerate(picked):
        for j, f in enumerate(indices):
            kernel = np.asarray(maps["kernels"][f])
            kernel = kernel.mean(axis=-1) if kernel.ndim == 3 else kernel
            limit = float(np.max(np.abs(kernel))) or 1.0
            ax = figure.add_subplot(grid[1 + 2 * block, j])
            ax.imshow(kernel if kernel.ndim == 2 else kernel.reshape(1, -1), cmap="bwr",
                      vmin=-limit, vmax=limit)
            ax.set_title(f"#{int(f)} Ω={float(omega[f]):.2g}", fontsize=7)
            ax.set_axis_off()
            if j == 0:
                ax.text(-0.15, 0.5, f"{label}\nkernel\n(blue −, red +)", transform=ax.transAxes,
                        ha="right", va="center", fontsize=7)
            image, cmap = _displayable(np.asarray(maps["images"][f]))
            ax = figure.add_subplot(grid[2 + 2 * block, j])
            ax.imshow(image, cmap=cmap)
            ax.set_axis_off()
            if j == 0:
                ax.text(-0.15, 0.5, "input that\nexcites it most", transform=ax.transAxes,
                        ha="right", va="center", fontsize=7)
    figure.suptitle(f"Filters of {maps['layer']} by importance")
    figure.tight_layout()
    return figure


def plot_importance_maps(maps: dict, path: str | Path, show: int = 8) -> Path:
    """Sorted Ω of every filter, then the most and least important filters' kernels and images.

    Args:
        maps: as `importance_maps` returns.
        path: where to write the PNG.
        show: filters drawn at each end.

    Returns:
        The path written.
    """
    from sequential_learning.plots import save_figure

    return save_figure(importance_maps_figure(maps, show), path)


# -- explanation drift -----------------------------------------------------------------------------
def rankdata(values: Any) -> np.ndarray:
    """Ranks 1..n of a flattened array, ties given their average rank (as `scipy.stats.rankdata`)."""
    x = np.ravel(np.asarray(values))
    sorter = np.argsort(x, kind="mergesort")
    inverse = np.empty(len(x), np.intp)
    inverse[sorter] = np.arange(len(x))
    xs = x[sorter]
    new = np.r_[True, xs[1:] != xs[:-1]]
    dense = np.cumsum(new)[inverse]
    bounds = np.r_[np.nonzero(new)[0], len(new)]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two arrays (flattened); NaN when either is constant."""
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"spearman needs arrays of the same size, got {a.size} and {b.size}")
    ra, rb = rankdata(a) - (a.size + 1) / 2, rankdata(b) - (b.size + 1) / 2
    denominator = math.sqrt(float(np.sum(ra * ra)) * float(np.sum(rb * rb)))
    return float(np.sum(ra * rb) / denominator) if denominator > 0 else math.nan


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    from sequential_learning.checkpoint import read_npz

    return read_npz(Path(path))


def weights_after_task(run_dir: str | Path, after_task: int, models: Sequence[keras.Model]) -> None:
    """Sets the (loaded) task models' variables to their values right after task `after_task`.

    Like `load_task_models(run_dir, after_task)`, on models already loaded (so loops over tasks
    load each model once).
    """
    from sequential_learning.checkpoint import CHECKPOINT_DIR, CheckpointError

    data = _read_npz(Path(run_dir) / CHECKPOINT_DIR / f"weights_after_task_{after_task}.npz")
    for k, model in enumerate(models, start=1):
        index = data.get(f"index_task_{k}")
        if index is None or len(index) != len(model.weights):
            raise CheckpointError(f"Checkpoint after task {after_task} does not match task model {k}")
        for v, i in zip(model.weights, index):
            value = data[f"v{int(i)}"]
            if tuple(value.shape) != tuple(v.shape):
                raise CheckpointError(
                    f"Checkpoint after task {after_task}: variable {v.path} of task model {k} has "
                    f"shape {tuple(v.shape)} but the checkpoint holds {tuple(value.shape)}")
            v.assign(value)


def _samples(run_dir: Path, task: int, count: int | None) -> tuple[np.ndarray, np.ndarray]:
    path = run_dir / "samples" / f"task_{task}.npz"
    from sequential_learning.errors import SeqlError

    if not path.is_file():
        raise SeqlError(f"No validation samples for task {task}: expected {path} (arrays x, y)")
    with np.load(path, allow_pickle=False) as data:
        if "x" not in data.files or "y" not in data.files:
            raise SeqlError(f"{path} lacks arrays 'x' and 'y'; found {data.files}")
        x, y = data["x"], data["y"]
    return (x, y) if count is None else (x[:count], y[:count])


def _fit_input(model: keras.Model, x: np.ndarray) -> np.ndarray:
    shape = tuple(model.input_shape[1:])
    if None not in shape and x.shape[1:] != shape and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        return x.reshape((len(x), *shape))
    return x


def _explain(model, x, y, method: str, layer) -> np.ndarray:
    from sequential_learning.interpret.gradcam import grad_cam
    from sequential_learning.interpret.occlusion import occlusion_sensitivity

    if method == "grad-cam":
        return grad_cam(model, x, y, layer=layer)
    side = min(x.shape[1:3])
    patch = max(1, side // 7)
    return occlusion_sensitivity(model, x, y, patch_size=patch, stride=max(1, patch // 2),
                                 baseline=0.0)


def _run_label(run_dir: Path) -> str:
    from sequential_learning.results import Results

    try:
        config = Results.load(run_dir).config
    except Exception:  # noqa: BLE001 - a label is a nicety; the folder name will do
        return run_dir.name
    return str(config.get("method", run_dir.name))


def explanation_drift(
    runs: str | Path | Sequence[str | Path],
    methods: Sequence[str] = DRIFT_METHODS,
    images: int = 16,
    layer: str | None = None,
    labels: Sequence[str] | None = None,
    path: str | Path | None = None,
    json_path: str | Path | None = None,
) -> dict:
    """How much each task's explanations change while later tasks are learned.

    For each run and each task k, the first `images` of `samples/task_k.npz` are explained (for
    their labels) by task k's model as it was right after task k and after every later task j
    (from the run's checkpoints); the similarity at j is the mean over images of the Spearman
    rank correlation between the map at j and the map right after k (1 at j = k).

    Args:
        runs: one run directory, or several (e.g. `none` and `fisher` on the same stream).
        methods: any of `DRIFT_METHODS` (`grad-cam` at the last convolutional layer, or
            `layer`; `occlusion` with square patches of about a seventh of the image side).
            Grad-CAM is skipped, with a note, for models without convolutions.
        images: images per task.
        layer: Grad-CAM's layer (default: the last convolutional layer).
        labels: a label per run (default: the run's method; the folder name when two agree).
        path: write `drift.png` there: similarity against the tasks learned since, one line per
            run and method, and task 1's similarity after each task.
        json_path: write the table there as JSON.

    Returns:
        `{"rows": [{"run", "method", "task", "after_task", "similarity", "valid_images",
        "accuracy"}], "by_distance": {run: {method: [mean similarity d tasks later]}},
        "notes": [...]}`.
    """
    from sequential_learning.checkpoint import load_task_models
    from sequential_learning.results import Results

    run_dirs = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]
    if not run_dirs:
        raise ValueError("explanation_drift needs at least one run directory")
    methods = list(methods)
    if not methods:
        raise ValueError("methods: give at least one of " + ", ".join(DRIFT_METHODS))
    for m in methods:
        _choice(m, DRIFT_METHODS, "explanation method")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be an integer >= 1, got {images!r}")
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise ValueError(f"Run directory {run_dir} does not exist")
    names = list(labels) if labels else [_run_label(r) for r in run_dirs]
    if len(names) != len(run_dirs):
        raise ValueError(f"{len(run_dirs)} runs but {len(names)} labels")
    if len(set(names)) < len(names):
        names = [f"{n} ({r.name})" for n, r in zip(names, run_dirs)]
    if len(set(names)) < len(names):
        names = [f"{n} [{i + 1}]" for i, n in enumerate(names)]
    rows, notes, by_distance = [], [], {}
    for run_dir, name in zip(run_dirs, names):
        from sequential_learning.interpret.base import conv_layer_paths

        models = load_task_models(run_dir)
        try:
            matrix = Results.load(run_dir).accuracy_matrix
        except Exception:  # noqa: BLE001 - accuracy is context only
            matrix = None
        count = len(models)
        run_methods = list(methods)
        if "grad-cam" in run_methods and not conv_layer_paths(models[0]):
            run_methods.remove("grad-cam")
            notes.append(f"{name}: no convolutional layer, Grad-CAM skipped")
        if not run_methods:
            raise ValueError(f"{run_dir}: none of {methods} applies to its models (Grad-CAM needs a "
                             "convolutional layer; add occlusion)")
        samples = {k: _samples(run_dir, k, images) for k in range(1, count + 1)}
        samples = {k: (_fit_input(models[k - 1], x), y) for k, (x, y) in samples.items()}
        maps: dict[tuple, np.ndarray] = {}
        for j in range(1, count + 1):
            weights_after_task(run_dir, j, models)
            for k in range(1, j + 1):
                x, y = samples[k]
                for m in run_methods:
                    maps[m, k, j] = _explain(models[k - 1], x, y, m, layer)
        by_distance[name] = {}
        for m in run_methods:
            per_distance: list[list[float]] = [[] for _ in range(count)]
            for k in range(1, count + 1):
                for j in range(k, count + 1):
                    values = [spearman(a, b) for a, b in zip(maps[m, k, k], maps[m, k, j])]
                    valid = [v for v in values if not math.isnan(v)]
                    similarity = float(np.mean(valid)) if valid else math.nan
                    acc = None if matrix is None else float(matrix[j - 1, k - 1])
                    rows.append({"run": name, "method": m, "task": k, "after_task": j,
                                 "similarity": similarity, "valid_images": len(valid),
                                 "accuracy": acc})
                    if not math.isnan(similarity):
                        per_distance[j - k].append(similarity)
            by_distance[name][m] = [float(np.mean(v)) if v else math.nan for v in per_distance]
    table = {"rows": rows, "by_distance": by_distance, "notes": notes,
             "settings": {"methods": methods, "images": images, "layer": layer,
                          "runs": [str(r) for r in run_dirs]}}
    if json_path is not None:
        from sequential_learning.results import atomic_write_text, to_jsonable

        atomic_write_text(json_path, json.dumps(to_jsonable(table), indent=1))
    if path is not None:
        plot_drift(table, path)
    return table


def drift_text(table: dict) -> str:
    """Mean similarity to the maps right after each task, by tasks learned since."""
    width = max(len(v) for r in table["by_distance"].values() for v in r.values())
    header = f"{'run':<20} {'method':<10} " + " ".join(f"{'+' + str(d):>6}" for d in range(width))
    lines = [header, "-" * len(header)]
    for run, per_method in table["by_distance"].items():
        for m, values in per_method.items():
            lines.append(f"{run[:20]:<20} {m:<10} " + " ".join(f"{v:6.3f}" for v in values))
    return "\n".join(lines)


def plot_drift(table: dict, path: str | Path) -> Path:
    """`drift.png`: (left) mean similarity against tasks learned since; (right) task 1's."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from sequential_learning.plots import save_figure

    figure = Figure(figsize=(10, 3.8))
    left, right = figure.subplots(1, 2, sharey=True)
    colors = [f"C{i}" for i in range(10)]
    styles = {"grad-cam": "-", "occlusion": "--"}
    for i, (run, per_method) in enumerate(table["by_distance"].items()):
        for m, values in per_method.items():
            label = f"{run}, {m}"
            left.plot(range(len(values)), values, styles.get(m, ":"), marker="o",
                      color=colors[i % 10], label=label)
            first = [r for r in table["rows"] if r["run"] == run and r["method"] == m and r["task"] == 1]
            right.plot([r["after_task"] for r in first], [r["similarity"] for r in first],
                       styles.get(m, ":"), marker="o", color=colors[i % 10], label=label)
    left.set_xlabel("tasks learned since")
    left.set_ylabel("Spearman similarity to the maps\nright after the task (mean)")
    left.set_title("all tasks", fontsize=10)
    right.set_xlabel("after task")
    right.set_title("task 1", fontsize=10)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.05, 1.05)
    left.legend(fontsize=8)
    figure.suptitle("Explanation drift")
    figure.tight_layout()
    return save_figure(figure, path)


# -- a run directory: `seql augment` and `seql drift` ------------------------------------------------
def _run_config(run_dir: Path) -> dict:
    """The config in the run's `results.json`, or a one-line `SeqlError` naming the file."""
    from sequential_learning.errors import SeqlError

    path = run_dir / "results.json"
    if not path.is_file():
        raise SeqlError(f"{path} is missing; the benchmark is rebuilt from the config it holds")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SeqlError(f"{path} cannot be read ({reason}); expected the JSON a run writes"
                        ) from None
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise SeqlError(f"{path} holds no 'config' object; expected the JSON a run writes")
    if "benchmark" not in config:
        raise SeqlError(f"the config in {path} names no benchmark")
    return config


def _benchmark_tasks(run_dir: Path, count: int) -> tuple[list, str]:
    """Every validation image of the run's benchmark, rebuilt from its config."""
    from sequential_learning.data.benchmarks import make_benchmark
    from sequential_learning.errors import SeqlError

    c = _run_config(run_dir)
    try:
        stream = make_benchmark(
            c["benchmark"], c.get("scenario"), c.get("seed", 0), c.get("num_tasks") or 5,
            c.get("classes_per_task", 2), data=c.get("data"), data_dir=c.get("data_dir"),
            limit=c.get("limit"), class_order=c.get("class_order"), angles=c.get("angles"))
    except (ValueError, TypeError, KeyError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SeqlError(f"benchmark {c['benchmark']!r} of {run_dir / 'results.json'} cannot be "
                        f"rebuilt: {reason}") from None
    if len(stream) != count:
        raise SeqlError(f"the rebuilt benchmark has {len(stream)} tasks, the run {count}")
    sizes = [len(t.x_val) for t in stream]
    return ([(t.x_val, t.y_val) for t in stream],
            f"benchmark {c['benchmark']} validation data ({sum(sizes)} images)")


def _evaluation_tasks(run_dir: Path, count: int, data: str) -> tuple[list, str, str, str | None]:
    """`(tasks, what was used, "benchmark" or "samples", why auto fell back or None)`."""
    from sequential_learning.errors import SeqlError

    _choice(data, ("auto", "benchmark", "samples"), "data")
    note = None
    if data != "samples":
        try:
            tasks, what = _benchmark_tasks(run_dir, count)
            return tasks, what, "benchmark", None
        except SeqlError as error:
            if data == "benchmark":
                raise SeqlError(f"--data benchmark: {error}; use --data samples to evaluate on "
                                "the run's saved samples") from None
            note = f"--data auto used the saved samples: {error}"
    try:
        tasks = [_samples(run_dir, k, None) for k in range(1, count + 1)]
    except SeqlError as error:
        if note is None:
            raise
        raise SeqlError(f"{error}; and {note.split(': ', 1)[1]}") from None
    what = f"the run's saved samples ({sum(len(x) for x, _ in tasks)} images, samples/)"
    if note is not None:
        what += f", because {note.split(': ', 1)[1]}"
    return tasks, what, "samples", note


def evaluation_tasks(run_dir: str | Path, count: int, data: str = "auto") -> tuple[list, str]:
    """Each task's validation data for a run: the whole validation sets, or the saved samples.

    Args:
        run_dir: the run directory.
        count: the number of task models.
        data: `"benchmark"` (rebuild the run's benchmark from the config in its
            `results.json`: every validation image), `"samples"` (`samples/task_K.npz`, 64 images
            per task) or `"auto"` (the benchmark when it can be rebuilt, else the samples — and
            then what was used says why, naming the file and the error).

    Returns:
        `([(x, y) per task], what was used)`.

    Raises:
        SeqlError: with `data="benchmark"`, a `results.json` that is missing, corrupted or names
            no benchmark, or a benchmark that cannot be rebuilt (one line naming the file and
            the error); with any `data`, missing samples when they are needed.

    Example:
    >>> tasks, what = evaluation_tasks("runs/x", 5)
    >>> what
    'benchmark split-digits validation data (360 images)'
    """
    tasks, what, _, _ = _evaluation_tasks(Path(run_dir), count, data)
    return tasks, what


def folded_anchor(run_dir: str | Path, models: Sequence[keras.Model], task: int | None) -> dict:
    """θ* for `action="anchor"`: the weights right after `task`, or for Ω summed over tasks the
    Ω-weighted mean of every task's anchor (what the folded penalty pulls towards)."""
    from sequential_learning.checkpoint import load_importance

    saved = [[np.asarray(v.numpy()) for v in m.weights] for m in models]
    current = {v.path: value for v, value in zip(models[0].weights, saved[0])}

    def after(k):
        weights_after_task(run_dir, k, models)
        return {v.path: np.asarray(v.numpy()) for v in models[0].weights}

    try:
        if task is not None:
            return after(task)
        total: dict = {}
        weighted: dict = {}
        for k in range(1, len(models) + 1):
            paths, omega = load_importance(run_dir, task=k)
            anchor = after(k)
            for p, o in zip(paths, omega):
                total[p] = total.get(p, 0.0) + o
                weighted[p] = weighted.get(p, 0.0) + o * anchor[p]
        out = dict(current)
        for p, t in total.items():
            out[p] = np.where(t > 0, weighted[p] / np.where(t > 0, t, 1.0), current[p])
        return out
    finally:
        for model, values in zip(models, saved):  # back to the weights they had
            model.set_weights(values)


#: `augment_run`'s defaults: settings equal to these leave no mark in the output names.
AUGMENT_DEFAULTS: dict[str, Any] = {
    "fractions": [0.1, 0.2, 0.5], "level": "weight", "action": "zero", "scope": "model",
    "orders": list(ORDERS), "how": "mean", "importance_task": None, "after_task": None,
    "data": "benchmark", "seed": 0,
}
#: Output names longer than this use a short hash of the settings instead of naming each one.
MAX_NAME_LENGTH = 80


def _fraction_text(fractions: Sequence[float]) -> str:
    return "-".join(f"{f:g}" for f in fractions)


def augment_settings_suffix(settings: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """The part of an output name that says which settings differ from `AUGMENT_DEFAULTS`.

    Args:
        settings: `augment_run`'s settings (`level`, `action` are named by the stem itself);
            `data` is the data actually evaluated on (`"benchmark"` or `"samples"`).
        keys: only these settings (default: every one but `level` and `action`).

    Returns:
        `""` for the defaults, else e.g. `"_omega-task2_after-task3_samples"`; when that would
        be long, `"_s"` and 8 hex digits of a hash of the settings (stable across runs).

    Example:
    >>> augment_settings_suffix({**AUGMENT_DEFAULTS, "importance_task": 2, "how": "max"})
    '_how-max_omega-task2'
    """
    keys = [k for k in AUGMENT_DEFAULTS if k not in ("level", "action")] if keys is None else keys
    changed = {k: settings.get(k) for k in keys if settings.get(k) != AUGMENT_DEFAULTS[k]}
    words = {
        "scope": lambda v: f"per-{v}",  # e.g. ablation_zero_weight_per-layer
        "how": lambda v: f"how-{v}",
        "importance_task": lambda v: f"omega-task{v}",
        "after_task": lambda v: f"after-task{v}",
        "orders": lambda v: "orders-" + "-".join(v),
        "fractions": lambda v: "f" + _fraction_text(v),
        "data": lambda v: str(v),
        "seed": lambda v: f"seed{v}",
    }
    parts = [words[k](v) for k, v in changed.items()]
    suffix = "".join(f"_{p}" for p in parts)
    if len(suffix) > MAX_NAME_LENGTH - 20:
        import hashlib

        text = json.dumps({k: changed[k] for k in sorted(changed)}, sort_keys=True)
        suffix = "_s" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return suffix


def _settings_detail(settings: Mapping[str, Any]) -> str:
    omega = ("Ω summed over tasks" if settings.get("importance_task") is None
             else f"Ω of task {settings['importance_task']}")
    models = ("final models" if settings.get("after_task") is None
              else f"models after task {settings['after_task']}")
    return (f"{omega}, {models}, how {settings['how']}, orders {'/'.join(settings['orders'])}, "
            f"fractions {_fraction_text(settings['fractions']).replace('-', '/')}, seed "
            f"{settings['seed']}, evaluated on the {settings['data']}")


def augment_settings_label(settings: Mapping[str, Any]) -> str:
    """The settings in words, for a figure or a report.

    Args:
        settings: `augment_run`'s settings (as in the table's `augment_settings`).

    Returns:
        e.g. `"zero, level weight, scope model, Ω summed over tasks, final models, how mean,
        orders low/high/random/magnitude, fractions 0.1/0.2/0.5, seed 0, evaluated on the
        benchmark"`.

    Example:
    >>> augment_settings_label({**AUGMENT_DEFAULTS, "after_task": 2})[:40]
    'zero, level weight, scope model, Ω summe'
    """
    return (f"{settings['action']}, level {settings['level']}, scope {settings['scope']}, "
            + _settings_detail(settings))


def augment_run(
    run_dir: str | Path,
    fractions: Sequence[float] | str = (0.1, 0.2, 0.5),
    level: str = "weight",
    action: str = "zero",
    scope: str = "model",
    orders: Sequence[str] | str = ORDERS,
    how: str = "mean",
    importance_task: int | None = None,
    after_task: int | None = None,
    data: str = "auto",
    seed: int = 0,
    maps: bool = True,
    out: str | Path | None = None,
) -> dict:
    """`seql augment`: ablation curves (and importance maps) of a run; files in `RUN_DIR/augment/`.

    Args:
        run_dir: a run directory with saved importance (any method but `none`).
        fractions: fractions in [0, 1] (a list, or `"0.1,0.2,0.5"`).
        level, action, scope, how: as for `threshold_model`.
        orders: a list, or comma-separated.
        importance_task: use task K's Ω (1-based); None sums every task's Ω.
        after_task: ablate the task models as they were right after task K; None: the final ones.
        data: `"auto"`, `"benchmark"` or `"samples"` (see `evaluation_tasks`).
        seed: seeds the random order, ties and noise.
        maps: also draw `importance_maps` for each convolutional layer Ω covers.
        out: the output folder (default `RUN_DIR/augment`).

    Files are named by every setting that changes them, so runs with other settings never replace
    each other and the same settings twice overwrite the same files: `ablation_zero_weight.*`
    for the defaults, with a suffix naming what differs (`augment_settings_suffix`), e.g.
    `ablation_zero_filter_omega-task2_samples.json`; `importance_maps_<layer>[suffix].png` by
    the settings the maps depend on (how, importance task, after task, seed). The JSON table
    holds `name`, `augment_settings` and a readable `label` of them.

    Returns:
        `{"table": the ablation table, "paths": files written, "evaluated_on": str, "notes":
        [why --data auto used the saved samples, when it did]}`.

    Raises:
        SeqlError: bad options; with `data="benchmark"`, a corrupted or missing `results.json`
            or a benchmark that cannot be rebuilt (naming the file and the error).

    Example:
    >>> done = augment_run("runs/x", "0.2", level="filter", importance_task=2)
    >>> done["paths"][1].name
    'ablation_zero_filter_f0.2_omega-task2.json'
    """
    from sequential_learning.checkpoint import load_importance, load_task_models
    from sequential_learning.results import atomic_write_text

    fractions = parse_fractions(fractions)
    if isinstance(orders, str):
        orders = [o.strip() for o in orders.split(",") if o.strip()]
    for order in orders or [None]:
        _check_options(level, scope, order, action, how)
    for name, value in (("importance task", importance_task), ("after task", after_task)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a task number >= 1, got {value!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"Run directory {run_dir} does not exist")
    importance = load_importance(run_dir, task=importance_task)
    models = load_task_models(run_dir, after_task=after_task)
    anchor = folded_anchor(run_dir, models, importance_task) if action == "anchor" else None
    tasks, evaluated_on, source, note = _evaluation_tasks(run_dir, len(models), data)
    out = Path(out) if out is not None else run_dir / "augment"
    settings = {"fractions": [f for f in fractions if f > 0], "level": level, "action": action, "scope": scope,
                "orders": list(orders), "how": how, "importance_task": importance_task,
                "after_task": after_task, "data": source, "seed": int(seed)}
    stem = f"ablation_{action}_{level}" + augment_settings_suffix(settings)
    table = ablation_curve(tasks, models, importance, fractions, orders, level, scope, action,
                           how, anchor, seed)
    table["evaluated_on"] = evaluated_on
    table["importance"] = "summed over tasks" if importance_task is None else f"task {importance_task}"
    table["models"] = "final" if after_task is None else f"after task {after_task}"
    table["name"] = stem
    table["augment_settings"] = {**settings, "data_requested": data}
    table["label"] = augment_settings_label(settings)
    notes = [] if note is None else [note]
    table["notes"] = notes
    paths = [out / f"{stem}.png", out / f"{stem}.json", out / f"{stem}.csv"]
    plot_ablation(table, paths[0])
    atomic_write_text(paths[1], json.dumps(table, indent=1))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["order", "fraction", "task", "accuracy", "drop"])
    writer.writeheader()
    writer.writerows(ablation_rows(table))
    atomic_write_text(paths[2], buffer.getvalue())
    if maps:
        from sequential_learning.interpret.base import conv_layer_paths, find_layer

        covered = set(as_importance(importance))
        # The maps depend on Ω, the models, the reduction and the seed only.
        maps_suffix = augment_settings_suffix(settings, ("how", "importance_task", "after_task",
                                                         "seed"))
        for layer_path in conv_layer_paths(models[0]):
            found = find_layer(models[0], layer_path)
            if _is_plain_conv(found) and found.kernel.path in covered:
                target = out / f"importance_maps_{found.name}{maps_suffix}.png"
                importance_maps(models[0], importance, found, how=how, seed=seed, path=target)
                paths.append(target)
    return {"table": table, "paths": paths, "evaluated_on": evaluated_on, "notes": notes}


def drift_runs(
    run_dirs: Sequence[str | Path],
    methods: Sequence[str] | str = DRIFT_METHODS,
    images: int = 16,
    layer: str | None = None,
    out: str | Path | None = None,
) -> dict:
    """`seql drift`: `explanation_drift` of one or more runs; `drift.png`, `drift.json` written to
    `out` (default: the first run's `augment/` folder).

    Returns:
        `{"table": the drift table, "paths": files written}`.
    """
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not run_dirs:
        raise ValueError("drift: give at least one run directory")
    out = Path(out) if out is not None else Path(run_dirs[0]) / "augment"
    paths = [out / "drift.png", out / "drift.json"]
    table = explanation_drift(run_dirs, methods, images, layer, path=paths[0], json_path=paths[1])
    return {"table": table, "paths": paths}


__all__ = [
    "ACTIONS",
    "AUGMENT_DEFAULTS",
    "DRIFT_METHODS",
    "HOWS",
    "LEVELS",
    "ORDERS",
    "SCOPES",
    "ablation_curve",
    "ablation_drops",
    "ablation_name",
    "ablation_rows",
    "ablation_text",
    "augment_settings_label",
    "augment_settings_suffix",
    "accuracy",
    "aggregate_importance",
    "as_importance",
    "augment_run",
    "check_fraction",
    "drift_runs",
    "drift_text",
    "evaluation_tasks",
    "explanation_drift",
    "folded_anchor",
    "importance_maps",
    "importance_maps_figure",
    "parse_fractions",
    "plot_ablation",
    "plot_drift",
    "plot_importance_maps",
    "rankdata",
    "spearman",
    "threshold_model",
    "weights_after_task",
]
