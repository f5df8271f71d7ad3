"""A task stream (`Benchmark` of `TaskData`) and the scenarios it is learned in.


Scenarios follow van de Ven & Tolias (2019), "Three scenarios for continual learning":

* **task**-incremental: one head per task; the task is known at test time; labels within a task
  are 0..k−1.
* **domain**-incremental: one shared head; labels are mapped within the task (0..k−1), so every
  task solves "the same" problem on other inputs; the task is not needed at test time.
* **class**-incremental: one shared head over all classes of the stream; labels are global, so
  the model must tell apart classes of different tasks without knowing the task. Classes of later
  tasks are never targets before their task, so their outputs are driven down; evaluation takes
  the arg-max over every class.

`transformed_stream` builds the streams that keep the classes and change the inputs (permuted,
rotated, iris-features); the checks here are shared by every stream builder.

Example:
```python
stream = split(x, y, classes_per_task=2, scenario="task")     # a Benchmark
for task in stream:                                            # TaskData
    print(task.name, task.classes, len(task.x_train))
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from sequential_learning.data.errors import DataError

SCENARIOS = ("task", "domain", "class")
TASK_TYPES = ("classification", "regression")


@dataclass
class TaskData:
    """One task's data.

    Attributes:
        name: a short name (e.g. `"task 1 (0,1)"`).
        x_train, y_train, x_val, y_val: arrays; labels as the scenario maps them (float targets
            shaped `(N, 1)` for regression).
        classes: the original class ids this task covers (in label order for split streams).

    Example:
    ```python
    task = TaskData("task 1 (0, 1)", x_train, y_train, x_val, y_val, classes=[0, 1])
    ```
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list[int] = field(default_factory=list)


@dataclass
class Benchmark:
    """A task stream plus what is needed to build models for it.

    Attributes:
        name: e.g. `"permuted-digits"`.
        scenario: `task`, `domain` or `class`.
        tasks: the tasks, in training order.
        head_sizes: outputs of each task's head.
        shared_head: whether all tasks share one head.
        input_shape: shape of one input.
        task_type: `classification` (integer labels, accuracy) or `regression` (float targets,
            mean squared error, lower is better).
        details: what defines the stream (class order, permutation seed, angles, feature pairs,
            functions), recorded in results.

    Example:
    ```python
    stream = make_benchmark("permuted-digits", num_tasks=3)
    [task.name for task in stream.tasks], stream.shared_head
    ```
    """

    name: str
    scenario: str
    tasks: list[TaskData]
    head_sizes: list[int]
    shared_head: bool
    input_shape: tuple[int, ...]
    task_type: str = "classification"
    details: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[TaskData]:
        return iter(self.tasks)

    def __getitem__(self, index: int) -> TaskData:
        return self.tasks[index]

    def describe(self) -> dict:
        """A JSON-ready summary for results."""
        return {
            "name": self.name,
            "scenario": self.scenario,
            "task_type": self.task_type,
            "num_tasks": len(self.tasks),
            "head_sizes": self.head_sizes,
            "shared_head": self.shared_head,
            "input_shape": list(self.input_shape),
            "classes": [t.classes for t in self.tasks],
            "train_sizes": [len(t.x_train) for t in self.tasks],
            "validation_sizes": [len(t.x_val) for t in self.tasks],
            **self.details,
        }


def check_scenario(scenario: str, allowed: Sequence[str] = SCENARIOS, what: str = "") -> str:
    """Checks a scenario name against those a stream allows.

    Args:
        scenario: `task`, `domain` or `class`.
        allowed: the scenarios the stream can be learned in.
        what: the stream, named in the message when a known scenario does not apply to it.

    Returns:
        `scenario`, unchanged.

    Raises:
        ValueError: for an unknown scenario or one the stream does not allow.

    Example:
    ```python
    check_scenario("class", ("task", "domain"), "function approximation")   # raises
    ```
    """
    if scenario in allowed:
        return scenario
    if scenario in SCENARIOS and what:
        raise ValueError(
            f"scenario: {scenario!r} does not apply to {what}; expected one of {', '.join(allowed)}"
        )
    raise ValueError(f"scenario: unknown {scenario!r}; expected one of {', '.join(allowed)}")


def check_count(value, name: str) -> int:
    """Checks a count option (tasks, classes per task, ...): an integer ≥ 1, not a bool.

    Args:
        value: the value given.
        name: the option's name, for the message.

    Returns:
        The value as an int.

    Raises:
        ValueError: naming the option and what is allowed.

    Example:
    ```python
    check_count(5, "num_tasks")   # 5
    ```
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: {value!r} is not allowed; expected an integer >= 1")
    return int(value)


def validation_arrays(x, y, validation, validation_fraction: float, seed: int):
    """The training and validation arrays: the given validation set, or a seeded stratified split.

    Args:
        x: the inputs.
        y: the labels.
        validation: `(x_val, y_val)`, or None to split `validation_fraction` off `(x, y)`.
        validation_fraction: the share of samples held out when `validation` is None.
        seed: the split's seed.

    Returns:
        `(x_train, y_train, x_val, y_val)`.

    Raises:
        DataError: when lengths or sample shapes do not match.

    Example:
    ```python
    x_tr, y_tr, x_va, y_va = validation_arrays(x, y, None, 0.2, seed=0)
    ```
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} samples but y has {len(y)} labels")
    if validation is not None:
        x_va, y_va = np.asarray(validation[0]), np.asarray(validation[1])
        if len(x_va) != len(y_va):
            raise DataError(
                f"validation x has {len(x_va)} samples but validation y has {len(y_va)} labels"
            )
        if x_va.shape[1:] != x.shape[1:]:
            raise DataError(
                f"validation samples are shaped {x_va.shape[1:]} but training samples "
                f"{x.shape[1:]}"
            )
        return x, y, x_va, y_va
    from sklearn.model_selection import train_test_split

    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=validation_fraction, random_state=seed, stratify=y
    )
    return x_tr, y_tr, x_va, y_va


