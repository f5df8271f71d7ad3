"""RunWriter: what a run leaves in its folder after each task (results, models, samples, the
checkpoint), at the paths `RunDir` gives."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from sequential_learning.pipeline import is_tf_dataset
from sequential_learning.results import atomic_write_bytes
from sequential_learning.rundir import RunDir


class RunWriter:
    """The manager's service that writes the run folder after every task and at the end.

    After task i: `results.json` and `history.csv`, every finished task's model, 64
    validation samples of each finished task (once), and the checkpoint (see
    `sequential_learning.checkpoint`); at the end the same without a new checkpoint. A failed
    write (a full disk) is one `SeqlError` naming the path and what is still intact.

    Args:
        run_dir: the run folder.

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, out_dir="runs/mine")   # uses RunWriter
    ```
    """

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir

    def after_training_exp(self, manager: Any) -> None:
        """Writes results, models, samples and the checkpoint after a task."""
        self.write(manager, final=False)

    def after_training(self, manager: Any) -> None:
        """Writes the final results and models."""
        self.write(manager, final=True)

    def write(self, manager: Any, final: bool) -> None:
        """Writes the run folder; an `OSError` becomes one `SeqlError` (see `disk_error`)."""
        try:
            self._write_files(manager, final)
        except OSError as error:
            from sequential_learning.errors import disk_error

            out = self.run_dir.root
            done = manager.results.completed_tasks - (0 if final else 1)
            saved = (f"the checkpoint after task {done} is intact; resume with: seql run "
                     f"--resume {out}" if done else "no task was saved")
            raise disk_error(error, out, saved) from None

    def _write_files(self, manager: Any, final: bool) -> None:
        run, results = self.run_dir, manager.results
        results.save(run.root)
        run.models.mkdir(parents=True, exist_ok=True)
        run.samples.mkdir(parents=True, exist_ok=True)
        done = results.completed_tasks
        for k, task in enumerate(manager.tasks[:done], start=1):
            tmp = run.model_temporary(k)
            task.model.save(tmp)
            tmp.replace(run.model(k))
            sample_path = run.sample(k)
            if not sample_path.exists():
                x, y = validation_sample(task, 64)
                buffer = io.BytesIO()
                np.savez(buffer, x=x, y=y)
                atomic_write_bytes(sample_path, buffer.getvalue())
        if not final and done:
            from sequential_learning.checkpoint import save_checkpoint

            save_checkpoint(run.root, [t.model for t in manager.tasks], done, manager.checkpointed,
                            manager.config, results)


def validation_sample(task: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` validation samples of `task`, as arrays `(x, y)`.

    A `tf.data.Dataset` is read batch by batch only until `n` samples are in; `(x, y)` arrays are
    sliced.

    Args:
        task: a `SequentialTask` (anything with `validation_data`: a batched dataset of `(x, y)`
            or a pair of arrays).
        n: how many samples; fewer come back when the validation set is smaller.

    Returns:
        `(x, y)`, NumPy arrays of at most `n` rows.

    Example:
    ```python
    x, y = validation_sample(tasks[0], 64)    # what the run saves in samples/task_1.npz
    ```
    """
    data = task.validation_data
    if is_tf_dataset(data):
        xs, ys = [], []
        for xb, yb in data:
            xs.append(np.asarray(xb))
            ys.append(np.asarray(yb))
            if sum(len(a) for a in xs) >= n:
                break
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    return np.asarray(data[0])[:n], np.asarray(data[1])[:n]
