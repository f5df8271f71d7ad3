"""Clock: where a run stands (task, epoch, epochs done) and how long it has taken.

The manager's clock, as Avalanche's `Clock` plugin: services read it instead of keeping counters
of their own (the evaluation schedule, the progress line, the results' epoch numbers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence


class Clock:
    """Counts the epochs of a run of tasks and times it.

    Args:
        epochs: epochs per task: one int, or one entry per task.
        num_tasks: the number of tasks.

    Attributes:
        epochs: the epochs of each task (a list).
        task_index: the task in training (from 0).
        epoch: the epoch of that task that ended last (from 0).
        epochs_done: epochs finished in the whole run (counted over every task).

    Example:
    ```python
    clock = Clock(2, num_tasks=3)
    clock.start(first_task=0)
    clock.begin_task(0); clock.end_epoch(0)
    clock.global_epoch, clock.total_epochs   # (1, 6)
    ```
    """

    def __init__(self, epochs: int | Sequence[int], num_tasks: int) -> None:
        if isinstance(epochs, int):
            self.epochs = [epochs] * num_tasks
        else:
            self.epochs = [int(e) for e in epochs]
            if len(self.epochs) != num_tasks:
                raise ValueError(
                    f"epochs has {len(self.epochs)} entries but there are {num_tasks} "
                    "tasks: give one int, or one entry per task"
                )
        if any(e < 1 for e in self.epochs):
            raise ValueError(f"every task needs at least one epoch, got epochs={self.epochs}")
        self.task_index = 0
        self.epoch = 0
        self.epochs_done = 0
        self.start_time = time.perf_counter()
        self.task_start = self.start_time

    def start(self, first_task: int, start_time: float | None = None) -> None:
        """Starts (or resumes) the run at task `first_task` (the earlier ones are done)."""
        self.epochs_done = sum(self.epochs[:first_task])
        self.start_time = time.perf_counter() if start_time is None else start_time

    def begin_task(self, index: int) -> None:
        """Task `index` (from 0) starts training."""
        self.task_index = index
        self.task_start = time.perf_counter()

    def end_epoch(self, epoch: int) -> None:
        """Epoch `epoch` (from 0) of the task in training has ended."""
        self.epoch = epoch
        self.epochs_done += 1

    @property
    def task_epochs(self) -> int:
        """The epochs of the task in training."""
        return self.epochs[self.task_index]

    @property
    def total_epochs(self) -> int:
        """The epochs of the whole run."""
        return sum(self.epochs)

    @property
    def global_epoch(self) -> int:
        """The epoch that ended last, counted over the whole run from 1."""
        return self.epochs_done

    def elapsed(self) -> float:
        """Seconds since the run (or this resumed part of it) started."""
        return time.perf_counter() - self.start_time

    def task_seconds(self) -> float:
        """Seconds since the task in training started."""
        return time.perf_counter() - self.task_start
