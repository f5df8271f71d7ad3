"""What explaining a run reads from its folder: weights after a task, the saved samples.

Example:
```python
models = load_task_models("runs/x")
weights_after_task("runs/x", 2, models)     # every task model as it was right after task 2
x, y = read_samples(Path("runs/x"), 1, 16)  # the first 16 of samples/task_1.npz
```
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from sequential_learning.rundir import RunDir


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    from sequential_learning.checkpoint import read_npz

    return read_npz(Path(path))


def weights_after_task(run_dir: str | Path, after_task: int, models: Sequence[keras.Model]) -> None:
    """Sets the (loaded) task models' variables to their values right after task `after_task`.

    Like `load_task_models(run_dir, after_task)`, on models already loaded (so loops over tasks
    load each model once).

    Args:
        run_dir: the run folder (its `checkpoint/weights_after_task_K.npz`).
        after_task: the task (1-based) whose end to go back to.
        models: the run's task models, in task order; changed in place.

    Returns:
        None.

    Raises:
        CheckpointError: when the checkpoint is missing or does not match the models.

    Example:
    ```python
    models = load_task_models("runs/x")
    weights_after_task("runs/x", 1, models)   # every model as it was right after task 1
    ```
    """
    from sequential_learning.checkpoint import CheckpointError

    data = _read_npz(RunDir(run_dir).checkpoint_weights(after_task))
    for k, model in enumerate(models, start=1):
        index = data.get(f"index_task_{k}")
        if index is None or len(index) != len(model.weights):
            raise CheckpointError(f"Checkpoint after task {after_task} does not match task model {k}")
        for v, i in zip(model.weights, index):
            value = data[f"v{int(i)}"]
            if tuple(value.shape) != tuple(v.shape):
                raise CheckpointError(
                    f"Checkpoint after task {after_task}: variable {v.path} of task model {k} has "
                    f"shape {tuple(v.shape)} but the checkpoint holds {tuple(value.shape)}")
            v.assign(value)


def read_samples(run_dir: Path, task: int, count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The validation samples a run saved for a task (`samples/task_K.npz`, no pickle).

    Args:
        run_dir: the run folder.
        task: the task (1-based).
        count: keep the first `count` samples, or None for all.

    Returns:
        `(x, y)`, NumPy arrays.

    Raises:
        SeqlError: when the file is missing or lacks the arrays `x` and `y`.

    Example:
    ```python
    x, y = read_samples(Path("runs/x"), 1, 8)
    ```
    """
    path = RunDir(run_dir).sample(task)
    from sequential_learning.errors import SeqlError

    if not path.is_file():
        raise SeqlError(f"No validation samples for task {task}: expected {path} (arrays x, y)")
    with np.load(path, allow_pickle=False) as data:
        if "x" not in data.files or "y" not in data.files:
            raise SeqlError(f"{path} lacks arrays 'x' and 'y'; found {data.files}")
        x, y = data["x"], data["y"]
    return (x, y) if count is None else (x[:count], y[:count])
