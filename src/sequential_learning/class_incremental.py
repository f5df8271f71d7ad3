"""Class-incremental learning done properly: one head, unseen classes masked, two accuracies.

In a class-incremental stream one head covers every class of the stream. As is usual (the
"active classes" of van de Ven et al., Avalanche's masking incremental classifier), the classes
of tasks not reached yet are masked out of the head:

* the training loss is the cross-entropy over the classes seen so far (the tasks up to the one
  in training), so the later classes' outputs are neither trained nor pushed down;
* `accuracy` (class-incremental, the task unknown) is the arg-max over the classes seen so far;
* `task_accuracy` (task-incremental, the task known) is the arg-max over the evaluated task's
  own classes: both scenarios' numbers from one run, as Mammoth reports them.

The masks are `keras.Variable`s (`ActiveClasses`), so one compiled train step and one compiled
evaluation serve every task, on every Keras backend: each mask is also a variable of the
`MaskedAccuracy` metric that reads it, so on JAX it goes in and out of the stateless step with the
metrics' state. A task not yet reached scores 0 in `accuracy` (its classes are
masked), so forward transfer is not defined in this scenario.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

_MASKED = -1e9  # a logit that softmax turns into exactly 0


class ActiveClasses:
    """The classes a class-incremental stream has shown so far, as masks over its head.

    Args:
        task_classes: each task's labels (indices into the head), in stream order.
        num_classes: the head's number of outputs.

    Example:
    ```python
    active = ActiveClasses([[0, 1], [2, 3]], num_classes=4)
    active.begin_task(1)                 # classes 0-3 active while task 2 trains
    loss = MaskedSparseCategoricalCrossentropy(active)
    ```
    """

    def __init__(self, task_classes: Sequence[Sequence[int]], num_classes: int) -> None:
        self.task_classes = [sorted(int(c) for c in classes) for classes in task_classes]
        self.num_classes = int(num_classes)
        for classes in self.task_classes:
            if not classes or min(classes) < 0 or max(classes) >= self.num_classes:
                raise ValueError(f"task classes {classes} must be non-empty labels in "
                                 f"0..{self.num_classes - 1}")
        # All zero: nothing trained yet, and every class counts (the untrained model's accuracy).
        self.active = keras.Variable(np.zeros(self.num_classes, np.float32), trainable=False,
                                     name="active_classes")
        self.evaluated = keras.Variable(np.ones(self.num_classes, np.float32), trainable=False,
                                        name="evaluated_classes")

    def variables(self) -> list[keras.Variable]:
        """The masks (`active`, `evaluated`): what a compiled step or evaluation that reads
        them must take as state (on JAX, so they are not compiled in as constants)."""
        return [self.active, self.evaluated]

    def mask_through(self, index: int) -> np.ndarray:
        """1 for the classes of tasks 0..index, else 0 (all 0 for index < 0)."""
        mask = np.zeros(self.num_classes, np.float32)
        for classes in self.task_classes[: max(index + 1, 0)]:
            mask[classes] = 1.0
        return mask

    def task_mask(self, index: int) -> np.ndarray:
        """1 for task `index`'s own classes."""
        return self.classes_mask(self.task_classes[index])

    def classes_mask(self, classes: Sequence[int]) -> np.ndarray:
        """1 for `classes`."""
        mask = np.zeros(self.num_classes, np.float32)
        mask[list(classes)] = 1.0
        return mask

    def begin_task(self, index: int) -> None:
        """Activates the classes of tasks 0..index (called before task `index` trains)."""
        self.activate_through(index)
        self.evaluated.assign(self.task_mask(index))

    def activate_through(self, index: int) -> None:
        """Activates the classes of tasks 0..index (a method training on later tasks' data
        too, such as `joint`, activates theirs)."""
        self.active.assign(self.mask_through(index))

    @contextlib.contextmanager
    def evaluating(self, classes: Sequence[int]) -> Iterator[None]:
        """`classes` (a task's own) are the task-incremental accuracy's while inside."""
        # A tensor, not a host copy: this also runs inside a compiled evaluation of every task.
        previous = ops.copy(ops.convert_to_tensor(self.evaluated))
        self.evaluated.assign(self.classes_mask(classes))
        try:
            yield
        finally:
            self.evaluated.assign(previous)


