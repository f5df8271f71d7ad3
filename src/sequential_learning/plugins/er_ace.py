"""ER-ACE (Caccia et al. 2022, "New insights on reducing abrupt representation change in online
continual learning"): experience replay with an asymmetric cross-entropy.

A reservoir buffer as `replay`'s. From the second task on, every step's loss is

    CE(f(x), y) over the classes present in the batch  +  loss(f(x'), y') over a buffer batch,

the incoming batch's cross-entropy taking only the classes of its own labels (the other logits
masked out), so that learning new classes does not push the old classes' logits down, while the
replayed samples' loss is the task's usual one (in a class-incremental stream: every class seen
so far). During the first task the loss is the task's own and nothing is replayed; every sample is
offered to the reservoir after the update (inside the step), as in Mammoth's `er_ace`.

Where we differ from Mammoth: Mammoth also keeps the classes above the largest one seen so far in
the incoming batch's softmax; here classes of tasks not reached yet stay masked out of every loss
(the stream's active classes, `class_incremental`), so the mask is the batch's present classes.
Mammoth's cosine classifier (`--use_custom_classifier`) is not reproduced: the model's own head
is trained. In a task-free stream (`--boundaries none` or `blurry`: one experience) the masking
and the replay run from the first step, as Mammoth's `--task_free`. With a head per task (task-incremental) the mask is the classes
present within the training task's head, and buffer samples go through their own task's head.

Measured on class-incremental split Fashion-MNIST (memory 500): ACC 0.795 against replay's 0.775
(2 epochs, batch 128), and 0.801 online (`--epochs 1 --batch-size 10`; fine-tuning 0.199).

The step's task loss is computed by the trainer; the asymmetric loss takes its place through the
extra loss `ace_shift` = (masked CE − task CE) over the incoming batch, so the differentiated total
is the masked CE plus the replayed loss (`base_loss + ace_shift` is the asymmetric loss).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from sequential_learning.class_incremental import mask_outputs
from sequential_learning.plugins.base import (
    Experience,
    Run,
    Step,
    mean_over_batch,
    per_sample_loss,
    replica_share,
)
from sequential_learning.plugins.buffer import MemoryBuffer, buffer_for
from sequential_learning.plugins.registry import MEMORY, MEMORY_BATCH
from sequential_learning.plugins.rehearsal import RehearsalPlugin
from sequential_learning.plugins.replay import check_memory_fits


class ERACE(RehearsalPlugin):
    """Experience replay with the asymmetric cross-entropy (ER-ACE).

    Args:
        memory: samples the reservoir buffer holds, all tasks together.
        memory_batch: samples replayed per step (None: the task's batch size).
        seed: seed of the buffer's draws (None: the run's seed).

    Logs `ace_shift` (the incoming batch's loss over its present classes minus the task loss)
    and `ace_replay_loss` (the buffer batch's loss).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=ERACE(memory=500))
    ```
    """

    name = "er-ace"
    family = "replay"
    log_names = ("ace_shift", "ace_replay_loss")
    task_types = ("classification",)

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

    def build(self, run: Run) -> None:
        seed = run.seed if self.seed is None else self.seed
        self.buffer: MemoryBuffer = buffer_for(run.tasks, self.memory, seed=seed + 4,
                                               name="erace")
        self.buffer.build()
        self.current_task = keras.Variable(0, dtype="int32", trainable=False, name="erace_task")
        # 0 during the first task (the task's own loss, no replay), 1 after.
        self.on = keras.Variable(0.0, dtype="float32", trainable=False, name="erace_on")
        self.batch = int(self.memory_batch or run.tasks[0].batch_size)
        self.from_logits = bool(getattr(run.tasks[0], "from_logits", True))
        self.task_free = getattr(run, "boundaries", "tasks") != "tasks"

    def variables(self) -> list:
        """The buffer's variables (its seed generator's state included), the task id and the
        switch that is off during the first task."""
        return [*super().variables(), self.on]

    def before_training_exp(self, exp: Experience) -> None:
        super().before_training_exp(exp)
        self.on.assign(1.0 if exp.index > 0 or self.task_free else 0.0)

    def after_training_exp(self, exp: Experience) -> None:
        exp.summary["replay_buffer"] = self.buffer.composition()

    def extra_losses(self, step: Step) -> dict[str, Any]:
        present = present_classes(step.y, int(step.y_pred.shape[-1]), step.sample_weight)
        shift = masked_loss_shift(step, present, self.from_logits)
        batch = self.buffer.sample(self.batch)
        replayed = step.loss(batch["x"], batch["y"], batch["task"])
        return {"ace_shift": shift * self.on,
                "ace_replay_loss": replayed * batch["has_data"] * self.on}

    def after_update(self, step: Step) -> None:
        self.buffer.reservoir_add(step.x, step.y, self.current_task)

    def describe(self) -> dict:
        return {"memory": self.memory, "memory_batch": self.batch}


def present_classes(y: Any, width: int, sample_weight: Any = None) -> Any:
    """1 for every class that labels a sample of the batch, else 0 (in-graph).

    Args:
        y: the batch's class indices, `[N]` (or `[N, 1]`).
        width: the head's number of outputs.
        sample_weight: the batch's sample weights (a sample of weight 0 does not count), or
            None.

    Returns:
        A float32 mask `[width]`.

    Example:
    ```python
    present_classes(ops.array([2, 0, 2]), 4)   # [1, 0, 1, 0]
    ```
    """
    labels = ops.reshape(ops.cast(y, "int32"), (-1,))
    hot = ops.one_hot(labels, width, dtype="float32")
    if sample_weight is not None:
        counts = ops.cast(ops.reshape(sample_weight, (-1, 1)) > 0, "float32")
        hot = hot * counts
    return ops.max(hot, axis=0)


def masked_loss_shift(step: Step, mask: Any, from_logits: bool = True) -> Any:
    """The incoming batch's loss with the classes outside `mask` masked out, minus its task
    loss: added to the step's task loss it gives the masked loss (a replica's share).

    Both terms are the training task's loss on the step's outputs (`per_sample_loss`), weighted
    by the sample weights as Keras weights the task loss (Σ w·l / N), so that their gradients
    cancel but for the masking.

    Args:
        step: the `Step` (inside `extra_losses`).
        mask: `[C]`, > 0 for the classes kept in the incoming batch's softmax.
        from_logits: whether the head outputs logits (else probabilities).

    Returns:
        A scalar tensor.

    Example:
    ```python
    def extra_losses(self, step):
        keep = present_classes(step.y, int(step.y_pred.shape[-1]))
        return {"ace_shift": masked_loss_shift(step, keep)}
    ```
    """
    loss = step.trainer.loss
    outputs = ops.cast(step.y_pred, "float32")
    masked = per_sample_loss(loss, step.y, mask_outputs(outputs, mask, from_logits))
    plain = per_sample_loss(loss, step.y, outputs)
    difference = ops.cast(masked, "float32") - ops.cast(plain, "float32")
    return replica_share(mean_over_batch(difference, step.sample_weight))
