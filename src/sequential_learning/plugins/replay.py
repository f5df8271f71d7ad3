"""Experience replay (ER): a buffer of past samples whose loss is added to every step.

Every step draws `memory_batch` samples from the buffer and adds their mean loss (each sample
through its own task's model and loss) to the task's, as Mammoth's ER and Avalanche's replay
plugin do (Chaudhry et al. 2019, "On tiny episodic memories in continual learning"). Two
buffer policies:

* `reservoir` (default): every training sample is offered to the buffer inside the step, after
  the update, so the buffer is a uniform sample of everything seen so far (task 1 replays its
  own samples);
* `balanced`: after each task the buffer is refilled with an equal share per (task, class), as
  Avalanche's class-balanced buffer (nothing is replayed during task 1).

The buffer lives in `keras.Variable`s, so the step stays one compiled function on every backend; its contents are
checkpointed with the rest of the run.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from sequential_learning.plugins.base import Experience, Run, Step
from sequential_learning.plugins.buffer import MemoryBuffer, buffer_for
from sequential_learning.plugins.registry import MEMORY, MEMORY_BATCH, REPLAY_POLICY
from sequential_learning.plugins.rehearsal import RehearsalPlugin


class ExperienceReplay(RehearsalPlugin):
    """Experience replay with a reservoir or class-balanced buffer.

    Args:
        memory: samples the buffer holds, all tasks together.
        memory_batch: samples replayed per step (None: the task's batch size).
        replay_policy: `reservoir` or `balanced`.
        seed: seed of the buffer's draws (None: the run's seed).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=ExperienceReplay(memory=500))
    ```
    """

    name = "replay"
    family = "replay"
    log_names = ("replay_loss",)

    def __init__(self, memory: int = MEMORY.default, memory_batch: int | None = None,
                 replay_policy: str = REPLAY_POLICY.default, seed: int | None = None) -> None:
        MEMORY.validate(memory)
        MEMORY_BATCH.validate(memory_batch)
        REPLAY_POLICY.validate(replay_policy)
        self.memory = int(memory)
        self.memory_batch = memory_batch
        self.policy = replay_policy
        # The balanced buffer is refilled when a task ends; the reservoir learns in the step.
        self.needs_boundaries = replay_policy == "balanced"
        self.boundary_use = ("replay_policy balanced refills its buffer when a task ends; "
                             "use reservoir")
        self.seed = seed

    def check(self, run: Run) -> None:
        super().check(run)
        check_memory_fits(self.name, self.memory, run)
        if self.policy == "balanced":
            if run.task_type != "classification":
                raise ValueError("replay_policy balanced needs a classification stream (it "
                                 f"balances classes), this one is {run.task_type}")
            run.require_arrays("replay_policy balanced", "it samples each class; use "
                               "reservoir")

    def build(self, run: Run) -> None:
        seed = run.seed if self.seed is None else self.seed
        self.buffer: MemoryBuffer = buffer_for(run.tasks, self.memory, seed=seed + 1,
                                               name="replay")
        self.buffer.build()
        self.current_task = keras.Variable(0, dtype="int32", trainable=False, name="replay_task")
        self.batch = int(self.memory_batch or run.tasks[0].batch_size)
        self._seed = seed

    def after_training_exp(self, exp: Experience) -> None:
        if self.policy == "balanced":
            x, y = (np.asarray(a) for a in exp.task.train_data)
            self.buffer.fill_balanced(x.astype(np.float32), y, exp.index, self._seed + exp.index)
        exp.summary["replay_buffer"] = self.buffer.composition()

    def extra_losses(self, step: Step) -> dict[str, Any]:
        batch = self.buffer.sample(self.batch)
        loss = step.loss(batch["x"], batch["y"], batch["task"])
        return {"replay_loss": loss * batch["has_data"]}

    def after_update(self, step: Step) -> None:
        if self.policy == "reservoir":
            self.buffer.reservoir_add(step.x, step.y, self.current_task)

    def describe(self) -> dict:
        return {"memory": self.memory, "memory_batch": self.batch, "replay_policy": self.policy}


def check_memory_fits(name: str, memory: int, run: Run) -> None:
    """Raises ValueError when a buffer of `memory` samples is larger than the stream's data.

    Args:
        name: the method's name, for the message.
        memory: the buffer's capacity.
        run: the `Run` (its tasks' training sizes).

    Returns:
        None.

    Example:
    ```python
    def check(self, run):
        check_memory_fits(self.name, self.memory, run)
    ```
    """
    sizes = run.train_sizes
    if all(sizes) and memory > sum(sizes):
        raise ValueError(f"memory: {memory} is larger than the {sum(sizes)} training samples of "
                         f"the whole stream ({name} would never fill it)")
