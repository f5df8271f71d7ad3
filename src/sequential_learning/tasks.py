"""SequentialTask: one task's model, data, loss and metrics; compiles, fits and evaluates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sequential_learning.importance.base import ImportanceEstimator
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.training import ConsolidationTrainer

Data = tuple[np.ndarray, np.ndarray] | tf.data.Dataset


class SequentialTask:
    """Everything about one task of a stream.

    The model is the shared base plus this task's own head, built with the functional API so the
    base's layers (and variables) are shared between task models.

    Args:
        name: a short name for plots and results (e.g. `"task 1 (0/1)"`).
        model: the task model. Outputs logits by default (see `from_logits`).
        train_data: `(x, y)` NumPy arrays, or a `tf.data.Dataset` of `(x, y)` batches.
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
    ) -> None:
        self.name = name
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
        self.num_classes = num_classes
        self.train_data = train_data
        self.validation_data = validation_data
        self._eval_fn = None
        self._eval_batches: list = []
        self.validate()
        self.model.compile(loss=self.loss, metrics=self.metrics, jit_compile=False)

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
            if isinstance(data, tf.data.Dataset):
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
    def training_dataset(self, seed_offset: int = 0) -> tf.data.Dataset:
        """The training data as a shuffled (seeded), batched, prefetched `tf.data.Dataset`."""
        if isinstance(self.train_data, tf.data.Dataset):
            return self.train_data
        x, y = self.train_data
        ds = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y)))
        ds = ds.shuffle(len(x), seed=self.shuffle_seed + seed_offset, reshuffle_each_iteration=True)
        return ds.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Up to `n` training samples (a seeded random subset), for importance estimation."""
        if isinstance(self.train_data, tf.data.Dataset):
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
    ) -> ConsolidationTrainer:
        """A compiled `ConsolidationTrainer` for this task's model."""
        trainer = ConsolidationTrainer(self.model, penalty, estimator, covered)
        trainer.compile(optimizer=optimizer, loss=self.loss, metrics=self.metrics, jit_compile=False)
        return trainer

    def fit(
        self,
        trainer: keras.Model,
        epochs: int,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        seed_offset: int = 0,
    ) -> keras.callbacks.History:
        """Trains this task for `epochs` epochs with `trainer` (from `make_trainer`)."""
        return trainer.fit(
            self.training_dataset(seed_offset),
            epochs=initial_epoch + epochs,
            initial_epoch=initial_epoch,
            callbacks=list(callbacks),
            shuffle=False,  # the dataset shuffles itself, seeded
            verbose=0,
        )

    def evaluate(self) -> dict[str, float]:
        """Evaluates the task model on the validation data (`training=False`).

        Runs the compiled model's own `test_step` over pre-batched validation tensors inside one
        `tf.function`: the same numbers as `model.evaluate(..., return_dict=True)` without its
        per-call set-up (which dominates when every task is evaluated after every epoch). Under a
        distribution strategy it calls `model.evaluate` itself.

        Returns:
            `{metric_name: value}`, as `model.evaluate(..., return_dict=True)` gives.
        """
        if tf.distribute.has_strategy() or tf.distribute.get_strategy().num_replicas_in_sync > 1:
            return self._keras_evaluate()
        if self._eval_fn is None:
            self._eval_fn = tf.function(self.model.test_step, reduce_retracing=True)
            self._eval_batches = list(self._validation_batches())
        self.model.reset_metrics()
        logs = {}
        for batch in self._eval_batches:
            logs = self._eval_fn(batch)
        return {k: float(v) for k, v in logs.items()}

    def _validation_batches(self):
        data = self.validation_data
        if isinstance(data, tf.data.Dataset):
            yield from data
            return
        x, y = np.asarray(data[0], np.float32), np.asarray(data[1])
        for start in range(0, len(x), self.eval_batch_size):
            end = start + self.eval_batch_size
            yield (tf.constant(x[start:end]), tf.constant(y[start:end]))

    def _keras_evaluate(self) -> dict[str, float]:
        data = self.validation_data
        if isinstance(data, tf.data.Dataset):
            result = self.model.evaluate(data, verbose=0, return_dict=True)
        else:
            result = self.model.evaluate(
                np.asarray(data[0], np.float32),
                np.asarray(data[1]),
                batch_size=self.eval_batch_size,
                verbose=0,
                return_dict=True,
            )
        return {k: float(v) for k, v in result.items()}

    def __repr__(self) -> str:
        return f"SequentialTask(name={self.name!r}, model={self.model.name!r})"


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
) -> list[SequentialTask]:
    """One `SequentialTask` per task of a `Benchmark`, with heads built on the shared base.

    Args:
        benchmark: a `sequential_learning.data.benchmarks.Benchmark`.
        base: the shared base model.
        batch_size: training batch size.
        seed: seed of the per-epoch shuffles.
        head_activation: None (logits, the default) or e.g. `"softmax"`.

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
    return [
        SequentialTask(
            data.name,
            model,
            (data.x_train, data.y_train),
            (data.x_val, data.y_val),
            batch_size=batch_size,
            from_logits=head_activation is None,
            num_classes=size,
            shuffle_seed=seed,
        )
        for data, model, size in zip(benchmark.tasks, models, benchmark.head_sizes)
    ]
