"""The two reference points every continual-learning paper reports: joint and cumulative.

* `joint`: the upper bound. Every task trains on the union of *every* task's training data,
  as if the stream arrived all at once: the i.i.d. learner, with nothing to forget. It trains
  as many epochs over all the data as the stream has tasks times their epochs, so it is also
  the best-trained model of a comparison (trained once for one task's epochs, as Mammoth's
  `joint`, it tied or lost to `cumulative` on task-incremental split Fashion-MNIST).
  Its accuracy matrix has every task learned from the first row, so FWT and BWT say nothing; in
  a class-incremental stream every class is active from the first task on.
* `cumulative`: each task trains on the union of the data of every task so far (Avalanche's
  `Cumulative`).

With a head per task every sample goes through its own task's head (the batches carry task
ids and the step trains every head involved); with one head for all tasks the union is simply
more data for that head.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sequential_learning.plugins.base import Experience, Plugin, Run


class Cumulative(Plugin):
    """Trains each task on the data of every task so far (a reference point)."""

    name = "cumulative"
    family = "reference"
    needs_boundaries = True
    boundary_use = "it trains each task on the data of the tasks so far"

    def check(self, run: Run) -> None:
        super().check(run)
        run.require_arrays(self.name, "it concatenates the tasks' data")

    def build(self, run: Run) -> None:
        self.run = run

    def _tasks(self, exp: Experience) -> range:
        return range(exp.index + 1)

    def routed_tasks(self, exp: Experience) -> int:
        return 0 if exp.run.shared_head else self._tasks(exp).stop

    def before_training_exp(self, exp: Experience) -> None:
        # In a class-incremental stream the classes of every task trained on are active.
        active = getattr(exp.task, "active_classes", None)
        if active is not None:
            active.activate_through(self._tasks(exp).stop - 1)

    def routed_data(self, exp: Experience) -> bool:
        return not exp.run.shared_head and len(self._tasks(exp)) > 1

    def adapt_dataset(self, dataset: Any, exp: Experience) -> Any:
        from sequential_learning.pipeline import array_dataset

        indices = self._tasks(exp)
        tasks = [exp.run.tasks[k] for k in indices]
        x = np.concatenate([np.asarray(t.train_data[0], np.float32) for t in tasks])
        y = np.concatenate([np.asarray(t.train_data[1]) for t in tasks])
        ids = None
        if self.routed_data(exp):
            ids = np.concatenate([np.full(len(t.train_data[0]), k, np.int32)
                                  for k, t in zip(indices, tasks)])
        task = exp.task
        return array_dataset(x, y, task.batch_size, task.shuffle_seed + exp.run.seed * 1000
                             + exp.index, task_ids=ids)

    def describe(self) -> dict:
        return {"reference": self.name}


class Joint(Cumulative):
    """Trains every task on every task's data (the upper bound)."""

    name = "joint"
    boundary_use = "it trains every task on the data of every task"

    def _tasks(self, exp: Experience) -> range:
        return range(exp.run.num_tasks)
