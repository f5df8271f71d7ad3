"""SequentialTask: one task's model, data, loss and metrics; compiles, fits and evaluates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from sequential_learning import backend
from sequential_learning.evaluation import TaskEvaluator
from sequential_learning.importance.base import ImportanceEstimator
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.pipeline import array_dataset, check_dataset_backend, is_tf_dataset
from sequential_learning.signature import CompiledSteps
from sequential_learning.training import ContinualTrainer

#: `(x, y)` NumPy arrays, or (on TensorFlow only) a `tf.data.Dataset` of `(x, y)` batches.
Data = tuple[np.ndarray, np.ndarray] | Any

__all__ = ["Data", "SequentialTask", "array_dataset", "covered_variables", "same_model", "same_step",
           "share_evaluations", "tasks_from_benchmark"]


class SequentialTask:
    """Everything about one task of a stream.

    The model is the shared base plus this task's own head, built with the functional API so the
    base's layers (and variables) are shared between task models.

    Args:
        name: a short name for plots and results (e.g. `"task 1 (0/1)"`).
        model: the task model. Outputs logits by default (see `from_logits`).
        train_data: `(x, y)` NumPy arrays, or (TensorFlow only) a `tf.data.Dataset` of `(x, y)`
            batches.
        validation_data: the same, for evaluation after every epoch.
        loss: a Keras loss (name or object). Default: sparse categorical cross-entropy on logits.
        metrics: Keras metrics; the first is the one the accuracy matrix records. Default:
            `["accuracy"]` for classification.
        batch_size: training batch size for array data.
        eval_batch_size: evaluation batch size for array data (large: evaluation is cheap).
        from_logits: whether the model outputs logits (True) or probabilities.
        num_classes: the head's number of classes (default: the model's last output dimension).
        shuffle_seed: seed of the per-epoch shuffle of array training data.
        higher_is_better: whether the recorded metric improves upwards (accuracy) or down (MSE).
        steps_per_execution: training steps per compiled call (Keras's `steps_per_execution`):
            8 by default, which takes about a fifth off the CPU time of an epoch of small
            batches; batch-level callbacks then run every that many steps. PyTorch runs one
            step per call (Keras's torch trainer needs it): 1 there whatever is given.
        classes: the labels (head outputs) this task trains, e.g. `[4, 5]` in a
            class-incremental stream (default: None, unknown).
        active_classes: the stream's `ActiveClasses` in a class-incremental stream with unseen
            classes masked (see `sequential_learning.class_incremental`); evaluation then sets
            this task's `classes` as the task-incremental accuracy's.

    Example:
    ```python
    task = SequentialTask("task 1", model, (x_train, y_train), (x_val, y_val), batch_size=32)
    ```
    """

    def __init__(
        self,
        name: str,
        model: keras.Model,
        train_data: Data,
        validation_data: Data,
        loss: Any = None,
        metrics: Sequence[Any] | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 1024,
        from_logits: bool = True,
        num_classes: int | None = None,
        shuffle_seed: int = 0,
        higher_is_better: bool = True,
        steps_per_execution: int = 8,
        classes: Sequence[int] | None = None,
        active_classes: Any = None,
    ) -> None:
        self.name = name
        self.classes = None if classes is None else [int(c) for c in classes]
        self.active_classes = active_classes
        if active_classes is not None and self.classes is None:
            raise ValueError(f"Task {name!r}: active_classes needs the task's classes")
        self.model = model
        self.from_logits = from_logits
        self.loss = loss if loss is not None else keras.losses.SparseCategoricalCrossentropy(
            from_logits=from_logits
        )
        self.metrics = list(metrics) if metrics is not None else ["accuracy"]
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.shuffle_seed = int(shuffle_seed)
        self.higher_is_better = higher_is_better
        if isinstance(steps_per_execution, bool) or int(steps_per_execution) < 1:
            raise ValueError(
                f"Task {name!r}: steps_per_execution must be an integer >= 1, "
                f"got {steps_per_execution!r}"
            )
        self.steps_per_execution = 1 if backend.name() == "torch" else int(steps_per_execution)
        self.num_classes = num_classes
        self.train_data = train_data
        self.validation_data = validation_data
        self.evaluator = TaskEvaluator(self)
        self.validate()
        self.model.compile(loss=self.loss, metrics=self.metrics, jit_compile=_jit_compile())

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Checks data against the model; raises ValueError naming the task and what is expected."""
        if self.batch_size < 1:
            raise ValueError(f"Task {self.name!r}: batch_size must be >= 1, got {self.batch_size}")
        expected = tuple(self.model.input_shape[1:])
        outputs = self.model.output_shape[-1]
        if self.num_classes is None and self._is_classification():
            self.num_classes = int(outputs)
        for split, data in (("training", self.train_data), ("validation", self.validation_data)):
            check_dataset_backend(data, f"Task {self.name!r}: {split} data")
            if is_tf_dataset(data):
                spec = data.element_spec
                x_spec = spec[0] if isinstance(spec, tuple) else spec
                got = tuple(x_spec.shape[1:])
                if not _shape_fits(got, expected):
                    raise ValueError(
                        f"Task {self.name!r}: {split} inputs have shape {got} per sample, but the "
                        f"model expects {expected}"
                    )
                continue
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise ValueError(
                    f"Task {self.name!r}: {split} data must be (x, y) arrays or a tf.data.Dataset"
                )
            x, y = np.asarray(data[0]), np.asarray(data[1])
            if len(x) == 0:
                raise ValueError(f"Task {self.name!r}: the {split} data set is empty")
            if len(x) != len(y):
                raise ValueError(
                    f"Task {self.name!r}: {split} x has {len(x)} samples but y has {len(y)}"
                )
            if not _shape_fits(tuple(x.shape[1:]), expected):
                raise ValueError(
                    f"Task {self.name!r}: {split} inputs have shape {tuple(x.shape[1:])} per "
                    f"sample, but the model expects {expected}"
                )
            if not np.all(np.isfinite(x)):
                raise ValueError(f"Task {self.name!r}: {split} inputs contain NaN or infinity")
            if self._is_classification():
                if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
                    raise ValueError(
                        f"Task {self.name!r}: {split} labels must be integer class indices"
                    )
                low, high = int(np.min(y)), int(np.max(y))
                if low < 0 or high >= int(self.num_classes):
                    raise ValueError(
                        f"Task {self.name!r}: {split} labels span {low}..{high}, but the head has "
                        f"{self.num_classes} classes (labels must be in 0..{self.num_classes - 1})"
                    )

    def _is_classification(self) -> bool:
        loss = self.loss
        name = loss if isinstance(loss, str) else type(loss).__name__
        return "categorical" in str(name).lower()

    # -- data ------------------------------------------------------------------------------------
    def training_dataset(self, seed_offset: int = 0) -> Any:
        """The training data as shuffled (seeded) batches (see `pipeline.array_dataset`).

        Args:
            seed_offset: added to the task's shuffle seed.

        Returns:
            A `tf.data.Dataset` on TensorFlow, a `pipeline.ArrayBatches` elsewhere (a given
            `tf.data.Dataset` as it is).
        """
        if is_tf_dataset(self.train_data):
            return self.train_data
        x, y = self.train_data
        return array_dataset(x, y, self.batch_size, self.shuffle_seed + seed_offset)

    def _first_rows(self) -> tuple[Any, Any] | None:
        """The first `batch_size` training samples, unshuffled (None for a `tf.data` dataset)."""
        if is_tf_dataset(self.train_data):
            return None
        x, y = self.train_data
        rows = (np.asarray(x[: self.batch_size], np.float32), np.asarray(y[: self.batch_size]))
        if backend.is_tensorflow():
            import tensorflow as tf

            return tf.constant(rows[0]), tf.constant(rows[1])
        return rows

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Up to `n` training samples (a seeded random subset), for importance estimation."""
        if is_tf_dataset(self.train_data):
            xs, ys, count = [], [], 0
            for xb, yb in self.train_data:
                xs.append(np.asarray(xb))
                ys.append(np.asarray(yb))
                count += len(xs[-1])
                if count >= n:
                    break
            return np.concatenate(xs)[:n], np.concatenate(ys)[:n]
        x, y = np.asarray(self.train_data[0]), np.asarray(self.train_data[1])
        if len(x) <= n:
            return x, y
        index = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
        return x[index], y[index]

    # -- training and evaluation -------------------------------------------------------------------
    def make_trainer(
        self,
        optimizer: keras.optimizers.Optimizer,
        penalty: ConsolidationPenalty | None = None,
        estimator: ImportanceEstimator | None = None,
        covered: Sequence | None = None,
        plugins: Sequence = (),
        routes: Sequence | None = None,
        routed_data: bool = False,
    ) -> ContinualTrainer:
        """A compiled `ContinualTrainer` for this task's model.

        Args:
            optimizer: a fresh Keras optimizer.
            penalty: a consolidation penalty (shorthand for a `Consolidation` plugin).
            estimator: its importance estimator.
            covered: the variables the penalty and trackers cover.
            plugins: the plugins whose in-graph hooks run in the step.
            routes: the tasks whose models routed samples go through (see `ContinualTrainer`).
            routed_data: the training batches carry task ids.

        Returns:
            The compiled trainer.
        """
        trainer = ContinualTrainer(self.model, penalty, estimator, covered, plugins, routes,
                                   routed_data)
        # Keras's multi-step loop fails under multi-replica strategies ("You must feed a value
        # for placeholder ... while/cond"): one step per call there.
        replicas = backend.replicas()
        trainer.compile(
            optimizer=optimizer,
            loss=self.loss,
            metrics=self.metrics,
            jit_compile=_jit_compile(),
            steps_per_execution=self.steps_per_execution if replicas == 1 else 1,
        )
        return trainer

    def fit(
        self,
        trainer: keras.Model,
        epochs: int,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        seed_offset: int = 0,
        dataset: Any = None,
    ) -> keras.callbacks.History:
        """Trains this task for `epochs` epochs with `trainer` (from `make_trainer`).

        Args:
            trainer: the compiled trainer.
            epochs: epochs to train.
            initial_epoch: the epoch count to start from.
            callbacks: Keras callbacks.
            seed_offset: added to the shuffle seed (the manager gives each task its own).
            dataset: the training stream to use instead of the task's own (a plugin's
                `adapt_dataset`).

        Returns:
            Keras's `History` of the fit.
        """
        own = dataset is None
        if own:
            dataset = self.training_dataset(seed_offset)
        # Each iterator of a reshuffling dataset takes the next order when it is created (before
        # reading anything). One is created whether or not the trainer needs a sample batch, so
        # fit's epochs see the same orders with a new trainer and with one reused from the
        # previous task (see the manager).
        # (An ArrayBatches takes its orders from its own generator: no iterator to skip.)
        skipped = iter(dataset) if is_tf_dataset(dataset) else None
        if getattr(trainer, "sample_batch", False) is None:
            # Only shapes matter for building: our own arrays give their first rows without
            # filling the shuffle buffer.
            trainer.sample_batch = (self._first_rows() if own else None) or (
                next(skipped) if skipped is not None else dataset[0])
        del skipped
        _unshare_buffers(trainer)
        return trainer.fit(
            dataset,
            epochs=initial_epoch + epochs,
            initial_epoch=initial_epoch,
            callbacks=list(callbacks),
            shuffle=False,  # the dataset shuffles itself, seeded
            verbose=0,
        )

    @property
    def evaluation_subset(self) -> int | None:
        """The size of the validation subset the per-epoch evaluation uses (None: all)."""
        return self.evaluator.subset

    def set_evaluation_subset(self, size: int | None, seed: int = 0) -> None:
        """Evaluates on a fixed, seeded subset of `size` validation samples (None: all of them).

        Bounds the cost of evaluating every task after every epoch; `evaluate(full=True)` still
        uses the whole validation set. A `tf.data` validation set keeps its first `size` samples.
        """
        self.evaluator.set_subset(size, seed)

    def evaluate(self, full: bool = False) -> dict[str, float]:
        """Evaluates the task model on the validation data (`training=False`).

        Runs the compiled model's own test step compiled once (see
        `sequential_learning.evaluation.TaskEvaluator`): the same numbers as
        `model.evaluate(..., return_dict=True)`, without its per-call set-up.

        Args:
            full: use the whole validation set even when `set_evaluation_subset` chose a subset.

        Returns:
            `{metric_name: value}`, as `model.evaluate(..., return_dict=True)` gives.
        """
        return self.evaluator.evaluate(full)

    def share_evaluation(self, other: SequentialTask) -> None:
        """Evaluates through `other`'s compiled evaluation (one trace for both).

        Only for a task whose model computes the same function with the same loss and metrics
        (the same layers: the task models of a shared-head stream); the manager checks that.

        Args:
            other: the task whose model and compiled `test_step` this task's evaluation uses.
        """
        self.evaluator.share(other.evaluator)

    def __repr__(self) -> str:
        return f"SequentialTask(name={self.name!r}, model={self.model.name!r})"


def _unshare_buffers(trainer: keras.Model) -> None:
    """JAX: gives every variable of the trainer's state a buffer of its own.

    Keras's JAX `fit` donates the state's buffers to the compiled step, and one buffer donated
    twice is an error; a variable assigned another's value (an anchor taking the weights) holds
    the very same array. Such a variable gets a copy. Nothing to do on the other backends.

    Args:
        trainer: the compiled trainer about to `fit`.
    """
    if backend.name() != "jax":
        return
    optimizer = getattr(trainer, "optimizer", None)
    seen: set[int] = set()
    for v in [*trainer.variables, *(optimizer.variables if optimizer is not None else []),
              *trainer.metrics_variables]:
        value = v.value
        if id(value) in seen:
            v.assign(keras.ops.copy(value))
        seen.add(id(v.value))


def _jit_compile() -> bool:
    """Keras's `jit_compile` for the backend: XLA off on TensorFlow (its graph runs the native
    kernels), `jax.jit` on JAX (off, JAX runs op by op), eager on PyTorch."""
    return backend.name() == "jax"


def _shape_fits(got: tuple, expected: tuple) -> bool:
    if len(got) != len(expected):
        return False
    return all(e is None or g is None or int(g) == int(e) for g, e in zip(got, expected))


def tasks_from_benchmark(
    benchmark,
    base: keras.Model,
    batch_size: int = 32,
    seed: int = 0,
    head_activation: str | None = None,
    eval_batch_size: int = 1024,
    mask_classes: bool = True,
) -> list[SequentialTask]:
    """One `SequentialTask` per task of a `Benchmark`, with heads built on the shared base.

    Classification streams get sparse categorical cross-entropy and accuracy; regression streams
    (`benchmark.task_type == "regression"`, e.g. function approximation) get the mean squared
    error as loss and as the recorded metric `mse`, with `higher_is_better=False`.

    Args:
        benchmark: a `sequential_learning.data.benchmarks.Benchmark`.
        base: the shared base model.
        batch_size: training batch size.
        seed: seed of the per-epoch shuffles.
        head_activation: None (logits, the default) or e.g. `"softmax"`; for regression, the
            output's activation (None: linear).
        eval_batch_size: evaluation batch size (large: evaluation is cheap).
        mask_classes: in a class-incremental stream, mask the classes of tasks not reached yet
            out of the loss and the accuracy, and record the task-incremental accuracy beside
            it (`sequential_learning.class_incremental`); False trains over every class.

    Returns:
        The tasks, in the benchmark's order.

    Example:
    ```python
    stream = make_benchmark("split-digits")
    tasks = tasks_from_benchmark(stream, mlp_base(stream.input_shape))
    ```
    """
    from sequential_learning.models import build_task_models

    models = build_task_models(base, benchmark.head_sizes, benchmark.shared_head, head_activation)
    regression = getattr(benchmark, "task_type", "classification") == "regression"
    classes = [None if regression else sorted(int(c) for c in np.unique(data.y_train))
               for data in benchmark.tasks]
    from_logits = head_activation is None
    active = None
    if mask_classes and benchmark.scenario == "class" and not regression:
        from sequential_learning.class_incremental import (
            ActiveClasses,
            MaskedAccuracy,
            MaskedSparseCategoricalCrossentropy,
        )

        active = ActiveClasses(classes, benchmark.head_sizes[0])
    tasks = []
    for data, model, size, own in zip(benchmark.tasks, models, benchmark.head_sizes, classes):
        loss, metrics = ("mse", ["mse"]) if regression else (None, None)
        if active is not None:
            loss = MaskedSparseCategoricalCrossentropy(active, from_logits)
            metrics = [MaskedAccuracy(active.active, "accuracy"),
                       MaskedAccuracy(active.evaluated, "task_accuracy")]
        tasks.append(SequentialTask(
            data.name,
            model,
            (data.x_train, data.y_train),
            (data.x_val, data.y_val),
            loss=loss,
            metrics=metrics,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            from_logits=from_logits,
            num_classes=None if regression else size,
            shuffle_seed=seed,
            higher_is_better=not regression,
            classes=own,
            active_classes=active,
        ))
    return tasks



def covered_variables(tasks: Sequence[SequentialTask], base_model: keras.Model | None) -> list:
    """The variables the penalty covers: the base's, and every one that several task models train.

    Args:
        tasks: the tasks of a stream.
        base_model: the shared base, or None (then only variables shared between task models).

    Returns:
        The variables (Keras variables, each once), in the order the task models list them.

    Raises:
        ValueError: a task model does not contain the base.

    Example:
    ```python
    covered = covered_variables(tasks, base)
    [v.path for v in covered]    # ['base_dense_1/kernel', 'base_dense_1/bias', ...]
    ```
    """
    counts: dict[int, int] = {}
    order: dict[int, object] = {}
    for task in tasks:
        for v in task.model.trainable_variables:
            counts[id(v)] = counts.get(id(v), 0) + 1
            order.setdefault(id(v), v)
    covered = {i for i, c in counts.items() if c > 1}
    if base_model is not None:
        base_ids = {id(v) for v in base_model.trainable_variables}
        for task in tasks:
            ids = {id(v) for v in task.model.trainable_variables}
            if not base_ids <= ids:
                raise ValueError(
                    f"Task {task.name!r}: its model does not contain the base model "
                    f"{base_model.name!r} (build task models on the shared base)"
                )
        covered |= base_ids
    return [v for i, v in order.items() if i in covered]


def share_evaluations(tasks: Sequence[SequentialTask]) -> None:
    """Makes tasks whose train steps are the same computation share one compiled evaluation.

    Each task for which an earlier task has the same layers, shapes, loss and metrics
    (`same_step`) evaluates through the first such task's compiled `test_step` (one trace
    instead of one per task, see `SequentialTask.share_evaluation`); on JAX the others share
    one compilation among those whose models compute the same function of their weights (the
    heads of one size of a task-incremental stream, `signature.test_step_signature`). The
    tasks are changed in place.

    Args:
        tasks: the tasks of a stream, in order.

    Returns:
        None.

    Example:
    ```python
    share_evaluations(tasks)    # the tasks of a shared-head stream now trace one evaluation
    ```
    """
    steps = CompiledSteps()
    for k, task in enumerate(tasks):
        task.evaluator.shared_steps = steps
        same = next((t for t in tasks[:k] if same_step(t, task)), None)
        if same is not None:
            task.share_evaluation(same)


def same_model(a: SequentialTask, b: SequentialTask) -> bool:
    """Whether two tasks train the same model: the same layer objects, and input and output shapes.

    Args:
        a: a task.
        b: another task.

    Returns:
        True when the models are one object, or list the same layer objects (InputLayers aside)
        in the same order with the same input and output shapes.

    Example:
    ```python
    same_model(tasks[0], tasks[1])    # True on a domain-incremental (shared-head) stream
    ```
    """
    if a.model is b.model:
        return True

    def layers(model):
        return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]

    la, lb = layers(a.model), layers(b.model)
    return (len(la) == len(lb) and all(x is y for x, y in zip(la, lb))
            and _shapes(a.model.inputs) == _shapes(b.model.inputs)
            and _shapes(a.model.outputs) == _shapes(b.model.outputs))


def same_step(a: SequentialTask, b: SequentialTask) -> bool:
    """Whether two tasks' train steps are the same computation.

    The same model (`same_model`) and equal losses and metrics (the same strings, or objects of
    the same class and config).

    Args:
        a: a task.
        b: another task.

    Returns:
        True when one compiled step can serve both tasks.

    Example:
    ```python
    same_step(tasks[0], tasks[1])    # False on a task-incremental stream (one head per task)
    ```
    """
    return (
        same_model(a, b)
        and _describe(a.loss) == _describe(b.loss)
        and [_describe(m) for m in a.metrics] == [_describe(m) for m in b.metrics]
    )


def _shapes(tensors) -> list:
    return [tuple(t.shape) for t in tensors or []]


def _describe(obj) -> object:
    """A comparable description of a loss or metric: the string, or the class and config."""
    if isinstance(obj, str) or obj is None:
        return obj
    try:
        return (type(obj).__qualname__, repr(sorted(obj.get_config().items())))
    except Exception:  # noqa: BLE001 - an object without a config: only itself is the same
        return ("id", id(obj))
