"""How a run stops early: the non-finite check (one clear error when the loss becomes NaN or
infinite), and what an interruption says."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras

from sequential_learning.errors import SeqlError


class TrainingDivergedError(SeqlError, RuntimeError):
    """The loss became NaN or infinite during a task (a `SeqlError`: one line from `seql`)."""


class DivergenceCheck:
    """The manager's service that checks the loss after every epoch.

    The compiled step records the first non-finite step of the epoch in a variable
    (`ContinualTrainer.nonfinite_step`), so the hot path has no host sync; this reads it once
    per epoch, with the epoch's mean loss.

    Example:
    ```python
    try:
        manager.train_all()
    except TrainingDivergedError as error:
        print(error)   # names the task, epoch, step, the learning rate (and lambda)
    ```
    """

    def after_training_epoch(self, manager: Any) -> None:
        """Raises `TrainingDivergedError` when the epoch that just ended diverged."""
        logs = manager.logs
        index, epoch = manager.clock.task_index, manager.clock.epoch
        loss = logs.get("loss")
        bad_step = int(keras.ops.convert_to_numpy(manager.trainer.nonfinite_step))
        if bad_step >= 0 or (loss is not None and not math.isfinite(float(loss))):
            where = f", step {bad_step + 1}" if bad_step >= 0 else ""
            out_dir = manager.out_dir
            raise TrainingDivergedError(
                f"Task {manager.tasks[index].name!r} (task {index + 1}), epoch {epoch + 1}{where}: "
                f"the loss became {'non-finite' if loss is None else loss}. Lower the learning "
                f"rate (now {manager.learning_rate:g})"
                + (f" or lambda (now {manager.ewc_lambda:g})" if manager.penalty is not None
                   else "")
                + ". "
                + (f"The {index} finished task(s) are kept in {out_dir}."
                   if out_dir is not None and index else "No task had finished.")
            )


def interruption_message(task_index: int, done: int, out_dir: Path | None) -> str:
    """What an interrupted run says: the task it was in, and what is saved (and how to resume).

    Args:
        task_index: the task in training (from 0).
        done: the finished tasks.
        out_dir: the run folder, or None.

    Returns:
        The message of the `KeyboardInterrupt` the manager raises.

    Example:
    ```python
    interruption_message(2, 2, Path("runs/x"))
    # 'interrupted during task 3; the 2 finished task(s) are saved in runs/x; resume with:
    #  seql run --resume runs/x'
    ```
    """
    where = f" in {out_dir}" if out_dir is not None else ""
    saved = (f"the {done} finished task(s) are saved{where}"
             + (f"; resume with: seql run --resume {out_dir}" if out_dir else "")
             if done else "no task had finished")
    return f"interrupted during task {task_index + 1}; {saved}"
