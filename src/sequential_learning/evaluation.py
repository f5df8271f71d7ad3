"""Evaluation: the engine that evaluates one task, and the schedule of a run's evaluations.

`TaskEvaluator` runs a compiled model's own test step over pre-batched validation tensors,
compiled once: `tf.function` of the model's `test_step` on TensorFlow, `jax.jit` of the same
computation (`backend.ops().compiled`) on JAX, eagerly on PyTorch; tasks whose models compute the
same function share one (one trace).
`EvaluationSchedule` says after which epochs every task is evaluated, and `PeriodicEvaluation`
is the manager's service that does it (its hook `after_training_epoch`).

Example:
```python
schedule = EvaluationSchedule(eval_every=2)
schedule.due(epoch=1, epochs=5)     # True: the 2nd epoch (epochs count from 0)
evaluations = evaluate_all(tasks)   # one {metric: value} per task
```
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import tree

from sequential_learning import backend
from sequential_learning.pipeline import is_tf_dataset
from sequential_learning.signature import CompiledSteps, test_step_signature


class TaskEvaluator:
    """Evaluates one task's model on its validation data (`training=False`).

    The same numbers as `model.evaluate(..., return_dict=True)` without its per-call set-up
    (which dominates when every task is evaluated after every epoch). A model built under a
    multi-replica strategy is evaluated through a one-device twin (see `evaluation_model`).

    Args:
        task: the `SequentialTask` (its model, loss, metrics, validation data, batch size and,
            in a class-incremental stream, its classes).

    Example:
    ```python
    evaluator = TaskEvaluator(task)
    evaluator.set_subset(500, seed=1)
    evaluator.evaluate()           # {"loss": ..., "accuracy": ...} on the subset
    evaluator.evaluate(full=True)  # on the whole validation set
    ```
    """

    def __init__(self, task: Any) -> None:
        self.task = task
        self.subset: int | None = None
        self._subset_seed = 0
        self._eval_fn = None
        self._twin: keras.Model | None = None
        self._batches: list | None = None
        self._subset_batches: list | None = None
        self._owner: TaskEvaluator | None = None  # see share
        # The run's compiled steps (see `compiled_test_step`), set by `share_evaluations`.
        self.shared_steps: CompiledSteps | None = None

    def set_subset(self, size: int | None, seed: int = 0) -> None:
        """Evaluates on a fixed, seeded subset of `size` validation samples (None: all).

        `evaluate(full=True)` still uses the whole validation set. A `tf.data` validation set
        keeps its first `size` samples.

        Args:
            size: the subset's size, or None.
            seed: the seed choosing the subset.
        """
        if size is not None and (isinstance(size, bool) or int(size) < 1):
            raise ValueError(f"Task {self.task.name!r}: eval_subset must be >= 1 or None, "
                             f"got {size!r}")
        self.subset = None if size is None else int(size)
        self._subset_seed = int(seed)
        self._subset_batches = None

    def share(self, other: TaskEvaluator) -> None:
        """Evaluates through `other`'s model and compiled `test_step` (one trace for both).

        Only for a task whose model computes the same function with the same loss and metrics
        (the task models of a shared-head stream); the manager checks that.

        Args:
            other: the evaluator whose compiled evaluation this one uses.
        """
        owner = other._owner or other
        self._owner = None if owner is self else owner

    def evaluate(self, full: bool = False) -> dict[str, float]:
        """Evaluates the task model on the validation data (`training=False`).

        Args:
            full: use the whole validation set even when `set_subset` chose a subset.

        Returns:
            `{metric_name: value}`, as `model.evaluate(..., return_dict=True)` gives.
        """
        subset = None if full else self.subset
        owner = self._owner or self
        model = owner.evaluation_model()
        if owner._eval_fn is None:
            owner._eval_fn = compiled_test_step(model, self.task.active_classes,
                                                self.shared_steps)
        if self._batches is None:
            self._batches = list(self._validation_batches())
        batches = self._batches
        if subset is not None:
            if self._subset_batches is None:
                self._subset_batches = list(self._validation_batches(subset))
            batches = self._subset_batches
        model.reset_metrics()
        logs = {}
        with self._evaluating(), backend.ops().no_grad():
            for batch in batches:
                logs = owner._eval_fn(batch)
        return {k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()}

    def stacked_batches(self, full: bool = False) -> tuple:
        """The validation data as `(first, middle, rest)` for `evaluate_traced`.

        `first` is the first batch, `middle` the other full batches stacked on a new leading
        axis (None when there are none) and `rest` the last, smaller batch (None when the
        batches divide evenly): the batches `evaluate` runs, in the same order.

        Args:
            full: the whole validation set even when `set_subset` chose a subset.

        Returns:
            `(first, middle, rest)` of backend tensors.
        """
        x, y = self._validation_arrays(None if full else self.subset)
        size = self.task.eval_batch_size
        convert = keras.ops.convert_to_tensor
        first = (convert(x[:size]), convert(y[:size]))
        whole = (len(x) // size) * size
        middle = rest = None
        if whole > size:
            shape = (whole // size - 1, size)
            middle = (convert(x[size:whole].reshape(shape + x.shape[1:])),
                      convert(y[size:whole].reshape(shape + y.shape[1:])))
        if whole < len(x) and whole >= size:
            rest = (convert(x[whole:]), convert(y[whole:]))
        return first, middle, rest

    def evaluate_traced(self, data: tuple) -> dict:
        """This task's evaluation as part of one compiled evaluation of every task (JAX).

        The same computation as `evaluate` (the metrics reset, the batches of
        `stacked_batches` in order, this task's classes for a class-incremental stream), with
        the full batches in one `lax.scan`; callable inside `backend.ops().compiled`.

        Args:
            data: what `stacked_batches` returned.

        Returns:
            `{metric_name: tensor}`.
        """
        first, middle, rest = data
        owner = self._owner or self
        model = owner.evaluation_model()
        model.reset_metrics()
        with self._evaluating():
            test_step(model, first)
            if middle is not None:
                backend.ops().scan_assigning(lambda batch: test_step(model, batch),
                                             model.metrics_variables, middle)
            if rest is not None:
                test_step(model, rest)
            return model.get_metrics_result()

    def keras_evaluate(self, subset: int | None = None) -> dict[str, float]:
        """The same evaluation through `model.evaluate` (the reference the engine must match).

        Args:
            subset: evaluate on the seeded subset of this many samples (None: all).

        Returns:
            `{metric_name: value}`.
        """
        data = self._validation_arrays(subset)
        model = self.task.model
        if is_tf_dataset(data):
            result = model.evaluate(data, verbose=0, return_dict=True)
        else:
            result = model.evaluate(np.asarray(data[0], np.float32), np.asarray(data[1]),
                                    batch_size=self.task.eval_batch_size, verbose=0,
                                    return_dict=True)
        return {k: float(v) for k, v in result.items()}

    def _evaluating(self):
        """The context of this task's evaluation: its classes for the task-incremental
        accuracy of a class-incremental stream."""
        if self.task.active_classes is None:
            return contextlib.nullcontext()
        return self.task.active_classes.evaluating(self.task.classes)

    def _validation_arrays(self, subset: int | None = None):
        """The validation data: `(x, y)` arrays (a seeded subset), or a (truncated) dataset."""
        data = self.task.validation_data
        if is_tf_dataset(data):
            if subset is None:
                return data
            return data.unbatch().take(subset).batch(self.task.eval_batch_size)
        x, y = np.asarray(data[0], np.float32), np.asarray(data[1])
        if subset is not None and subset < len(x):
            rng = np.random.default_rng(self._subset_seed)
            index = np.sort(rng.choice(len(x), subset, replace=False))
            x, y = x[index], y[index]
        return x, y

    def _validation_batches(self, subset: int | None = None):
        data = self._validation_arrays(subset)
        if is_tf_dataset(data):
            yield from data
            return
        x, y = data
        size = self.task.eval_batch_size
        convert = keras.ops.convert_to_tensor
        if backend.is_tensorflow():
            import tensorflow as tf

            convert = tf.constant
        for start in range(0, len(x), size):
            yield (convert(x[start:start + size]), convert(y[start:start + size]))

    def evaluation_model(self) -> keras.Model:
        """The model that evaluation runs: the task model, or a one-device twin of it.

        Keras's `evaluate` under a multi-replica strategy fails on a last batch that does not
        split evenly across replicas, and evaluation needs no distribution: a model built under
        such a strategy is evaluated through a twin created outside it, which takes the
        task model's current weights before every evaluation (every worker computes the same
        numbers, with no collective ops).
        """
        task = self.task
        strategy = getattr(task.model, "distribute_strategy", None)
        if strategy is None or strategy.num_replicas_in_sync == 1:
            return task.model
        if self._twin is None:
            import tensorflow as tf  # a strategy with several replicas: TensorFlow's

            if tf.distribute.has_strategy():
                # Inside a strategy's scope the twin's variables would be distributed too; the
                # manager's first evaluation (before any training) runs outside it.
                raise RuntimeError(
                    f"Task {task.name!r}: evaluate once outside the strategy's scope first"
                )
            self._twin = keras.models.clone_model(task.model)
            self._twin.compile(loss=task.loss, metrics=task.metrics, jit_compile=False)
        self._twin.set_weights(task.model.get_weights())
        return self._twin


def test_step(model: keras.Model, data: Any) -> dict:
    """One evaluation batch, backend-neutral: Keras's own test step (its PyTorch one).

    The loss tracker and the compiled metrics take the batch; the metrics' results come back.

    Args:
        model: a compiled Keras model.
        data: a batch `(x, y)` or `(x, y, sample_weight)`.

    Returns:
        `{metric_name: value}` so far (`model.compute_metrics`'s).

    Example:
    ```python
    model.reset_metrics()
    logs = test_step(model, (x, y))
    ```
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = model(x, training=False)
    loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                               training=False)
    first = next(i for i in tree.flatten(x) if i is not None)
    model._loss_tracker.update_state(loss, sample_weight=keras.ops.shape(first)[0])
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def compiled_test_step(model: keras.Model, active_classes: Any = None,
                       shared: CompiledSteps | None = None):
    """The model's test step compiled once for the running backend.

    TensorFlow: `tf.function` of the model's own `test_step` (the numbers as before). JAX:
    `test_step` under `backend.ops().compiled`, given every variable it reads (the model's, its
    metrics' and the class masks'). PyTorch: `test_step` itself (eager).

    Args:
        model: a compiled Keras model.
        active_classes: a class-incremental stream's `ActiveClasses` (its masks are read), or None.
        shared: the run's compiled steps (JAX: models that compute the same function of their
            weights, the task-IL heads of one size, share one compilation); None: not shared.

    Returns:
        A function of one batch returning `{metric_name: value}`.

    Example:
    ```python
    step = compiled_test_step(task.model)
    model.reset_metrics()
    logs = [step(batch) for batch in batches][-1]
    ```
    """
    if backend.is_tensorflow():
        import tensorflow as tf

        return tf.function(model.test_step, reduce_retracing=True)
    if backend.name() == "torch":
        return lambda batch: test_step(model, batch)
    masks = active_classes.variables() if active_classes is not None else []

    def variables() -> list:
        # A function: the compiled metrics' variables exist only after the first call.
        found: dict[int, Any] = {}
        for v in [*model.variables, *model.metrics_variables, *masks]:
            found.setdefault(id(v), v)
        return list(found.values())

    share = None
    if shared is not None:
        share = (shared.by_signature, test_step_signature(model))
    return backend.ops().compiled(lambda batch: test_step(model, batch), variables, share)


