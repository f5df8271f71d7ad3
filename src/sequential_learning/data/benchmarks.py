"""Task streams: split and permuted, in task-, domain- and class-incremental scenarios.

Scenarios follow van de Ven & Tolias (2019):

* **task**-incremental: one head per task; the task is known at test time; labels within a task
  are 0..k−1.
* **domain**-incremental: one shared head; labels are mapped within the task (0..k−1), so every
  task solves "the same" problem on other inputs.
* **class**-incremental: one shared head over all classes of the stream; labels are global.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from sequential_learning.data.datasets import DataError, Dataset, load_digits

SCENARIOS = ("task", "domain", "class")


@dataclass
class TaskData:
    """One task's data.

    Attributes:
        name: a short name (e.g. `"task 1 (0,1)"`).
        x_train, y_train, x_val, y_val: arrays; labels as the scenario maps them.
        classes: the original class ids this task covers (in label order for split streams).
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
    """

    name: str
    scenario: str
    tasks: list[TaskData]
    head_sizes: list[int]
    shared_head: bool
    input_shape: tuple[int, ...]

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
            "num_tasks": len(self.tasks),
            "head_sizes": self.head_sizes,
            "shared_head": self.shared_head,
            "input_shape": list(self.input_shape),
            "classes": [t.classes for t in self.tasks],
            "train_sizes": [len(t.x_train) for t in self.tasks],
            "validation_sizes": [len(t.x_val) for t in self.tasks],
        }


def _check_scenario(scenario: str) -> str:
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    return scenario


def _validation(x, y, validation, validation_fraction: float, seed: int):
    if validation is not None:
        return np.asarray(x), np.asarray(y), np.asarray(validation[0]), np.asarray(validation[1])
    from sklearn.model_selection import train_test_split

    x_tr, x_va, y_tr, y_va = train_test_split(
        np.asarray(x), np.asarray(y), test_size=validation_fraction, random_state=seed,
        stratify=np.asarray(y),
    )
    return x_tr, y_tr, x_va, y_va


def split(
    x: np.ndarray,
    y: np.ndarray,
    classes_per_task: int = 2,
    scenario: str = "task",
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    class_order: Sequence[int] | None = None,
    seed: int = 0,
    validation_fraction: float = 0.2,
    name: str = "split",
) -> Benchmark:
    """Splits a classification data set into tasks of `classes_per_task` classes each.

    Args:
        x, y: inputs and integer labels.
        classes_per_task: classes in each task; must divide the number of classes.
        scenario: `task`, `domain` or `class` (see the module docstring).
        validation: `(x_val, y_val)`; default: a seeded stratified split of `(x, y)`.
        class_order: the order in which classes are assigned to tasks; default sorted, or a
            seeded permutation when `class_order="random"` is not needed: pass it explicitly.
        seed: seed of the validation split.
        validation_fraction: the validation share when `validation` is None.
        name: the benchmark's name.

    Returns:
        A `Benchmark`.

    Example:
    ```python
    stream = split(x, y, classes_per_task=2, scenario="task")   # 5 tasks for 10 classes
    ```
    """
    _check_scenario(scenario)
    x_tr, y_tr, x_va, y_va = _validation(x, y, validation, validation_fraction, seed)
    classes = sorted(int(c) for c in np.unique(y_tr))
    order = list(class_order) if class_order is not None else classes
    if sorted(order) != classes:
        raise ValueError(f"class_order {order} must be a permutation of the classes {classes}")
    if classes_per_task < 1 or len(order) % classes_per_task:
        raise ValueError(
            f"classes_per_task={classes_per_task} does not divide the {len(order)} classes"
        )
    num_tasks = len(order) // classes_per_task
    tasks = []
    for t in range(num_tasks):
        task_classes = order[t * classes_per_task : (t + 1) * classes_per_task]
        mapping = {c: i for i, c in enumerate(task_classes)}
        if scenario == "class":
            mapping = {c: order.index(c) for c in task_classes}
        tr = np.isin(y_tr, task_classes)
        va = np.isin(y_va, task_classes)
        tasks.append(
            TaskData(
                name=f"task {t + 1} ({','.join(map(str, task_classes))})",
                x_train=x_tr[tr],
                y_train=np.array([mapping[int(c)] for c in y_tr[tr]], np.int64),
                x_val=x_va[va],
                y_val=np.array([mapping[int(c)] for c in y_va[va]], np.int64),
                classes=list(task_classes),
            )
        )
    head = len(order) if scenario == "class" else classes_per_task
    return Benchmark(
        name=name,
        scenario=scenario,
        tasks=tasks,
        head_sizes=[head] * num_tasks,
        shared_head=scenario != "task",
        input_shape=tuple(x_tr.shape[1:]),
    )


def permuted(
    x: np.ndarray,
    y: np.ndarray,
    num_tasks: int = 5,
    scenario: str = "domain",
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    validation_fraction: float = 0.2,
    name: str = "permuted",
) -> Benchmark:
    """Tasks that permute the input features with fixed, seeded permutations (task 1: identity).

    Args:
        x, y: inputs (any shape per sample; the permutation acts on the flattened features) and
            integer labels.
        num_tasks: how many tasks.
        scenario: `domain` (default: one shared head), `task` (a head per task) or `class`
            (labels of task t offset by t × number of classes, one head over all of them).
        validation: `(x_val, y_val)`; default: a seeded stratified split of `(x, y)`.
        seed: seed of the permutations and of the validation split.
        validation_fraction: the validation share when `validation` is None.
        name: the benchmark's name.

    Returns:
        A `Benchmark`.

    Example:
    ```python
    stream = permuted(x, y, num_tasks=5)
    ```
    """
    _check_scenario(scenario)
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
    x_tr, y_tr, x_va, y_va = _validation(x, y, validation, validation_fraction, seed)
    shape = x_tr.shape[1:]
    features = int(np.prod(shape))
    num_classes = int(max(y_tr.max(), y_va.max())) + 1
    rng = np.random.default_rng(seed)
    tasks = []
    for t in range(num_tasks):
        perm = np.arange(features) if t == 0 else rng.permutation(features)
        offset = t * num_classes if scenario == "class" else 0

        def apply(a, perm=perm):
            return a.reshape(len(a), features)[:, perm].reshape((len(a), *shape))

        tasks.append(
            TaskData(
                name=f"task {t + 1} (" + ("identity" if t == 0 else f"permutation {t}") + ")",
                x_train=apply(x_tr),
                y_train=np.asarray(y_tr, np.int64) + offset,
                x_val=apply(x_va),
                y_val=np.asarray(y_va, np.int64) + offset,
                classes=list(range(offset, offset + num_classes)),
            )
        )
    head = num_classes * num_tasks if scenario == "class" else num_classes
    return Benchmark(
        name=name,
        scenario=scenario,
        tasks=tasks,
        head_sizes=[head] * num_tasks,
        shared_head=scenario != "task",
        input_shape=tuple(shape),
    )


# -- named benchmarks ------------------------------------------------------------------------------
_DEFAULT_SCENARIO = {"split": "task", "permuted": "domain"}


def _digits(seed: int) -> Dataset:
    return load_digits(test_fraction=0.2, seed=seed)


BENCHMARKS = {
    "split-digits": ("split", _digits),
    "permuted-digits": ("permuted", _digits),
}


def make_benchmark(
    name: str,
    scenario: str | None = None,
    seed: int = 0,
    num_tasks: int = 5,
    classes_per_task: int = 2,
) -> Benchmark:
    """Builds a named benchmark.

    Args:
        name: one of `BENCHMARKS` (e.g. `split-digits`, `permuted-digits`).
        scenario: `task`, `domain` or `class`; default: `task` for split streams, `domain` for
            permuted ones.
        seed: seed of the data split and the permutations.
        num_tasks: tasks of a permuted stream.
        classes_per_task: classes per task of a split stream.

    Returns:
        A `Benchmark`.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")
    kind, loader = BENCHMARKS[name]
    scenario = scenario or _DEFAULT_SCENARIO[kind]
    _check_scenario(scenario)
    data = loader(seed)
    validation = (data.x_test, data.y_test)
    if kind == "split":
        return split(
            data.x_train, data.y_train, classes_per_task, scenario, validation, seed=seed, name=name
        )
    return permuted(data.x_train, data.y_train, num_tasks, scenario, validation, seed=seed, name=name)


__all__ = [
    "BENCHMARKS",
    "SCENARIOS",
    "Benchmark",
    "DataError",
    "TaskData",
    "make_benchmark",
    "permuted",
    "split",
]