def mask_outputs(y_pred, mask, from_logits: bool = True) -> Any:
    """The head's outputs with the classes outside `mask` removed (logits to a value softmax
    turns into 0; probabilities to 0 and renormalised). An all-zero mask removes nothing.

    Args:
        y_pred: the head's outputs, shape `[N, C]`.
        mask: `[C]`, > 0 for the classes to keep (the classes seen so far).
        from_logits: whether `y_pred` are logits (else probabilities).

    Returns:
        A tensor shaped like `y_pred`.

    Example:
    ```python
    mask_outputs(ops.array([[2.0, 1.0, 3.0]]), ops.array([1.0, 1.0, 0.0]))
    # the third logit is pushed so low that softmax gives it 0
    ```
    """
    y_pred = ops.convert_to_tensor(y_pred)
    mask = ops.convert_to_tensor(mask)
    keep = ops.logical_or(mask > 0, ops.logical_not(ops.any(mask > 0)))[None, :]
    if from_logits:
        return ops.where(keep, y_pred, ops.cast(_MASKED, y_pred.dtype))
    kept = ops.where(keep, y_pred, ops.zeros_like(y_pred))
    return ops.divide_no_nan(kept, ops.sum(kept, axis=-1, keepdims=True))


@keras.saving.register_keras_serializable(package="sequential_learning")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy over the active classes of an `ActiveClasses`.

    Args:
        active: the stream's `ActiveClasses` (None: no mask, plain cross-entropy).
        from_logits: whether the head outputs logits.
        name: the loss's name.
        reduction: Keras's reduction.

    Example:
    ```python
    task = SequentialTask(name, model, train, val, loss=MaskedSparseCategoricalCrossentropy(active))
    ```
    """

    def __init__(self, active: ActiveClasses | None = None, from_logits: bool = True,
                 name: str = "masked_sparse_categorical_crossentropy",
                 reduction: str = "sum_over_batch_size") -> None:
        super().__init__(name=name, reduction=reduction)
        self.active = active
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        if self.active is not None:
            y_pred = mask_outputs(y_pred, self.active.active, self.from_logits)
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred,
                                                            from_logits=self.from_logits)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="sequential_learning")
class MaskedAccuracy(keras.metrics.Mean):
    """Accuracy of the arg-max over the classes a mask keeps (all when the mask is all zero).

    Args:
        mask: a `keras.Variable` of one 0/1 entry per class (`ActiveClasses.active` for the
            class-incremental accuracy, `.evaluated` for the task-incremental one), or None.
        name: the metric's name.
        dtype: its dtype.

    Example:
    ```python
    active = ActiveClasses([[0, 1], [2, 3]], num_classes=4)
    model.compile(loss=MaskedSparseCategoricalCrossentropy(active),
                  metrics=[MaskedAccuracy(active.active)])
    ```
    """

    def __init__(self, mask: keras.Variable | None = None, name: str = "accuracy",
                 dtype=None) -> None:
        super().__init__(name=name, dtype=dtype)
        # Tracked as one of the metric's variables (a Mean resets only its total and count):
        # on JAX the step then reads the mask's current value, not one compiled in.
        self.mask = mask

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        if self.mask is not None:
            y_pred = mask_outputs(y_pred, self.mask)  # the arg-max is the same for probabilities
        predicted = ops.argmax(y_pred, axis=-1)
        labels = ops.reshape(ops.cast(y_true, predicted.dtype), ops.shape(predicted))
        return super().update_state(ops.cast(ops.equal(labels, predicted), self.dtype),
                                    sample_weight=sample_weight)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}
