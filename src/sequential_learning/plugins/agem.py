"""A-GEM (Chaudhry et al. 2019, "Efficient lifelong learning with A-GEM").

An episodic memory keeps `memory // T` random samples of each finished task (T tasks in the
stream, as Mammoth's A-GEM). Every step computes the reference gradient g_ref of the loss on a
memory batch (each sample through its own task's model) and, when the step's gradient g would
raise that loss (g · g_ref < 0), applies its projection instead:

    g ← g − (g · g_ref / g_ref · g_ref) g_ref.

The dot products run over every variable the step trains. Under a strategy with several
replicas both gradients are summed across replicas before the projection (it is not linear in
the replicas' shares), and the result is handed back as a share. The reference gradient is the
backend's `value_and_grad` inside the step. Before the first task has ended the memory is empty:
on TensorFlow (one replica) the step skips the reference pass (`tf.cond`); elsewhere, and under
several replicas (a branch may not hold the all-reduce), the pass runs with no effect.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from sequential_learning import backend
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
    needs_boundaries = True
    boundary_use = "it fills its episodic memory from each task when the task ends"

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

    def variables(self) -> list:
        """The buffer's variables (its seed generator's state included)."""
        return self.buffer.variables()

    def routed_tasks(self, exp: Experience) -> int:
        return exp.index + 1

    def after_training_exp(self, exp: Experience) -> None:
        x, y = exp.task.sample(self.per_task, seed=self._seed + 7 * exp.index + 5)
        self.buffer.fill_slots(exp.index * self.per_task, np.asarray(x, np.float32), y, exp.index)
        exp.summary["agem_memory"] = self.buffer.composition()

    def transform_gradients(self, step: Step, gradients: list) -> list:
        gradients = list(gradients)
        variables = step.variables
        batch = self.buffer.sample(self.batch)  # outside any branch: it moves the seed
        ops_module = backend.ops()

        def reference_loss():
            loss = step.loss(batch["x"], batch["y"], batch["task"])
            return step.trainer.optimizer.scale_loss(loss), {}

        def project():
            _, _, reference = ops_module.value_and_grad(reference_loss, variables)
            own = gradients
            if step.replicas > 1:  # TensorFlow's strategies only
                import tensorflow as tf

                context = tf.distribute.get_replica_context()
                own = context.all_reduce(tf.distribute.ReduceOp.SUM, own)
                reference = context.all_reduce(tf.distribute.ReduceOp.SUM, reference)
            dot = _add_n([ops.sum(g * r) for g, r in zip(own, reference)])
            norm = _add_n([ops.sum(r * r) for r in reference])
            conflict = ops.logical_and(dot < 0, batch["has_data"] > 0)
            coefficient = ops.where(conflict, ops.divide_no_nan(dot, norm), 0.0)
            projected = [g - coefficient * r for g, r in zip(own, reference)]
            if step.replicas > 1:  # a share again: apply_gradients sums the replicas'
                projected = [g / float(step.replicas) for g in projected]
            return projected, ops.cast(conflict, "float32")

        if backend.is_tensorflow() and step.replicas == 1:
            # TensorFlow skips the reference pass while the memory is empty. (A branch may not
            # hold a strategy's all-reduce, and JAX would trace both branches anyway: there the
            # pass always runs, with a zero coefficient while the memory is empty.)
            import tensorflow as tf

            out, flag = tf.cond(batch["has_data"] > 0, project,
                                lambda: (gradients, tf.constant(0.0)))
        else:
            out, flag = project()
        step.log("projected", flag)
        return list(out)

    def state(self) -> dict[str, np.ndarray]:
        return self.buffer.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.buffer.load_state(state)

    def describe(self) -> dict:
        return {"memory": self.memory, "memory_per_task": self.per_task,
                "memory_batch": self.batch}


def _add_n(values: list):
    """The sum of a list of tensors, in order."""
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total
