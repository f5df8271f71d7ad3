"""Task streams and the scenarios they are learned in.

Streams:

* **split**: the classes of a data set divided into tasks of `classes_per_task` classes each, in
  any (seeded) class order;
* **permuted**: the same data with a fixed, seeded pixel permutation per task (task 1: identity);
* **rotated**: the same images rotated by one angle per task (bilinear, zero padding);
* **iris-features**: the same three Iris classes seen through a different pair of features per
  task (the reference design's example);
* **function approximation**: inputs drawn uniformly in `x_lim`, one target function per task,
  mean squared error (a metric where lower is better).

Scenarios follow van de Ven & Tolias (2019), "Three scenarios for continual learning":

* **task**-incremental: one head per task; the task is known at test time; labels within a task
  are 0..k−1.
* **domain**-incremental: one shared head; labels are mapped within the task (0..k−1), so every
  task solves "the same" problem on other inputs; the task is not needed at test time.
* **class**-incremental: one shared head over all classes of the stream; labels are global, so
  the model must tell apart classes of different tasks without knowing the task. Classes of later
  tasks are never targets before their task, so their outputs are driven down; evaluation takes
  the arg-max over every class.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from sequential_learning.data.datasets import (
    DataError,
    Dataset,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_iris,
    load_mnist,
    load_npz,
)

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


def _check_scenario(scenario: str, allowed: Sequence[str] = SCENARIOS, what: str = "") -> str:
    if scenario in allowed:
        return scenario
    if scenario in SCENARIOS and what:
        raise ValueError(
            f"scenario: {scenario!r} does not apply to {what}; expected one of {', '.join(allowed)}"
        )
    raise ValueError(f"scenario: unknown {scenario!r}; expected one of {', '.join(allowed)}")


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: {value!r} is not allowed; expected an integer >= 1")
    return int(value)


def _validation(x, y, validation, validation_fraction: float, seed: int):
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


def _integer_labels(y: np.ndarray, what: str) -> np.ndarray:
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


# -- split -----------------------------------------------------------------------------------------
def _class_list(classes: Sequence[int]) -> str:
    classes = [int(c) for c in classes]
    shown = ", ".join(map(str, classes[:12]))
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > 12 else "")


def _limit_note(limit: int | None) -> str:
    return "" if limit is None else f" (with limit {limit})"


def _check_two_classes(
    y: np.ndarray, where: str, key: str, limit: int | None, stream: str
) -> None:
    """A stream over fewer than two classes has nothing to learn: a DataError naming why."""
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
    return _split(x, y, classes_per_task, scenario, validation, class_order, seed,
                  validation_fraction, name)


def _split(
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
    """
    where = where or name
    _check_scenario(scenario)
    if isinstance(classes_per_task, bool) or not isinstance(classes_per_task, int | np.integer):
        raise ValueError(f"classes_per_task: {classes_per_task!r} is not an integer")
    x_tr, y_tr, x_va, y_va = _validation(x, y, validation, validation_fraction, seed)
    y_tr, y_va = _integer_labels(y_tr, name), _integer_labels(y_va, f"{name} validation")
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
            f"{of_all} ({_class_list(order)}) in {where}; classes_per_task {classes_per_task} "
            f"needs a multiple of {classes_per_task} classes, at least {need}: {fix}"
        )
    _check_two_classes(y_tr, where, keys[0], limit, "split")
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
            f"{where}: {keys[1]} has label(s) {_class_list(unseen)} that {keys[0]} never has "
            f"({keys[0]} holds classes {_class_list(classes)}){_limit_note(limit)}; every "
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
                f"{_class_list(task_classes)}{_limit_note(limit)}; every task needs validation "
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


