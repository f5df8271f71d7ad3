"""`ContinualModel`: any registered method inside a user's own `compile` / `fit` loop.

The manager is one way to run a stream; a Keras user with their own training code needs only
this wrapper. It is a `keras.Model` that carries the method's plugins into Keras's own `fit`
(on every backend), so callbacks, `validation_data`, `evaluate`, `predict` and `save` work as
usual. Between tasks, one call: `end_task()` (importance and anchors, buffer, teacher).

```python
model = ContinualModel(net, method="fisher", ewc_lambda=100.0)
model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
model.fit(x_a, y_a, epochs=2)
model.end_task()
model.fit(x_b, y_b, epochs=2, validation_data=(x_bv, y_bv))
model.save("net.keras")        # the wrapped network, loadable without this package
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from sequential_learning.plugins.base import Experience, Run
from sequential_learning.training import ContinualTrainer

#: Methods that need the whole stream in advance (they train on every task's data at once).
_STREAM_ONLY = ("joint", "cumulative")


class ContinualModel(ContinualTrainer):
    """Wraps a Keras model so that `fit` on task after task runs a continual-learning method.

    Each `fit` trains the current task; `end_task()` closes it (the method's
    `after_training_exp`: Fisher/MAS importance and anchors, a replay buffer's fill, a teacher
    for LwF), and the next `fit` opens the next task. Several `fit` calls before `end_task()`
    train the same task. The method's state (Ω, anchors, buffers) lives in variables of this
    model, so on JAX it is threaded through Keras's stateless train step like the weights.

    Args:
        model: the network (one head for every task: domain- or class-incremental).
        method: a registered method name (`"fisher"`, `"si"`, `"replay"`, `"fisher+replay"`,
            `"derpp"`, ...), a `Plugin`, or a list of them. `joint` and `cumulative` need the
            whole stream in advance: use the manager.
        covered: the variables a consolidation penalty covers (default: every trainable one).
        num_tasks: how many tasks will come (A-GEM splits its memory by it; default 1).
        seed: seeds the method's random draws (buffers).
        **options: the method's options (`ewc_lambda`, `fisher_mode`, `memory`, `lwf_alpha`,
            ...; `seql list methods` shows them).

    Example:
    ```python
    model = ContinualModel(net, method="fisher", ewc_lambda=100.0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_a, y_a, epochs=2)
    model.end_task()
    model.fit(x_b, y_b, epochs=2)
    ```
    """

    def __init__(self, model: keras.Model, method: Any = "fisher",
                 covered: Sequence | None = None, num_tasks: int | None = None,
                 seed: int = 0, **options: Any) -> None:
        from sequential_learning.method import resolve_method

        plugins, _, self.method_name = resolve_method(method, **options)
        stream_only = [p.name for p in plugins if p.name in _STREAM_ONLY]
        if stream_only:
            raise ValueError(f"{stream_only[0]} trains on every task's data at once; run it "
                             "with SequentialLearningManager, not ContinualModel")
        if num_tasks is not None and int(num_tasks) < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        self._num_tasks = int(num_tasks or 1)
        self._seed = int(seed)
        covered = list(covered) if covered is not None else list(model.trainable_variables)
        for plugin in plugins:
            plugin.built = False  # built on the first fit, when the data's shapes are known
        super().__init__(model, covered=covered, plugins=plugins)
        self._run: Run | None = None
        self._experience: Experience | None = None
        self.tasks_done = 0

    # -- tasks ---------------------------------------------------------------------------------
    def _task_view(self, x, y, batch_size: int):
        """A `SequentialTask` over the data of `fit`: what the plugins read of a task."""
        from sequential_learning.tasks import SequentialTask

        x, y = np.asarray(x), np.asarray(y)
        loss = self.loss if self.loss is not None else "sparse_categorical_crossentropy"
        return SequentialTask(f"task {self.tasks_done + 1}", self.task_model, (x, y),
                              (x[:1], y[:1]), loss=loss, batch_size=batch_size,
                              shuffle_seed=self._seed)

    def _begin_task(self, x, y, batch_size: int) -> None:
        task = self._task_view(x, y, batch_size)
        if self._run is None:
            self._run = Run(tasks=[task] * self._num_tasks, covered=self.covered,
                            base_model=None, seed=self._seed, shared_head=True,
                            task_type="classification" if task._is_classification()
                            else "regression")
            for plugin in self.plugins:
                plugin.check(self._run)
            for plugin in self.plugins:
                plugin.build(self._run)
                plugin.built = True
            self.track_plugin_variables()
        index = self.tasks_done
        if index >= len(self._run.tasks):
            self._run.tasks.append(task)
        else:
            self._run.tasks[index] = task
        self._experience = Experience(index, task, self._run)
        for plugin in self.plugins:
            if plugin.routed_data(self._experience):
                raise ValueError(f"{plugin.name} routes samples to several heads; "
                                 "ContinualModel trains one model for every task")
            plugin.before_training_exp(self._experience)

    def fit(self, x=None, y=None, batch_size: int | None = None, **kwargs) -> Any:
        """Keras's `fit`, on the current task (opened on the first call after `end_task`).

        Args:
            x: the task's training inputs (NumPy arrays: the method keeps samples and
                estimates importance from them).
            y: its labels.
            batch_size: as Keras's (default 32).
            **kwargs: Keras's `fit` arguments (`epochs`, `callbacks`, `validation_data`, ...).

        Returns:
            Keras's `History`.
        """
        if x is None or y is None:
            raise ValueError("ContinualModel.fit needs arrays x and y (the method keeps "
                             "samples of them and estimates importance from them)")
        if self._experience is None:
            self._begin_task(x, y, int(batch_size or 32))
        return super().fit(x, y, batch_size=batch_size, **kwargs)

    def end_task(self) -> dict:
        """Closes the current task: the method's end-of-task work (importance, buffers).

        Returns:
            What the method reported of this task (e.g. `{"importance": ...}` for EWC).

        Raises:
            ValueError: when no task has been trained since the last `end_task`.
        """
        if self._experience is None:
            raise ValueError("end_task() with no task trained since the last one: call fit "
                             "first")
        exp = self._experience
        for plugin in self.plugins:
            plugin.after_training_exp(exp)
        self._experience = None
        self.tasks_done += 1
        return exp.summary

    # -- saving --------------------------------------------------------------------------------
    def save(self, filepath, *args, **kwargs) -> None:
        """Saves the wrapped network (Keras's `save`), loadable without this package.

        Args:
            filepath: a `.keras` (or `.h5`) path, as Keras's `save`.
            *args: Keras's `save` arguments.
            **kwargs: Keras's `save` arguments.

        Returns:
            None.
        """
        self.task_model.save(filepath, *args, **kwargs)

    def save_weights(self, filepath, *args, **kwargs) -> None:
        """Saves the wrapped network's weights (Keras's `save_weights`).

        Args:
            filepath: a `.weights.h5` path.
            *args: Keras's `save_weights` arguments.
            **kwargs: Keras's `save_weights` arguments.

        Returns:
            None.
        """
        self.task_model.save_weights(filepath, *args, **kwargs)
