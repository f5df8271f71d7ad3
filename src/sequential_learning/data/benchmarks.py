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

The streams live one per module (`split.py`, `permuted.py`, `rotated.py`, `iris_features.py`,
`function_approximation.py`), the scenarios and the `Benchmark` type in `stream.py`; this module
is the registry of named benchmarks (`BENCHMARKS`, `make_benchmark`) and re-exports the streams,
so `sl.benchmarks.split(...)` keeps working.

Example:
```python
stream = make_benchmark("rotated-digits", num_tasks=3)
```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from sequential_learning.data.datasets import (
    DataError,
    Dataset,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_npz,
)
from sequential_learning.data.formats.cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
)
from sequential_learning.data.function_approximation import FUNCTIONS, function_approximation
from sequential_learning.data.iris_features import IRIS_FEATURE_PAIRS, IRIS_FEATURES, iris_features
from sequential_learning.data.permuted import permuted
from sequential_learning.data.rotated import default_angles, rotate_images, rotated
from sequential_learning.data.split import split, split_stream
from sequential_learning.data.stream import (
    SCENARIOS,
    TASK_TYPES,
    Benchmark,
    TaskData,
    check_scenario,
    check_two_classes,
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
        classes_per_task: a split stream's classes per task when the run does not say.
        normalization: `(mean, std)` per channel that the model standardises its inputs with
            (`augmentation.Standardize`, at the front of the base), or None.

    Example:
    ```python
    spec = BENCHMARKS["split-digits"]
    spec.default_scenario   # "task"
    ```
    """

    kind: str
    dataset: str | None
    scenarios: tuple[str, ...]
    description: str
    classes_per_task: int = 2
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def default_scenario(self) -> str:
        return self.scenarios[0]

    @property
    def reads_directory(self) -> bool:
        """Whether the data set is read from disk (so `data_dir` applies)."""
        return self.dataset in ("fashion-mnist", "mnist", "cifar10", "cifar100")


_SPLIT = ("task", "domain", "class")
_SAME_CLASSES = ("domain", "task", "class")
#: Mammoth's Seq-CIFAR: class-incremental first (task-IL accuracy comes from the same run).
_SEQ = ("class", "task", "domain")

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
    "seq-cifar10": BenchmarkSpec(
        "split", "cifar10", _SEQ,
        "Seq-CIFAR-10 as Mammoth/DER: 5 tasks of 2 classes, ResNet-18, crop+flip, SGD",
        normalization=(CIFAR10_MEAN, CIFAR10_STD)),
    "seq-cifar100": BenchmarkSpec(
        "split", "cifar100", _SEQ,
        "Seq-CIFAR-100 as Mammoth: 10 tasks of 10 classes, ResNet-18, crop+flip, SGD",
        classes_per_task=10, normalization=(CIFAR100_MEAN, CIFAR100_STD)),
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

    Args:
        name: one of `BENCHMARKS`.
        scenario: `task`, `domain`, `class`, or None for the benchmark's default.
        data: the npz file of the `split`, `permuted` and `rotated` benchmarks.
        data_dir: where Fashion-MNIST, MNIST, CIFAR-10 or CIFAR-100 live.

    Returns:
        The benchmark's `BenchmarkSpec`.

    Raises:
        ValueError: naming the option at fault and what is allowed.

    Example:
    ```python
    spec = check_benchmark_options("split-digits", scenario="class")
    ```
    """
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark: unknown {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    if scenario is not None:
        check_scenario(scenario, spec.scenarios, name)
    if spec.dataset == "npz" and data is None:
        raise ValueError(f"data: the {name} benchmark needs your arrays: --data FILE.npz (keys "
                         "x_train, y_train, x_test, y_test)")
    if spec.dataset != "npz" and data is not None:
        raise ValueError(f"data: {name} has its own data; to use FILE.npz choose the benchmark "
                         "split, permuted or rotated")
    if data_dir is not None and not spec.reads_directory:
        raise ValueError(f"data_dir: {name} reads no directory (only the Fashion-MNIST, MNIST, "
                         "CIFAR-10 and CIFAR-100 benchmarks do)")
    return spec


def _load(spec: BenchmarkSpec, seed: int, data, data_dir, limit) -> Dataset:
    if spec.dataset == "digits":
        return load_digits(test_fraction=0.2, seed=seed, limit=limit)
    if spec.dataset == "npz":
        return load_npz(data, limit=limit)
    loader = {"fashion-mnist": load_fashion_mnist, "mnist": load_mnist, "cifar10": load_cifar10,
              "cifar100": load_cifar100}
    return loader[spec.dataset](data_dir, limit=limit)


def make_benchmark(
    name: str,
    scenario: str | None = None,
    seed: int = 0,
    num_tasks: int = 5,
    classes_per_task: int | None = None,
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
        classes_per_task: classes per task of a split stream; None: the benchmark's own (2;
            10 for `seq-cifar100`).
        data: an npz file of your own arrays (benchmarks `split`, `permuted`, `rotated`).
        data_dir: where Fashion-MNIST, MNIST, CIFAR-10 or CIFAR-100 live (default: the usual
            places).
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

    Example:
    ```python
    stream = make_benchmark("split-digits", scenario="class")
    stream.num_tasks, stream.input_shape   # (5, (64,))
    ```
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
        if classes_per_task is None:
            classes_per_task = spec.classes_per_task
        stream = split_stream(x, y, classes_per_task, scenario, validation, class_order, seed,
                              0.2, name, keys=("y_train", "y_test"), where=where, limit=limit,
                              num_classes=dataset.num_classes)
        if spec.normalization is not None:
            mean, std = spec.normalization
            stream.details["normalization"] = {"mean": list(mean), "std": list(std)}
        return stream
    check_two_classes(y, where, "y_train", limit, name)
    if spec.kind == "rotated":
        return rotated(x, y, num_tasks, scenario, validation, angles, seed=seed, name=name)
    return permuted(x, y, num_tasks, scenario, validation, seed=seed, name=name)


__all__ = [
    "BENCHMARKS",
    "FUNCTIONS",
    "IRIS_FEATURES",
    "IRIS_FEATURE_PAIRS",
    "SCENARIOS",
    "TASK_TYPES",
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
