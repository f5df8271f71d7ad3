"""`split`: the classes of a data set divided into tasks of `classes_per_task` classes each.

The class order is sorted, seeded-random or given; labels follow the scenario (within the task
for task and domain, global for class).

Example:
```python
stream = split(x, y, classes_per_task=2, scenario="class", class_order="random", seed=1)
```
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from sequential_learning.data.errors import DataError
from sequential_learning.data.stream import (
    Benchmark,
    TaskData,
    check_scenario,
    check_two_classes,
    class_list,
    integer_labels,
    limit_note,
    validation_arrays,
)


def _one_class_tasks(order: list[int], scenario: str, name: str) -> None:
    """One class per task: an error where that is trivially 100% accurate, else a warning."""
    divisors = [k for k in range(2, len(order) + 1) if len(order) % k == 0]
    suggestion = (
        f"use --classes-per-task 2 or more (one that divides the {len(order)} classes: "
        f"{', '.join(map(str, divisors))})"
    )
    if scenario != "class":
        head = "its head has one output" if scenario == "task" else "every label is 0"
        raise DataError(
            f"classes_per_task: 1 makes task 1 hold only class {order[0]} (and every task a "
            f"single class) in {name}; in the {scenario}-incremental scenario such a task is "
            f"trivially 100% accurate ({head}): {suggestion}"
        )
    warnings.warn(
        f"classes_per_task: 1 makes task 1 hold only class {order[0]} (and every task a single "
        f"class) in {name}; in the class-incremental scenario accuracy on a task right after "
        "training it is trivially 100%, only accuracy on earlier tasks measures learning; "
        f"for a harder stream {suggestion}",
        UserWarning,
        stacklevel=3,
    )


def split(
    x: np.ndarray,
    y: np.ndarray,
    classes_per_task: int = 2,
    scenario: str = "task",
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    class_order: Sequence[int] | str | None = None,
    seed: int = 0,
    validation_fraction: float = 0.2,
    name: str = "split",
) -> Benchmark:
    """Splits a classification data set into tasks of `classes_per_task` classes each.

    Args:
        x, y: inputs and integer labels.
        classes_per_task: classes in each task; must divide the number of classes. 1 is an
            error in the `task` and `domain` scenarios (a one-class task is trivially 100%
            accurate there) and a `UserWarning` in the `class` scenario (a known protocol:
            only accuracy on earlier tasks measures learning).
        scenario: `task`, `domain` or `class` (see the module docstring).
        validation: `(x_val, y_val)`; default: a seeded stratified split of `(x, y)`. Every
            validation label must occur in `y`, and every task must have validation samples.
        class_order: the order in which classes are assigned to tasks: a permutation of the
            class ids, `"sorted"` (the default) or `"random"` (a permutation drawn with `seed`).
        seed: seed of the validation split and of a random class order.
        validation_fraction: the validation share when `validation` is None.
        name: the benchmark's name.

    Returns:
        A `Benchmark`.

    Raises:
        ValueError: for an unknown scenario, or a class order that is not a permutation of the
            classes.
        DataError: for a `classes_per_task` that does not divide the number of classes, one
            class per task outside the class-incremental scenario, fewer than 2 classes,
            validation labels that never occur in `y` (they would be dropped), or a task
            without validation samples.

    Example:
    ```python
    stream = split(x, y, classes_per_task=2, scenario="class", class_order="random", seed=1)
    ```
    """
    return split_stream(x, y, classes_per_task, scenario, validation, class_order, seed,
                  validation_fraction, name)


def split_stream(
    x: np.ndarray,
    y: np.ndarray,
    classes_per_task: int,
    scenario: str,
    validation: tuple[np.ndarray, np.ndarray] | None,
    class_order: Sequence[int] | str | None,
    seed: int,
    validation_fraction: float,
    name: str,
    keys: tuple[str, str] = ("y", "validation y"),
    where: str | None = None,
    limit: int | None = None,
    num_classes: int | None = None,
) -> Benchmark:
    """`split`, with the names its data errors use.

    Args:
        keys: what to call the training and validation labels (`y_train`, `y_test`).
        where: the data's source (a file or folder); default the benchmark's name.
        limit: the `limit` the data set was loaded with, said in errors it may have caused.
        num_classes: the data set's number of classes, said when `limit` leaves too few.

    The arguments before `keys` are `split`'s.

    Returns:
        The `Benchmark`, as `split` returns it.

    Example:
    ```python
    stream = split_stream(x, y, 2, "task", (x_test, y_test), "sorted", 0, 0.2, "mine",
                          keys=("y_train", "y_test"), where="mine.npz")
    ```
    """
    where = where or name
    check_scenario(scenario)
    if isinstance(classes_per_task, bool) or not isinstance(classes_per_task, int | np.integer):
        raise ValueError(f"classes_per_task: {classes_per_task!r} is not an integer")
    x_tr, y_tr, x_va, y_va = validation_arrays(x, y, validation, validation_fraction, seed)
    y_tr, y_va = integer_labels(y_tr, name), integer_labels(y_va, f"{name} validation")
    classes = sorted(int(c) for c in np.unique(y_tr))
    if class_order is None or (isinstance(class_order, str) and class_order == "sorted"):
        order = list(classes)
    elif isinstance(class_order, str):
        if class_order != "random":
            raise ValueError(
                f"class_order: {class_order!r} is not allowed; expected 'sorted', 'random' or a "
                "list of class ids"
            )
        order = [int(c) for c in np.random.default_rng(seed).permutation(classes)]
    else:
        order = [int(c) for c in class_order]
    if sorted(order) != classes:
        raise ValueError(f"class_order: {order} must be a permutation of the classes {classes}")
    if classes_per_task < 1:
        raise DataError(
            f"classes_per_task: {classes_per_task} is not allowed; expected an integer >= 2"
        )
    need = max(2, classes_per_task)
    if limit is not None and (len(order) < need or len(order) % classes_per_task):
        of_all = f" of the {num_classes}" if num_classes is not None else ""
        fix = "raise --limit"
        if num_classes is not None and num_classes % classes_per_task:
            fix += " or change --classes-per-task"
        raise DataError(
            f"limit: {limit} leaves {len(y_tr)} training sample(s) and {len(order)} class(es)"
            f"{of_all} ({class_list(order)}) in {where}; classes_per_task {classes_per_task} "
            f"needs a multiple of {classes_per_task} classes, at least {need}: {fix}"
        )
    check_two_classes(y_tr, where, keys[0], limit, "split")
    if len(order) % classes_per_task:
        usable = [k for k in range(1, len(order) + 1) if len(order) % k == 0]
        if scenario != "class":
            usable = [k for k in usable if k > 1]
        raise DataError(
            f"classes_per_task: {classes_per_task} does not divide the {len(order)} classes of "
            f"{name}; use one of " + ", ".join(map(str, usable))
        )
    if classes_per_task == 1:
        _one_class_tasks(order, scenario, name)
    unseen = sorted(set(int(c) for c in np.unique(y_va)) - set(classes))
    if unseen:
        raise DataError(
            f"{where}: {keys[1]} has label(s) {class_list(unseen)} that {keys[0]} never has "
            f"({keys[0]} holds classes {class_list(classes)}){limit_note(limit)}; every "
            "validation class needs training samples"
        )
    num_tasks = len(order) // classes_per_task
    position = {c: i for i, c in enumerate(order)}
    sorted_classes = np.asarray(classes, np.int64)
    tasks = []
    for t in range(num_tasks):
        task_classes = order[t * classes_per_task : (t + 1) * classes_per_task]
        if scenario == "class":
            mapping = {c: position[c] for c in task_classes}
        else:
            mapping = {c: i for i, c in enumerate(task_classes)}
        # Label of each class (by its index among the sorted classes); -1 outside the task.
        lookup = np.array([mapping.get(c, -1) for c in classes], np.int64)
        tr = np.isin(y_tr, task_classes)
        va = np.isin(y_va, task_classes)
        if not va.any():
            raise DataError(
                f"{where}: {keys[1]} has no samples of task {t + 1}'s classes "
                f"{class_list(task_classes)}{limit_note(limit)}; every task needs validation "
                "samples"
            )
        tasks.append(
            TaskData(
                name=f"task {t + 1} ({','.join(map(str, task_classes))})",
                x_train=x_tr[tr],
                y_train=lookup[np.searchsorted(sorted_classes, y_tr[tr])],
                x_val=x_va[va],
                y_val=lookup[np.searchsorted(sorted_classes, y_va[va])],
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
        details={"class_order": order},
    )