def integer_labels(y: np.ndarray, what: str) -> np.ndarray:
    """Labels as int64, one per sample (a `[N, 1]` column is flattened).

    Args:
        y: the labels.
        what: the array's name, for the message.

    Returns:
        A 1-d int64 array.

    Raises:
        DataError: for labels that are not one integer per sample.

    Example:
    ```python
    integer_labels(np.array([[0.0], [2.0]]), "y_train")   # array([0, 2])
    ```
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what}: labels must be one integer per sample, got shape {y.shape}")
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise DataError(f"{what}: labels must be integers")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{what}: labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)



def class_list(classes: Sequence[int]) -> str:
    """Classes as short text for messages: the first 12, then how many in all.

    Args:
        classes: class labels.

    Returns:
        e.g. `"0, 1, 2"`.

    Example:
    ```python
    class_list(range(3))   # "0, 1, 2"
    ```
    """
    classes = [int(c) for c in classes]
    shown = ", ".join(map(str, classes[:12]))
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > 12 else "")


def limit_note(limit: int | None) -> str:
    """The words a message adds when `--limit` was given.

    Args:
        limit: the `--limit`, or None.

    Returns:
        `" (with limit N)"`, or `""` without a limit.

    Example:
    ```python
    limit_note(100)   # " (with limit 100)"
    ```
    """
    return "" if limit is None else f" (with limit {limit})"


def check_two_classes(
    y: np.ndarray, where: str, key: str, limit: int | None, stream: str
) -> None:
    """A stream over fewer than two classes has nothing to learn: a DataError naming why.

    Args:
        y: the training labels.
        where: the data's name (a file, a data set), for the message.
        key: the array's name (`y_train`), for the message.
        limit: the `--limit`, if any (the message then suggests raising it).
        stream: the stream's kind, for the message.

    Returns:
        None.

    Raises:
        DataError: when `y` holds fewer than two classes.

    Example:
    ```python
    check_two_classes(y_train, "mine.npz", "y_train", None, "permuted")
    ```
    """
    present = np.unique(y)
    if len(present) >= 2:
        return
    if limit is not None:
        raise DataError(
            f"limit: {limit} leaves {len(y)} training sample(s) of 1 class ({int(present[0])}) "
            f"in {where}; a {stream} stream needs at least 2 classes: raise --limit"
        )
    raise DataError(
        f"{where}: {key} holds only class {int(present[0])}; a {stream} stream needs at least "
        "2 classes"
    )



def transformed_stream(
    name: str,
    scenario: str,
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    transforms: Sequence[tuple[str, Callable[[np.ndarray], np.ndarray]]],
    details: dict,
) -> Benchmark:
    """One task per transform of the inputs; the same classes in every task.

    The permuted and rotated streams are built with it. In the class-incremental scenario each
    task's labels are offset so that every task has classes of its own.

    Args:
        name: the stream's name.
        scenario: `task`, `domain` or `class`.
        x_tr: the training inputs.
        y_tr: the training labels.
        x_va: the validation inputs.
        y_va: the validation labels.
        transforms: `(label, function)` per task; the function maps an input array to the task's.
        details: recorded in the `Benchmark` (seed, permutation, angles, ...).

    Returns:
        The `Benchmark`.

    Example:
    ```python
    stream = transformed_stream("flipped", "domain", x_tr, y_tr, x_va, y_va,
                                [("identity", lambda x: x), ("flipped", lambda x: x[:, ::-1])],
                                details={})
    ```
    """
    y_tr, y_va = integer_labels(y_tr, name), integer_labels(y_va, f"{name} validation")
    check_two_classes(y_tr, name, "y", None, name)
    num_classes = int(max(y_tr.max(), y_va.max())) + 1
    tasks = []
    for t, (label, transform) in enumerate(transforms):
        offset = t * num_classes if scenario == "class" else 0
        x_train = transform(x_tr)
        tasks.append(
            TaskData(
                name=f"task {t + 1} ({label})",
                x_train=x_train,
                y_train=y_tr + offset,
                x_val=transform(x_va),
                y_val=y_va + offset,
                classes=list(range(offset, offset + num_classes)),
            )
        )
    num_tasks = len(tasks)
    head = num_classes * num_tasks if scenario == "class" else num_classes
    return Benchmark(
        name=name,
        scenario=scenario,
        tasks=tasks,
        head_sizes=[head] * num_tasks,
        shared_head=scenario != "task",
        input_shape=tuple(tasks[0].x_train.shape[1:]),
        details=details,
    )
