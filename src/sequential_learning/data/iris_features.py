"""`iris_features`: the three Iris classes seen through another pair of features per task.

The reference design's example stream.

Example:
```python
stream = iris_features(num_tasks=3, scenario="domain")
```
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sequential_learning.data.datasets import load_iris
from sequential_learning.data.stream import (
    Benchmark,
    check_count,
    check_scenario,
    transformed_stream,
)

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
    check_scenario(scenario)
    if pairs is None:
        num_tasks = check_count(num_tasks, "num_tasks")
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
    return transformed_stream(
        name, scenario, data.x_train, data.y_train, data.x_test, data.y_test, transforms,
        {"feature_pairs": [list(p) for p in pairs],
         "features": [[IRIS_FEATURES[i] for i in p] for p in pairs]},
    )