def evaluate_all(tasks: Sequence, full: bool = False) -> list[dict[str, float]]:
    """Every task's evaluation, in task order (see `TaskEvaluator.evaluate`).

    Args:
        tasks: the `SequentialTask`s.
        full: use the whole validation sets even where a subset was chosen.

    Returns:
        One `{metric_name: value}` dict per task.

    Example:
    ```python
    evaluate_all(tasks)    # [{'loss': 0.21, 'accuracy': 0.94}, {'loss': 0.35, 'accuracy': 0.9}]
    ```
    """
    together = _one_call(tasks, full)
    if together is not None:
        return together()
    return [task.evaluate(full=full) for task in tasks]


def _one_call(tasks: Sequence, full: bool) -> OneCallEvaluation | None:
    """The run's compiled evaluation of every task in `tasks` (JAX), or None where it does not
    apply: another backend, tasks outside a run (`shared_steps` unset), a `tf.data` validation
    set, a `keras.distribution`, or `SEQL_JAX_ONE_CALL_EVAL=0`."""
    if backend.name() != "jax" or not tasks \
            or os.environ.get("SEQL_JAX_ONE_CALL_EVAL", "1") in ("", "0"):
        return None
    evaluators = [task.evaluator for task in tasks]
    steps = evaluators[0].shared_steps
    if steps is None or any(e.shared_steps is not steps for e in evaluators) \
            or any(is_tf_dataset(task.validation_data) for task in tasks):
        return None
    from keras.distribution import distribution

    if distribution() is not None:
        return None
    full = bool(full) or all(e.subset is None for e in evaluators)
    key = (tuple(id(e) for e in evaluators), full,
           tuple((e.subset, e._subset_seed) for e in evaluators))
    found = steps.evaluations.get(key)
    if found is None:
        found = steps.evaluations[key] = OneCallEvaluation(evaluators, full)
    return found