# -- same classes, transformed inputs --------------------------------------------------------------
def _transformed(
    name: str,
    scenario: str,
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    transforms: Sequence[tuple[str, Callable[[np.ndarray], np.ndarray]]],
    details: dict,
) -> Benchmark:
    """One task per transform of the inputs; the same classes in every task."""
    y_tr, y_va = _integer_labels(y_tr, name), _integer_labels(y_va, f"{name} validation")
    _check_two_classes(y_tr, name, "y", None, name)
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
    num_tasks = _check_count(num_tasks, "num_tasks")
    x_tr, y_tr, x_va, y_va = _validation(x, y, validation, validation_fraction, seed)
    shape = x_tr.shape[1:]
    features = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    transforms = []
    for t in range(num_tasks):
        perm = np.arange(features) if t == 0 else rng.permutation(features)

        def apply(a, perm=perm):
            return a.reshape(len(a), features)[:, perm].reshape((len(a), *shape))

        transforms.append(("identity" if t == 0 else f"permutation {t}", apply))
    return _transformed(
        name, scenario, x_tr, y_tr, x_va, y_va, transforms, {"permutation_seed": int(seed)}
    )


def rotate_images(x: np.ndarray, angle: float, chunk_size: int = 8192) -> np.ndarray:
    """Rotates images counter-clockwise by `angle` degrees about their centre.

    Bilinear interpolation; pixels that come from outside the image are 0. A rotation by 90°
    equals `np.rot90` of every image; 0° returns the images unchanged.

    Args:
        x: images shaped `(N, H, W, C)` or `(N, H, W)`.
        angle: degrees, counter-clockwise as the image is displayed (row 0 at the top).
        chunk_size: images processed at a time (bounds memory).

    Returns:
        The rotated images, same shape, float32.

    Raises:
        ValueError: when `x` is not a batch of images.

    Example:
    ```python
    rotated = rotate_images(images, 45.0)
    ```
    """
    x = np.asarray(x, np.float32)
    if x.ndim not in (3, 4) or min(x.shape[1:3]) < 2:
        raise ValueError(
            f"rotation needs images shaped (N, H, W, C) or (N, H, W); got inputs shaped "
            f"{x.shape[1:]} per sample (tabular data cannot be rotated)"
        )
    squeeze = x.ndim == 3
    if squeeze:
        x = x[..., np.newaxis]
    n, h, w, c = x.shape
    theta = np.deg2rad(float(angle))
    cos, sin = np.cos(theta), np.sin(theta)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    # Output pixel (u', v') (u right, v up) takes the input at R(−θ)(u', v').
    u_out, v_out = cols - cx, cy - rows
    src_col = np.round(cx + u_out * cos + v_out * sin, 9).ravel()
    src_row = np.round(cy + u_out * sin - v_out * cos, 9).ravel()
    r0, c0 = np.floor(src_row).astype(np.int64), np.floor(src_col).astype(np.int64)
    fr, fc = (src_row - r0).astype(np.float32), (src_col - c0).astype(np.float32)
    corners = []
    for dr, dc, weight in (
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ):
        r, k = r0 + dr, c0 + dc
        inside = (r >= 0) & (r < h) & (k >= 0) & (k < w) & (weight > 0)
        index = np.where(inside, r * w + k, 0)
        corners.append((index, np.where(inside, weight, 0).astype(np.float32)[None, :, None]))
    flat = x.reshape(n, h * w, c)
    out = np.empty_like(flat)
    for start in range(0, n, chunk_size):
        block = flat[start : start + chunk_size]
        acc = np.zeros((len(block), h * w, c), np.float32)
        for index, weight in corners:
            acc += block[:, index, :] * weight
        out[start : start + chunk_size] = acc
    out = out.reshape(n, h, w, c)
    return out[..., 0] if squeeze else out


def default_angles(num_tasks: int, max_angle: float = 180.0) -> list[float]:
    """Evenly spaced angles in [0, max_angle): task 1 unrotated (0, 36, 72, 108, 144 for 5)."""
    return [float(a) for a in np.arange(num_tasks) * (max_angle / num_tasks)]


