"""Ω per weight, per unit or per convolutional filter: `aggregate_importance`.

Ω covers the variables the consolidation penalty covers (the shared base), matched to a model's
variables by path (e.g. `base_conv_1/kernel`). At level `unit` a Dense unit's incoming kernel
column and its bias share one value; at level `filter` a conv filter's kernel and bias do.
`importance_groups` is the grouping the thresholding ranks.

Example:
```python
per_filter = aggregate_importance(load_importance("runs/x"), model, level="filter")
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from sequential_learning.ablation.options import HOWS, LEVELS, Importance, check_choice


def as_importance(importance: Importance) -> dict[str, np.ndarray]:
    """Ω as `{variable path: array}`, from a dict or from `(paths, arrays)` (`load_importance`).

    Args:
        importance: `{variable path: array}` or `(paths, arrays)`.

    Returns:
        `{variable path: float array}`.

    Raises:
        ValueError: for another type, or paths and arrays of different lengths.

    Example:
    ```python
    omega = as_importance(load_importance(run_dir))   # {"base/dense/kernel": ..., ...}
    ```
    """
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


def as_values(values: Any, what: str) -> dict[str, np.ndarray]:
    """Anchor values as `{path: array}`, from a model, a dict or `(paths, arrays)`.

    Args:
        values: a Keras model (its weights by path), `{path: array}` or `(paths, arrays)`.
        what: the option's name, for messages (`anchor`).

    Returns:
        `{variable path: array}`.

    Raises:
        ValueError: naming `what`, for values of another form.

    Example:
    ```python
    anchor = as_values(models_after_task[0], "anchor")
    ```
    """
    if isinstance(values, keras.Model):
        return {v.path: np.asarray(keras.ops.convert_to_numpy(v)) for v in values.weights}
    try:
        return as_importance(values)
    except ValueError as error:
        raise ValueError(f"{what}: {str(error).replace('importance', 'values')}") from None


# -- grouping: which weights share one value --------------------------------------------------------
def _owners(model: keras.Model) -> dict[str, tuple[str, keras.layers.Layer]]:
    """`{variable path: (layer path, layer)}` for the leaf layers of a (nested) model."""
    from sequential_learning.interpret.layers import walk_layers

    owners: dict[str, tuple[str, keras.layers.Layer]] = {}
    for layer_path, layer in walk_layers(model):
        if isinstance(layer, keras.Model):
            continue
        for v in layer.weights:
            owners.setdefault(v.path, (layer_path, layer))
    return owners


def is_plain_conv(layer: keras.layers.Layer | None) -> bool:
    """Whether a layer is an ordinary convolution (not depthwise or separable).

    Args:
        layer: a Keras layer, or None.

    Returns:
        True for `Conv1D` / `Conv2D` / `Conv3D` (and their transposes); False otherwise.

    Example:
    ```python
    is_plain_conv(keras.layers.Conv2D(8, 3))            # True
    is_plain_conv(keras.layers.DepthwiseConv2D(3))      # False
    ```
    """
    from sequential_learning.interpret.layers import is_conv

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
        if isinstance(layer, keras.layers.Dense) or is_plain_conv(layer):
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
class ImportanceGroup:
    """The covered variables of one layer; `items` things (weights or units) to rank.

    Attributes:
        layer: the layer's path.
        conv: whether it is a plain convolution (filters can be ablated).
        members: its variables, each with its Ω and its unit axis.
        level: `weight`, `unit` or `filter`: what one ranked item is.

    Example:
    ```python
    group = importance_groups(omega, model, "unit")[0]
    group.layer, group.items   # ("base/dense", 100)
    ```
    """

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


def importance_groups(importance: Importance, model: keras.Model, level: str) -> list[ImportanceGroup]:
    """Ω grouped by layer, ready to be ranked at a level.

    Args:
        importance: Ω as `{variable path: array}` or `(paths, arrays)`.
        model: the model whose variables Ω covers (matched by path).
        level: `weight` (every weight an item), `unit` (a layer's output unit: its kernel column
            and bias together) or `filter` (convolutional filters only; other layers left out).

    Returns:
        One `ImportanceGroup` per layer that Ω covers.

    Raises:
        ValueError: for an unknown level, or Ω that does not match the model's variables.

    Example:
    ```python
    groups = importance_groups(load_importance(run_dir), model, "unit")
    print(sum(g.items for g in groups))
    ```
    """
    check_choice(level, LEVELS, "level")
    omega = as_importance(importance)
    owners = _owners(model)
    by_layer: dict[str, tuple[keras.layers.Layer | None, list]] = {}
    for path, variable, array in _match(omega, model):
        layer_path, layer = owners.get(path, (path, None))
        by_layer.setdefault(layer_path, (layer, []))[1].append((path, variable, array))
    groups = []
    for layer_path, (layer, entries) in by_layer.items():
        conv = is_plain_conv(layer)
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
        groups.append(ImportanceGroup(layer_path, conv, members, "weight" if level == "weight" else "unit"))
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
    ```python
    >>> per_filter = aggregate_importance(importance, model, level="filter")
    >>> per_filter["base_conv_1/kernel"].shape
    (32,)
    ```
    """
    check_choice(how, HOWS, "how")
    out = {}
    for group in importance_groups(importance, model, level):
        if group.level == "weight":
            out.update({m.path: m.omega.astype(np.float32) for m in group.members})
            continue
        value = group.reduce([m.omega for m in group.members], how).astype(np.float32)
        out.update({m.path: value for m in group.members})
    return out
