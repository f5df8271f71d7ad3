"""A-GEM (Chaudhry et al. 2019, "Efficient lifelong learning with A-GEM").

An episodic memory keeps `memory // T` random samples of each finished task (T tasks in the
stream, as Mammoth's A-GEM). Every step computes the reference gradient g_ref of the loss on a
memory batch (each sample through its own task's model) and, when the step's gradient g would
raise that loss (g · g_ref < 0), applies its projection instead:

    g ← g − (g · g_ref / g_ref · g_ref) g_ref.

The dot products run over every variable the step trains. Under a strategy with several
replicas both gradients are summed across replicas before the projection (it is not linear in
the replicas' shares), and the result is handed back as a share. Before the first task has
ended the memory is empty and the step skips the reference pass (`tf.cond`; under several
replicas, where a branch may not hold the all-reduce, the pass runs with no effect).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from sequential_learning.plugins.base import Experience, Plugin, Run, Step
from sequential_learning.plugins.buffer import MemoryBuffer, buffer_for
from sequential_learning.plugins.registry import MEMORY, MEMORY_BATCH
from sequential_learning.plugins.replay import check_memory_fits


class AGEM(Plugin):
    """Averaged gradient episodic memory: project the gradient when it would raise the memory's
    loss.

    Args:
        memory: samples of memory, all tasks together (`memory // T` per task).
        memory_batch: samples of the memory batch per step (None: the task's batch size).
        seed: seed of the memory's draws (None: the run's seed).

    Logs `projected`: the fraction of steps whose gradient was projected.

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=AGEM(memory=500))
    ```
    """

    name = "a-gem"
    family = "projection"
    log_names = ("projected",)

    def __init__(self, memory: int = MEMORY.default, memory_batch: int | None = None,
                 seed: int | None = None) -> None:
        MEMORY.validate(memory)
        MEMORY_BATCH.validate(memory_batch)
        self.memory = int(memory)
        self.memory_batch = memory_batch
        self.seed = seed

    def check(self, run: Run) -> None:
        super().check(run)
        check_memory_fits(self.name, self.memory, run)
        if self.memory < run.num_tasks:
            raise ValueError(f"memory: {self.memory} is smaller than the {run.num_tasks} tasks "
                             "(a-gem keeps memory // tasks samples of each)")
        run.require_arrays(self.name, "it fills its memory from each finished task")

    def build(self, run: Run) -> None:
        self._seed = run.seed if self.seed is None else self.seed
        self.per_task = self.memory // run.num_tasks
        self.buffer: MemoryBuffer = buffer_for(run.tasks, self.per_task * run.num_tasks,
                                               seed=self._seed + 3, name="agem")
        self.buffer.build()
        self.batch = int(self.memory_batch or run.tasks[0].batch_size)

    def routed_tasks(self, exp: Experience) -> int:
        return exp.index + 1

    def after_training_exp(self, exp: Experience) -> None:
        x, y = exp.task.sample(self.per_task, seed=self._seed + 7 * exp.index + 5)
        self.buffer.fill_slots(exp.index * self.per_task, np.asarray(x, np.float32), y, exp.index)
        exp.summary["agem_memory"] = self.buffer.composition()

    def transform_gradients(self, step: Step, gradients: list) -> list:
        gradients = list(gradients)
        variables = step.variables
        batch = self.buffer.sample(self.batch)  # outside the branch: it moves a counter

        def project():
            with tf.GradientTape() as tape:
                loss = step.loss(batch["x"], batch["y"], batch["task"])
                scaled = step.trainer.optimizer.scale_loss(loss)
            reference = tape.gradient(scaled, variables)
            reference = [tf.zeros_like(v) if r is None else r for r, v in zip(reference, variables)]
            own = gradients
            if step.replicas > 1:
                context = tf.distribute.get_replica_context()
                own = context.all_reduce(tf.distribute.ReduceOp.SUM, own)
                reference = context.all_reduce(tf.distribute.ReduceOp.SUM, reference)
            dot = tf.add_n([tf.reduce_sum(g * r) for g, r in zip(own, reference)])
            norm = tf.add_n([tf.reduce_sum(r * r) for r in reference])
            conflict = tf.logical_and(dot < 0, batch["has_data"] > 0)
            coefficient = tf.where(conflict, tf.math.divide_no_nan(dot, norm), 0.0)
            projected = [g - coefficient * r for g, r in zip(own, reference)]
            if step.replicas > 1:  # a share again: apply_gradients sums the replicas'
                projected = [g / float(step.replicas) for g in projected]
            return projected, tf.cast(conflict, tf.float32)

        if step.replicas > 1:
            # A branch may not hold the all-reduce (a synchronisation point): always project,
            # with a zero coefficient while the memory is empty.
            out, flag = project()
        else:
            out, flag = tf.cond(batch["has_data"] > 0, project,
                                lambda: (gradients, tf.constant(0.0)))
        step.log("projected", flag)
        return list(out)

    def state(self) -> dict[str, np.ndarray]:
        return self.buffer.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.buffer.load_state(state)

    def describe(self) -> dict:
        return {"memory": self.memory, "memory_per_task": self.per_task,
                "memory_batch": self.batch}