def rotated(
    x: np.ndarray,
    y: np.ndarray,
    num_tasks: int = 5,
    scenario: str = "domain",
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    angles: Sequence[float] | None = None,
    seed: int = 0,
    validation_fraction: float = 0.2,
    name: str = "rotated",
) -> Benchmark:
    """Tasks that rotate every image by one angle per task.

    Args:
        x, y: images `(N, H, W, C)` and integer labels.
        num_tasks: how many tasks (ignored when `angles` is given).
        scenario: `domain` (default), `task` or `class`, as for `permuted`.
        validation: `(x_val, y_val)`; default: a seeded stratified split of `(x, y)`.
        angles: one angle in degrees per task; default `default_angles(num_tasks)`.
        seed: seed of the validation split.
        validation_fraction: the validation share when `validation` is None.
        name: the benchmark's name.

    Returns:
        A `Benchmark`.

    Raises:
        ValueError: for inputs that are not images, or an unknown scenario.

    Example:
    ```python
    stream = rotated(images, labels, angles=[0, 45, 90])
    ```
    """
    _check_scenario(scenario)
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{name}: rotation needs images shaped (N, H, W, C); these inputs are shaped "
            f"{x.shape[1:]} per sample (tabular data cannot be rotated: use a split or permuted "
            "stream)"
        )
    if angles is None:
        angles = default_angles(_check_count(num_tasks, "num_tasks"))
    angles = [float(a) for a in angles]
    if not angles or not all(np.isfinite(angles)):
        raise ValueError(f"angles: {angles!r} is not allowed; expected one finite angle per task")
    x_tr, y_tr, x_va, y_va = _validation(x, y, validation, validation_fraction, seed)
    transforms = [
        (f"{a:g}°", lambda images, a=a: images if a == 0 else rotate_images(images, a))
        for a in angles
    ]
    return _transformed(name, scenario, x_tr, y_tr, x_va, y_va, transforms, {"angles": angles})


IRIS_FEATURES = ("sepal length", "sepal width", "petal length", "petal width")
#: The feature pairs of the Iris stream, in task order (all six pairs of the four features).
IRIS_FEATURE_PAIRS = ((0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2))


def iris_features(
    num_tasks: int = 3,
    scenario: str = "domain",
    pairs: Sequence[tuple[int, int]] | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    name: str = "iris-features",
) -> Benchmark:
    """The reference design's example: the same 3 Iris classes through a different feature pair.

    Args:
        num_tasks: how many tasks (1..6; ignored when `pairs` is given).
        scenario: `domain` (default: one shared 3-way head), `task` or `class`.
        pairs: the feature pair of each task (indices into `IRIS_FEATURES`); default the first
            `num_tasks` of `IRIS_FEATURE_PAIRS`.
        seed: seed of the stratified train / validation split.
        test_fraction: the validation share.
        name: the benchmark's name.

    Returns:
        A `Benchmark` whose inputs are 2 standardised features.

    Example:
    ```python
    stream = iris_features(num_tasks=3, scenario="task")
    ```
    """
    _check_scenario(scenario)
    if pairs is None:
        num_tasks = _check_count(num_tasks, "num_tasks")
        if num_tasks > len(IRIS_FEATURE_PAIRS):
            raise ValueError(
                f"num_tasks: {num_tasks} is not allowed for {name}; Iris has "
                f"{len(IRIS_FEATURE_PAIRS)} feature pairs (expected 1..{len(IRIS_FEATURE_PAIRS)})"
            )
        pairs = IRIS_FEATURE_PAIRS[:num_tasks]
    pairs = [tuple(int(i) for i in p) for p in pairs]
    for p in pairs:
        if len(p) != 2 or not all(0 <= i < len(IRIS_FEATURES) for i in p):
            raise ValueError(f"pairs: {p} is not a pair of feature indices in 0..3")
    data = load_iris(test_fraction=test_fraction, seed=seed)
    transforms = [
        (", ".join(IRIS_FEATURES[i] for i in p), lambda a, p=p: np.ascontiguousarray(a[:, p]))
        for p in pairs
    ]
    return _transformed(
        name, scenario, data.x_train, data.y_train, data.x_test, data.y_test, transforms,
        {"feature_pairs": [list(p) for p in pairs],
         "features": [[IRIS_FEATURES[i] for i in p] for p in pairs]},
    )