class OneCallEvaluation:
    """Every task's evaluation in one compiled call (JAX): `evaluate_all`'s engine there.

    The validation batches of every task go to the device once, stacked (see
    `TaskEvaluator.stacked_batches`); each call runs every task's test step over them, the full
    batches of a task in one `lax.scan`, and brings the metrics back in one transfer. The
    numbers are those of evaluating task by task (`TaskEvaluator.evaluate`), up to float
    rounding of the metrics' sums.

    Args:
        evaluators: the tasks' `TaskEvaluator`s, in task order.
        full: evaluate on the whole validation sets even where a subset was chosen.

    Example:
    ```python
    together = OneCallEvaluation([task.evaluator for task in tasks], full=False)
    together()    # one {metric: value} per task
    ```
    """

    def __init__(self, evaluators: Sequence[TaskEvaluator], full: bool) -> None:
        self.evaluators = list(evaluators)
        self.full = bool(full)
        self._data: list | None = None
        self._fn = None

    def __call__(self) -> list[dict[str, float]]:
        if self._data is None:
            self._data = [e.stacked_batches(self.full) for e in self.evaluators]
        if self._fn is None:
            self._build_metrics()
            self._fn = backend.ops().compiled(self._evaluate, self._variables())
        logs = self._fn(self._data)
        return [{k: float(keras.ops.convert_to_numpy(v)) for k, v in one.items()}
                for one in logs]

    def _evaluate(self, data: list) -> list:
        return [e.evaluate_traced(d) for e, d in zip(self.evaluators, data)]

    def _models(self) -> list[keras.Model]:
        return [(e._owner or e).evaluation_model() for e in self.evaluators]

    def _build_metrics(self) -> None:
        """Creates the compiled metrics' variables (Keras makes them on a model's first test
        step) outside the compiled function: one eager batch per model, nothing assigned."""
        done: set[int] = set()
        for model, data in zip(self._models(), self._data):
            if id(model) not in done:
                done.add(id(model))
                with keras.StatelessScope():
                    test_step(model, data[0])

    def _variables(self) -> list:
        found: dict[int, Any] = {}
        for e, model in zip(self.evaluators, self._models()):
            classes = e.task.active_classes
            masks = classes.variables() if classes is not None else []
            for v in [*model.variables, *model.metrics_variables, *masks]:
                found.setdefault(id(v), v)
        return list(found.values())


