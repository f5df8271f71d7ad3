"""Which compiled trainer a task trains with: a new one, or the previous task's, reset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from sequential_learning import backend
from sequential_learning.optimizers import make_optimizer
from sequential_learning.signature import CompiledSteps
from sequential_learning.tasks import SequentialTask, same_step


class TrainerCache:
    """Keeps the last task's trainer, to reuse it where the next task's step is the same.

    Tasks whose models are the same layers (one head for all: the domain- and
    class-incremental streams) and have the same loss and metrics share one compiled train
    step (the penalty is switched on inside it), so tracing (about 2 s for an MLP
    784-400-400-10) happens once per run, not once per task. Only with the built-in
    optimizers: resetting their state (the step count and the slots, to zero; the learning
    rate kept) is exactly a fresh optimizer, while a user's factory gets a new one.

    Args:
        optimizer: `"adam"`, `"sgd"` or a callable returning a fresh Keras optimizer.
        learning_rate: the built-in optimizers' learning rate.

    Example:
    ```python
    cache = TrainerCache("adam", 1e-3)
    trainer = cache.reusable(task) or task.make_trainer(cache.make_optimizer())
    cache.remember(task, trainer)
    ```
    """

    def __init__(self, optimizer: str | Callable[[], keras.optimizers.Optimizer],
                 learning_rate: float) -> None:
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self._previous: tuple[SequentialTask, keras.Model] | None = None
        # Compiled train steps by signature, shared by the run's trainers (JAX: one
        # compilation for every task whose step is the same computation, e.g. task-IL heads).
        self.compiled_steps = CompiledSteps()

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        """A fresh optimizer."""
        if callable(self.optimizer):
            return self.optimizer()
        return make_optimizer(self.optimizer, self.learning_rate)

    def remember(self, task: SequentialTask, trainer: keras.Model) -> None:
        """`trainer` is the one `task` trains with."""
        self._previous = (task, trainer)

    def trainer_for(self, manager: Any, task: SequentialTask, exp: Any) -> keras.Model:
        """The task's compiled trainer: the previous one reused where the step is the same.

        Args:
            manager: the `SequentialLearningManager` (its plugins, covered variables, strategy,
                and `_reusable_trainer`, which tests replace to turn reuse off).
            task: the task starting.
            exp: its `Experience`.

        Returns:
            The trainer, remembered for the next task.
        """
        plugins = manager.plugins
        routes = max((p.routed_tasks(exp) for p in plugins), default=0)
        routed_data = any(p.routed_data(exp) for p in plugins)
        route_tasks = None if manager.shared_head or routes == 0 else manager.tasks[:routes]
        with manager.strategy.scope():
            trainer = manager._reusable_trainer(task)
            if trainer is None:
                trainer = task.make_trainer(self.make_optimizer(), covered=manager.covered,
                                            plugins=plugins, routes=route_tasks,
                                            routed_data=routed_data)
                trainer.shared_steps = self.compiled_steps
            self.remember(task, trainer)
        return trainer

    def reusable(self, task: SequentialTask) -> keras.Model | None:
        """The previous task's trainer, its optimizer reset, if it computes this task's step."""
        if self._previous is None or callable(self.optimizer):
            return None
        previous, trainer = self._previous
        if not same_step(previous, task):
            return None
        optimizer = trainer.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return None  # its loss scale is state that must not be zeroed
        kept = {id(v) for v in _learning_rate_variables(optimizer)}
        for variable in optimizer.variables:
            if id(variable) not in kept:
                variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
        return trainer


def _learning_rate_variables(optimizer) -> list:
    """The optimizer's learning-rate variable (a setting, not state), if it has one."""
    rate = getattr(optimizer, "_learning_rate", None)
    if isinstance(rate, keras.Variable):
        return [rate]
    if backend.is_tensorflow():
        import tensorflow as tf

        return [rate] if isinstance(rate, tf.Variable) else []
    return []
