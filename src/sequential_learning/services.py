"""Services: the manager's cross-cutting jobs as small classes with named hooks.

As Avalanche's strategy plugins (`training/templates/base_sgd.py`), every job that is not
ordering tasks — evaluating, recording results, checking the loss, logging to TensorBoard, the
progress line, writing the run folder — is a service whose hooks the manager calls, in order,
with itself as the one argument (its `clock`, `tasks`, `results`, `evaluations`, `logs`,
`trainer` and `experience` say where the run stands). A service defines only the hooks it needs.

Hooks, in the order they run:

* `before_training(manager)`: once, before the first task (after the untrained evaluation of a
  new run, in `manager.evaluations`).
* `task_callbacks(manager) -> list`: Keras callbacks for the `fit` of the task starting.
* `after_training_epoch(manager)`: after every epoch (`manager.logs`: the epoch's training logs;
  `manager.evaluations`: every task's evaluation, or None when the epoch was not evaluated).
* `after_training_exp(manager)`: after a task and its plugins' `after_training_exp`.
* `after_training(manager)`: once, at the end.
* `on_failure(manager)`: when the run stops with an error or an interruption.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras


class Service:
    """Base class of the manager's services: every hook does nothing by default.

    Example:
    ```python
    class PrintLoss(Service):
        def after_training_epoch(self, manager):
            print(manager.clock.global_epoch, manager.logs["loss"])
    ```
    """

    def before_training(self, manager: Any) -> None:
        """Once, before the first task."""

    def task_callbacks(self, manager: Any) -> list[keras.callbacks.Callback]:
        """Keras callbacks for the `fit` of the task starting."""
        return []

    def after_training_epoch(self, manager: Any) -> None:
        """After every epoch of every task."""

    def after_training_exp(self, manager: Any) -> None:
        """After every task."""

    def after_training(self, manager: Any) -> None:
        """Once, at the end of the run."""

    def on_failure(self, manager: Any) -> None:
        """When the run stops with an error or an interruption."""


def call_hook(services: Sequence[Any], hook: str, manager: Any) -> list:
    """Calls `hook(manager)` of every service that has it, in order.

    Args:
        services: the services (objects defining any of the hooks; see the module's list).
        hook: the hook's name, e.g. `"after_training_epoch"`.
        manager: the `SequentialLearningManager`, the hook's one argument.

    Returns:
        What the calls returned, in order (for `task_callbacks`: one list of Keras callbacks per
        service that has the hook).

    Example:
    ```python
    callbacks = [c for got in call_hook(manager.services, "task_callbacks", manager) for c in got]
    ```
    """
    return [getattr(s, hook)(manager) for s in services if hasattr(s, hook)]


class EpochHooks(keras.callbacks.Callback):
    """A Keras callback that runs the manager's epoch hooks from inside a task's `fit`.

    At each epoch's start it resets the trainer's step counter; at its end it sets
    `manager.logs` to the epoch's logs, advances `manager.clock` and calls every service's
    `after_training_epoch`.

    Args:
        manager: the `SequentialLearningManager`.

    Example:
    ```python
    task.fit(epochs=5, callbacks=[EpochHooks(manager)])
    ```
    """

    def __init__(self, manager: Any) -> None:
        super().__init__()
        self.manager = manager

    def on_epoch_begin(self, epoch, logs=None):
        self.manager.trainer.reset_epoch_step()

    def on_epoch_end(self, epoch, logs=None):
        self.manager.logs = logs or {}
        self.manager.clock.end_epoch(epoch)
        call_hook(self.manager.services, "after_training_epoch", self.manager)


class PluginEpochHooks(Service):
    """The plugins' `after_training_epoch`, at its place among the services."""

    def after_training_epoch(self, manager: Any) -> None:
        for plugin in manager.plugins:
            plugin.after_training_epoch(manager.experience, manager.clock.epoch, manager.logs)


class PluginTaskEnd(Service):
    """The plugins' `before_exp_evaluation`: after a task's last epoch, before it is evaluated
    (placed before `PeriodicEvaluation`, so the task's row of the accuracy matrix measures the
    model as the plugins left it)."""

    def after_training_epoch(self, manager: Any) -> None:
        clock = manager.clock
        if clock.epoch + 1 == clock.task_epochs:
            for plugin in manager.plugins:
                plugin.before_exp_evaluation(manager.experience)
