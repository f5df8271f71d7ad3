"""What a compiled step computes apart from its variables' values, so that one compilation serves
every task whose step is the same computation.

On JAX a compiled train or test step is a pure function of the values of the variables it reads:
the task models of a task-incremental stream (the shared base and a head of the same size each)
compute the same function of different heads' values, so the step compiled for the first task
serves every later one with the same signature, and a stream compiles its step once instead of
once per task. A signature is the model's configuration with every layer name replaced by its
position (heads are named per task), the loss's and metrics' configurations, the optimizer's
configuration, the shapes and dtypes of every state variable, and the trainer's settings that
are fixed when the step is traced. Anything that cannot be described gives None: no sharing.

What the plugins' in-graph hooks read from Python attributes is traced in too: per-task state
must live in variables (see `plugins.base.Plugin`), and the plugins themselves (the same objects
for every task of a run) are part of the signature by identity.

Example:
```python
key = model_signature(task.model)     # equal for tasks[0].model and tasks[1].model (task-IL)
```
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any

import keras

__all__ = ["CompiledSteps", "model_signature", "state_signature", "test_step_signature",
           "train_step_signature"]


class CompiledSteps:
    """A run's compiled steps by signature, shared by its trainers and evaluations.

    A plain object holding a dict, so that a Keras model it is set on does not wrap a copy of
    the dict for tracking (each trainer would then have its own).

    Example:
    ```python
    steps = CompiledSteps()
    trainer.shared_steps = steps     # every trainer of the run: one compilation per signature
    ```
    """

    def __init__(self) -> None:
        self.by_signature: dict = {}
        # The compiled evaluations of every task at once (`evaluation.OneCallEvaluation`).
        self.evaluations: dict = {}


def _layer_names(config: Any, names: dict[str, str]) -> None:
    if isinstance(config, dict):
        name = config.get("name")
        if isinstance(name, str) and name not in names:
            names[name] = f"#{len(names)}"
        for value in config.values():
            _layer_names(value, names)
    elif isinstance(config, list | tuple):
        for value in config:
            _layer_names(value, names)


def _renamed(config: Any, names: dict[str, str]) -> Any:
    if isinstance(config, dict):
        return {k: _renamed(v, names) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [_renamed(v, names) for v in config]
    if isinstance(config, str):
        return names.get(config, config)
    return config


def _described(obj: Any) -> str:
    """`obj`'s class and configuration as canonical JSON, names replaced by positions."""
    if obj is None or isinstance(obj, str | int | float | bool):
        return json.dumps(obj)
    config = obj.get_config() if hasattr(obj, "get_config") else None
    if config is None:
        raise TypeError(f"{type(obj).__name__} has no configuration")
    names: dict[str, str] = {}
    _layer_names(config, names)
    return json.dumps([type(obj).__module__, type(obj).__qualname__, _renamed(config, names)],
                      sort_keys=True, default=repr)


def state_signature(variables: Sequence) -> tuple:
    """The shapes and dtypes of `variables`, in order.

    Args:
        variables: Keras variables.

    Returns:
        A tuple of `(shape, dtype)` pairs.

    Example:
    ```python
    state_signature(model.trainable_variables)    # (((64, 100), 'float32'), ((100,), 'float32'))
    ```
    """
    return tuple((tuple(int(d) for d in v.shape), str(v.dtype)) for v in variables)


def model_signature(model: keras.Model) -> Hashable | None:
    """What `model` computes apart from its weights' values: its configuration with every layer
    name replaced by its position, and its variables' shapes.

    Args:
        model: a Keras model.

    Returns:
        A hashable signature, or None where the model cannot describe itself (a subclassed model
        without `get_config`).

    Example:
    ```python
    model_signature(tasks[0].model) == model_signature(tasks[1].model)    # True: task-IL heads
    ```
    """
    try:
        return (_described(model), state_signature(model.variables))
    except Exception:  # noqa: BLE001 - an undescribable model is simply not shared
        return None


def _compiled_parts(model: keras.Model) -> str:
    """The compiled loss and metrics of `model`: `compile`'s arguments, serialised, and every
    metric's class and name."""
    config = model.get_compile_config() or {}
    names: dict[str, str] = {}
    _layer_names(config, names)
    parts = [json.dumps(_renamed(config, names), sort_keys=True, default=repr)]
    parts += [f"{type(m).__module__}.{type(m).__qualname__}:{m.name}" for m in model.metrics]
    return json.dumps(parts)


def train_step_signature(trainer: Any) -> Hashable | None:
    """What a `ContinualTrainer`'s compiled train step computes apart from its state's values.

    Two trainers with the same signature trace the same computation: the step compiled for one
    is exact for the other, given the other's state.

    Args:
        trainer: a compiled, built `ContinualTrainer`.

    Returns:
        A hashable signature, or None (no sharing: something cannot be described).

    Example:
    ```python
    train_step_signature(first) == train_step_signature(second)    # task-IL, same head sizes
    ```
    """
    try:
        routes = [t.model for t in trainer._router_tasks or []]
        return (
            _described(trainer.task_model),
            tuple(_described(m) for m in routes),
            _compiled_parts(trainer),
            _described(trainer.optimizer),  # names replaced: Keras numbers them (adam_1)
            tuple(id(p) for p in trainer.plugins),
            bool(trainer.routed_data),
            tuple(trainer.covered_indices),
            bool(trainer.needs_old_values),
            int(trainer.steps_per_execution),
            state_signature(trainer.trainable_variables),
            state_signature(trainer.non_trainable_variables),
            state_signature(trainer.optimizer.variables),
            state_signature(trainer.metrics_variables),
            _layout(trainer, routes),
        )
    except Exception:  # noqa: BLE001 - an undescribable trainer is simply not shared
        return None


def _layout(trainer: Any, routes: list) -> tuple:
    """Where each model and plugin the step reads finds its variables in the trainer's state.

    The compiled step reads its state by position. Two trainers whose models and state lists
    look alike can still place them differently: under joint training every trainer routes
    task t's samples through task t's head, but each lists its own task's head first, so a step
    compiled for task 1 would send task 1's samples through task 2's head when run on task 2's
    state. The positions of every model's and plugin's variables tell them apart.
    """
    position: dict[int, int] = {}
    for v in [*trainer.trainable_variables, *trainer.non_trainable_variables,
              *trainer.optimizer.variables, *trainer.metrics_variables]:
        position.setdefault(id(v), len(position))

    def where(variables) -> tuple:
        return tuple(position.get(id(v), -1) for v in variables)

    return (where(trainer.task_model.variables),
            tuple(where(m.variables) for m in routes),
            tuple(where(p.variables()) for p in trainer.plugins))


def test_step_signature(model: keras.Model) -> Hashable | None:
    """What a compiled model's test step computes apart from its state's values: the model's
    signature and its compiled loss and metrics.

    Args:
        model: a compiled Keras model.

    Returns:
        A hashable signature, or None (no sharing).

    Example:
    ```python
    test_step_signature(tasks[0].model) == test_step_signature(tasks[1].model)   # task-IL
    ```
    """
    structure = model_signature(model)
    if structure is None:
        return None
    try:
        return (structure, _compiled_parts(model))
    except Exception:  # noqa: BLE001 - an undescribable model is simply not shared
        return None