class EvaluationSchedule:
    """After which epochs of a task every task is evaluated.

    Args:
        eval_every: evaluate after every `eval_every`-th epoch of a task; the last epoch of each
            task is always evaluated, so the accuracy matrix is complete.
        eval_subset: evaluate on a fixed, seeded subset of this many validation samples per
            task (None: all); checked here, applied by each task (`set_evaluation_subset`).

    Example:
    ```python
    schedule = EvaluationSchedule(eval_every=3)
    [e for e in range(7) if schedule.due(e, 7)]   # [2, 5, 6]
    ```
    """

    def __init__(self, eval_every: int = 1, eval_subset: int | None = None) -> None:
        if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
            raise ValueError(f"eval_every must be an integer >= 1, got {eval_every!r}")
        if eval_subset is not None and (
            isinstance(eval_subset, bool) or not isinstance(eval_subset, int) or eval_subset < 1
        ):
            raise ValueError(f"eval_subset must be an integer >= 1 or None, got {eval_subset!r}")
        self.eval_every = eval_every
        self.eval_subset = eval_subset

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether every task is evaluated after `epoch` (from 0) of a task of `epochs` epochs."""
        return epoch + 1 == epochs or (epoch + 1) % self.eval_every == 0


class PeriodicEvaluation:
    """The manager's service evaluating every task after the epochs its schedule names.

    Sets `manager.evaluations` (one `{metric: value}` per task, or None when the epoch is not
    evaluated) and adds the time spent to `results.timing["evaluation_seconds"]`.

    Args:
        schedule: the `EvaluationSchedule`.

    Example:
    ```python
    services = [PeriodicEvaluation(EvaluationSchedule(eval_every=2)), *other_services]
    ```
    """

    def __init__(self, schedule: EvaluationSchedule) -> None:
        self.schedule = schedule

    def after_training_epoch(self, manager: Any) -> None:
        """Evaluates every task when the epoch just finished is due."""
        clock = manager.clock
        due = self.schedule.due(clock.epoch, clock.task_epochs)
        start = time.perf_counter()
        manager.evaluations = evaluate_all(manager.tasks) if due else None
        timing = manager.results.timing
        timing["evaluation_seconds"] = (
            timing.get("evaluation_seconds", 0.0) + time.perf_counter() - start
        )