# -- regression ------------------------------------------------------------------------------------
#: Target functions of the function-approximation stream, by name (on inputs in `x_lim`).
FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": lambda x: np.sin(np.pi * x),
    "cos": lambda x: np.cos(np.pi * x),
    "square": lambda x: x**2,
    "abs": np.abs,
    "cube": lambda x: x**3,
    "tanh": lambda x: np.tanh(3.0 * x),
    "gauss": lambda x: np.exp(-4.0 * x**2),
    "linear": lambda x: x,
}
_FUNCTION_LABELS = {"sin": "sin(πx)", "cos": "cos(πx)", "square": "x²", "abs": "|x|",
                    "cube": "x³", "tanh": "tanh(3x)", "gauss": "exp(−4x²)", "linear": "x"}


def function_approximation(
    num_tasks: int = 5,
    scenario: str = "task",
    functions: Sequence[str | Callable[[np.ndarray], np.ndarray]] | None = None,
    x_lim: tuple[float, float] = (-1.0, 1.0),
    train_size: int = 1024,
    validation_size: int = 256,
    noise: float = 0.0,
    seed: int = 0,
    name: str = "function-approximation",
) -> Benchmark:
    """A regression stream: inputs uniform in `x_lim`, one target function per task (MSE).

    The reference design's FunctionApproximationTask as a stream. Targets are `(N, 1)` float32;
    task models output one unit and are trained and measured with the mean squared error, a
    metric where lower is better.

    Args:
        num_tasks: how many tasks (ignored when `functions` is given); functions are taken from
            `FUNCTIONS` in order, cycling when there are more tasks than functions.
        scenario: `task` (default: a 1-unit head per task) or `domain` (one shared head, the task
            unknown). `class` does not apply to regression.
        functions: names from `FUNCTIONS`, or callables mapping x `(N, 1)` to y `(N, 1)`.
        x_lim: the input interval.
        train_size, validation_size: samples per task.
        noise: standard deviation of Gaussian noise added to the training targets.
        seed: seed of the inputs and the noise.
        name: the benchmark's name.

    Returns:
        A `Benchmark` with `task_type="regression"`.

    Example:
    ```python
    stream = function_approximation(functions=["sin", "cos", "square"], x_lim=(-2, 2))
    ```
    """
    _check_scenario(scenario, ("task", "domain"), f"{name} (a regression stream)")
    if functions is None:
        names = list(FUNCTIONS)
        functions = [names[t % len(names)] for t in range(_check_count(num_tasks, "num_tasks"))]
    low, high = (float(v) for v in x_lim)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"x_lim: {x_lim!r} is not allowed; expected (low, high) with low < high")
    _check_count(train_size, "train_size")
    _check_count(validation_size, "validation_size")
    rng = np.random.default_rng(seed)
    tasks, labels = [], []
    for t, fn in enumerate(functions):
        if isinstance(fn, str):
            if fn not in FUNCTIONS:
                raise ValueError(
                    f"functions: unknown {fn!r}; known functions: {', '.join(FUNCTIONS)}"
                )
            label, fn = _FUNCTION_LABELS[fn], FUNCTIONS[fn]
        else:
            label = getattr(fn, "__name__", f"f{t + 1}")
        labels.append(label)
        x_train = rng.uniform(low, high, (train_size, 1)).astype(np.float32)
        x_val = rng.uniform(low, high, (validation_size, 1)).astype(np.float32)
        y_train = np.asarray(fn(x_train), np.float32).reshape(train_size, 1)
        if noise:
            y_train = y_train + rng.normal(0.0, noise, y_train.shape).astype(np.float32)
        tasks.append(
            TaskData(
                name=f"task {t + 1} ({label})",
                x_train=x_train,
                y_train=y_train,
                x_val=x_val,
                y_val=np.asarray(fn(x_val), np.float32).reshape(validation_size, 1),
            )
        )
    return Benchmark(
        name=name,
        scenario=scenario,
        tasks=tasks,
        head_sizes=[1] * len(tasks),
        shared_head=scenario != "task",
        input_shape=(1,),
        task_type="regression",
        details={"functions": labels, "x_lim": [low, high], "noise": float(noise)},
    )


