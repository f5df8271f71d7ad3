"""`permuted`: the same data with a fixed, seeded pixel permutation per task (task 1: identity).

Example:
```python
stream = permuted(x, y, num_tasks=5, scenario="domain", seed=0)
```
"""

from __future__ import annotations

import numpy as np

from sequential_learning.data.stream import (
    Benchmark,
    check_count,
    check_scenario,
    transformed_stream,
    validation_arrays,
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
    check_scenario(scenario)
    num_tasks = check_count(num_tasks, "num_tasks")
    x_tr, y_tr, x_va, y_va = validation_arrays(x, y, validation, validation_fraction, seed)
    shape = x_tr.shape[1:]
    features = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    transforms = []
    for t in range(num_tasks):
        perm = np.arange(features) if t == 0 else rng.permutation(features)

        def apply(a, perm=perm):
            return a.reshape(len(a), features)[:, perm].reshape((len(a), *shape))

        transforms.append(("identity" if t == 0 else f"permutation {t}", apply))
    return transformed_stream(
        name, scenario, x_tr, y_tr, x_va, y_va, transforms, {"permutation_seed": int(seed)}
    )