# -- named benchmarks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchmarkSpec:
    """How to build a named benchmark.

    Attributes:
        kind: the stream: `split`, `permuted`, `rotated`, `iris-features` or
            `function-approximation`.
        dataset: the data set it reads (`digits`, `fashion-mnist`, ..., `npz` for the user's own
            arrays given with `data`, or None when the stream makes its own data).
        scenarios: the scenarios it can be learned in; the first is its default.
        description: one line for `seql list benchmarks`.
    """

    kind: str
    dataset: str | None
    scenarios: tuple[str, ...]
    description: str

    @property
    def default_scenario(self) -> str:
        return self.scenarios[0]

    @property
    def reads_directory(self) -> bool:
        """Whether the data set is read from disk (so `data_dir` applies)."""
        return self.dataset in ("fashion-mnist", "mnist", "cifar10")


_SPLIT = ("task", "domain", "class")
_SAME_CLASSES = ("domain", "task", "class")

BENCHMARKS: dict[str, BenchmarkSpec] = {
    "split-digits": BenchmarkSpec("split", "digits", _SPLIT, "8x8 digits, 5 tasks of 2 classes"),
    "permuted-digits": BenchmarkSpec("permuted", "digits", _SAME_CLASSES,
                                     "8x8 digits, a pixel permutation per task"),
    "rotated-digits": BenchmarkSpec("rotated", "digits", _SAME_CLASSES,
                                    "8x8 digits, a rotation per task"),
    "split-fashion-mnist": BenchmarkSpec("split", "fashion-mnist", _SPLIT,
                                         "Fashion-MNIST, 5 tasks of 2 classes"),
    "permuted-fashion-mnist": BenchmarkSpec("permuted", "fashion-mnist", _SAME_CLASSES,
                                            "Fashion-MNIST, a pixel permutation per task"),
    "rotated-fashion-mnist": BenchmarkSpec("rotated", "fashion-mnist", _SAME_CLASSES,
                                           "Fashion-MNIST, a rotation per task"),
    "split-mnist": BenchmarkSpec("split", "mnist", _SPLIT, "MNIST, 5 tasks of 2 classes"),
    "permuted-mnist": BenchmarkSpec("permuted", "mnist", _SAME_CLASSES,
                                    "MNIST, a pixel permutation per task"),
    "rotated-mnist": BenchmarkSpec("rotated", "mnist", _SAME_CLASSES,
                                   "MNIST, a rotation per task"),
    "split-cifar10": BenchmarkSpec("split", "cifar10", _SPLIT, "CIFAR-10, 5 tasks of 2 classes"),
    "iris-features": BenchmarkSpec("iris-features", "iris", _SAME_CLASSES,
                                   "Iris, the same 3 classes through a feature pair per task"),
    "function-approximation": BenchmarkSpec(
        "function-approximation", None, ("task", "domain"),
        "regression: a target function per task on x in [-1, 1], MSE (lower is better)"),
    "split": BenchmarkSpec("split", "npz", _SPLIT, "your arrays (--data FILE.npz), split"),
    "permuted": BenchmarkSpec("permuted", "npz", _SAME_CLASSES,
                              "your arrays (--data FILE.npz), permuted"),
    "rotated": BenchmarkSpec("rotated", "npz", _SAME_CLASSES,
                             "your arrays (--data FILE.npz, images), rotated"),
}


def check_benchmark_options(
    name: str,
    scenario: str | None = None,
    data: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> BenchmarkSpec:
    """Checks a benchmark name with its scenario, data file and data folder (no data is read).

    Returns:
        The benchmark's `BenchmarkSpec`.

    Raises:
        ValueError: naming the option at fault and what is allowed.
    """
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark: unknown {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    if scenario is not None:
        _check_scenario(scenario, spec.scenarios, name)
    if spec.dataset == "npz" and data is None:
        raise ValueError(f"data: the {name} benchmark needs your arrays: --data FILE.npz (keys "
                         "x_train, y_train, x_test, y_test)")
    if spec.dataset != "npz" and data is not None:
        raise ValueError(f"data: {name} has its own data; to use FILE.npz choose the benchmark "
                         "split, permuted or rotated")
    if data_dir is not None and not spec.reads_directory:
        raise ValueError(f"data_dir: {name} reads no directory (only the Fashion-MNIST, MNIST "
                         "and CIFAR-10 benchmarks do)")
    return spec


def _load(spec: BenchmarkSpec, seed: int, data, data_dir, limit) -> Dataset:
    if spec.dataset == "digits":
        return load_digits(test_fraction=0.2, seed=seed, limit=limit)
    if spec.dataset == "npz":
        return load_npz(data, limit=limit)
    loader = {"fashion-mnist": load_fashion_mnist, "mnist": load_mnist, "cifar10": load_cifar10}
    return loader[spec.dataset](data_dir, limit=limit)


def make_benchmark(
    name: str,
    scenario: str | None = None,
    seed: int = 0,
    num_tasks: int = 5,
    classes_per_task: int = 2,
    *,
    data: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    class_order: Sequence[int] | str | None = None,
    angles: Sequence[float] | None = None,
) -> Benchmark:
    """Builds a named benchmark.

    Args:
        name: one of `BENCHMARKS` (e.g. `split-digits`, `permuted-fashion-mnist`).
        scenario: `task`, `domain` or `class`; default: the benchmark's own (`task` for split
            streams and function approximation, `domain` for the others).
        seed: seed of the data split, class order, permutations and function inputs.
        num_tasks: tasks of a permuted, rotated, iris-features or function-approximation stream.
        classes_per_task: classes per task of a split stream.
        data: an npz file of your own arrays (benchmarks `split`, `permuted`, `rotated`).
        data_dir: where Fashion-MNIST, MNIST or CIFAR-10 live (default: the usual places).
        limit: keep only the first `limit` samples of each split of the data set.
        class_order: a split stream's class order (`"sorted"`, `"random"` or a permutation).
        angles: a rotated stream's angles in degrees (one per task).

    Returns:
        A `Benchmark`.

    Raises:
        ValueError: for an unknown name or scenario (the message lists the known ones), or an
            option that does not apply (naming it).
        DataError: when the data set is missing (the message lists where it was looked for) or
            malformed; when it (or what `limit` leaves of it) has fewer than 2 classes, or
            classes that `classes_per_task` does not divide; for one class per task outside
            the class-incremental scenario; for test labels that training never has; or for a
            task without test samples. Each message names the file (or folder) and the key.
    """
    spec = check_benchmark_options(name, scenario, data, data_dir)
    scenario = scenario or spec.default_scenario
    if spec.kind == "function-approximation":
        return function_approximation(num_tasks, scenario, seed=seed, name=name)
    if spec.kind == "iris-features":
        return iris_features(num_tasks, scenario, seed=seed, name=name)
    dataset = _load(spec, seed, data, data_dir, limit)
    validation = (dataset.x_test, dataset.y_test)
    x, y = dataset.x_train, dataset.y_train
    where = dataset.source or name
    if spec.kind == "split":
        return _split(x, y, classes_per_task, scenario, validation, class_order, seed, 0.2, name,
                      keys=("y_train", "y_test"), where=where, limit=limit,
                      num_classes=dataset.num_classes)
    _check_two_classes(y, where, "y_train", limit, name)
    if spec.kind == "rotated":
        return rotated(x, y, num_tasks, scenario, validation, angles, seed=seed, name=name)
    return permuted(x, y, num_tasks, scenario, validation, seed=seed, name=name)


__all__ = [
    "BENCHMARKS",
    "FUNCTIONS",
    "IRIS_FEATURES",
    "IRIS_FEATURE_PAIRS",
    "SCENARIOS",
    "Benchmark",
    "BenchmarkSpec",
    "DataError",
    "TaskData",
    "check_benchmark_options",
    "default_angles",
    "function_approximation",
    "iris_features",
    "make_benchmark",
    "permuted",
    "rotate_images",
    "rotated",
    "split",
]
