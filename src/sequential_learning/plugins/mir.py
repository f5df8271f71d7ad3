"""MIR (Aljundi et al. 2019, "Online continual learning with maximally interfered retrieval").

Experience replay that replays the buffer samples the coming update would hurt most. Every step:

1. draws `mir_candidates` distinct samples from the reservoir buffer, leaving out the samples of
   the task in training (as the authors' code, `buffer.sample(subsample, exclude_task=task)`;
   by default 5 per replayed sample, the authors' 50 for 10, at most the whole memory);
2. takes the gradient g of the incoming batch's loss and makes a virtual SGD step
   θ' = θ − lr · g (lr: the optimizer's learning rate);
3. scores each candidate by its loss after the virtual step minus its loss now,
   ℓ(θ') − ℓ(θ) (each sample through its own task's model, in inference mode; the scores carry
   no gradient);
4. replays the `memory_batch` highest-scoring candidates: their mean loss is added to the
   step's (the update is the incoming batch's gradient plus theirs, as in the authors' code).

Every sample is offered to the reservoir after the update, as `replay` does. During the first
task every candidate belongs to the task in training, so nothing is replayed (the authors
replay from the second task on). In a task-free stream (`--boundaries none` or `blurry`: one
experience, no task to leave out) every stored sample is a candidate. The authors replay 10 samples per incoming batch of 10; here the
replayed batch is the incoming one's size unless `memory_batch` says otherwise. Mammoth has no MIR; Avalanche's plugin keeps a class-balanced buffer
and excludes the classes of the last batch instead of the current task.

Measured on class-incremental split Fashion-MNIST (memory 500): ACC 0.753 (replay 0.775) at 2
epochs, batch 128 and 500 candidates; 0.769 online (`--epochs 1 --batch-size 10`, 50 candidates;
replay 0.761).

Everything runs inside the compiled step on every backend: g is the backend's `value_and_grad`
of the incoming batch's loss, θ' is used through a `keras.StatelessScope` (as Keras's
`stateless_call`; every routed model's weights mapped) and the selection is `ops.top_k`. Where
fewer than `memory_batch` candidates are eligible, the replayed loss is the mean over those.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from sequential_learning import backend
from sequential_learning.plugins.base import (
    Experience,
    Run,
    Step,
    per_sample_loss,
    replica_share,
)
from sequential_learning.plugins.buffer import MemoryBuffer, buffer_for
from sequential_learning.plugins.registry import MEMORY, MEMORY_BATCH, MIR_CANDIDATES
from sequential_learning.plugins.rehearsal import RehearsalPlugin
from sequential_learning.plugins.replay import check_memory_fits
from sequential_learning.plugins.routing import select


class MIR(RehearsalPlugin):
    """Maximally interfered retrieval: replay the candidates a virtual update hurts most.

    Args:
        memory: samples the reservoir buffer holds, all tasks together.
        memory_batch: samples replayed per step (None: the task's batch size); at most
            `mir_candidates`.
        mir_candidates: buffer samples scored per step (None: 5 × memory_batch, the
            authors' ratio; at most the memory is scored).
        seed: seed of the buffer's draws (None: the run's seed).

    Logs `mir_replay_loss` (the replayed samples' mean loss) and `mir_interference` (their mean
    score ℓ(θ') − ℓ(θ)).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=MIR(memory=500, mir_candidates=50))
    ```
    """

    name = "mir"
    family = "replay"
    log_names = ("mir_replay_loss", "mir_interference")

    def __init__(self, memory: int = MEMORY.default, memory_batch: int | None = None,
                 mir_candidates: int | None = MIR_CANDIDATES.default,
                 seed: int | None = None) -> None:
        MEMORY.validate(memory)
        MEMORY_BATCH.validate(memory_batch)
        MIR_CANDIDATES.validate(mir_candidates)
        if None not in (memory_batch, mir_candidates) and memory_batch > mir_candidates:
            raise ValueError(f"memory_batch: {memory_batch} is more than mir_candidates "
                             f"{mir_candidates}; expected at most the candidates scored")
        self.memory = int(memory)
        self.memory_batch = memory_batch
        self.mir_candidates = mir_candidates
        self.seed = seed

    def check(self, run: Run) -> None:
        super().check(run)
        check_memory_fits(self.name, self.memory, run)
        batch = int(self.memory_batch or run.tasks[0].batch_size)
        what = "" if self.memory_batch else "the batch size "
        if self.mir_candidates is not None and batch > self.mir_candidates:
            raise ValueError(f"memory_batch: {what}{batch} is more than mir_candidates "
                             f"{self.mir_candidates}; set --memory-batch or raise "
                             "--mir-candidates")
        if batch > self.memory:
            raise ValueError(f"memory_batch: {what}{batch} is more than the memory {self.memory} "
                             "(mir replays distinct stored samples); set --memory-batch")

    def build(self, run: Run) -> None:
        seed = run.seed if self.seed is None else self.seed
        self.buffer: MemoryBuffer = buffer_for(run.tasks, self.memory, seed=seed + 5,
                                               name="mir")
        self.buffer.build()
        self.current_task = keras.Variable(0, dtype="int32", trainable=False, name="mir_task")
        self.batch = int(self.memory_batch or run.tasks[0].batch_size)
        self.candidates = min(int(self.mir_candidates or 5 * self.batch), self.memory)
        self.task_free = getattr(run, "boundaries", "tasks") != "tasks"

    def after_training_exp(self, exp: Experience) -> None:
        exp.summary["replay_buffer"] = self.buffer.composition()

    def extra_losses(self, step: Step) -> dict[str, Any]:
        excluded = None if self.task_free else self.current_task
        candidates = self.buffer.sample_distinct(self.candidates, exclude_task=excluded)
        scores = ops.stop_gradient(interference(step, candidates, self.current_task))
        scores = ops.where(candidates["valid"] > 0, scores, -1e30)
        _, top = ops.top_k(scores, self.batch)
        weights = ops.take(candidates["valid"], top)
        x, y, task = (ops.take(candidates[key], top, axis=0) for key in ("x", "y", "task"))
        values = per_sample_losses(step, y, task, step.outputs(x, task))
        count = ops.sum(weights)
        replayed = ops.divide_no_nan(ops.sum(values * weights), count)
        step.log("mir_interference",
                 ops.divide_no_nan(ops.sum(ops.take(scores, top) * weights), count))
        return {"mir_replay_loss": replica_share(replayed)}

    def after_update(self, step: Step) -> None:
        self.buffer.reservoir_add(step.x, step.y, self.current_task)

    def describe(self) -> dict:
        return {"memory": self.memory, "memory_batch": self.batch,
                "mir_candidates": self.candidates}


def interference(step: Step, candidates: dict, current_task: Any) -> Any:
    """Each candidate's loss after a virtual SGD step on the incoming batch minus its loss now.

    θ' = θ − lr · ∇ L(θ), L the incoming batch's mean loss through the training task's model,
    lr the optimizer's learning rate, over every variable the step trains. Both losses are taken
    in inference mode, each candidate through its own task's model.

    Args:
        step: the `Step` (inside `extra_losses`).
        candidates: `{"x", "y", "task"}` buffer rows.
        current_task: the training task's id (an int or a scalar tensor / variable).

    Returns:
        `[n]` scores ℓ(θ') − ℓ(θ) (float32).

    Example:
    ```python
    scores = ops.stop_gradient(interference(step, buffer.sample_distinct(50), task_id))
    ```
    """
    variables = list(step.variables)
    ids = ops.zeros((step.batch_size,), "int32") + ops.cast(current_task, "int32")

    def incoming_loss():  # the replica's own batch mean (Step.loss gives a replica's share)
        return step.loss(step.x, step.y, ids, step.sample_weight) * float(step.replicas), {}

    _, _, gradients = backend.ops().value_and_grad(incoming_loss, variables)
    rate = ops.cast(ops.convert_to_tensor(step.trainer.optimizer.learning_rate), "float32")
    virtual = [ops.stop_gradient(ops.convert_to_tensor(v) - ops.cast(rate, v.dtype) * g)
               for v, g in zip(variables, gradients)]
    x, y, task = candidates["x"], candidates["y"], candidates["task"]
    before = per_sample_losses(step, y, task, step.outputs(x, task, training=False))
    after = per_sample_losses(step, y, task, virtual_outputs(step, virtual, x, task))
    return ops.stop_gradient(after - before)


def virtual_outputs(step: Step, values: list, x: Any, task_ids: Any) -> Any:
    """`step.outputs(x, task_ids)` in inference mode with the trained variables set to `values`.

    Every weight of the routed models is mapped in a `keras.StatelessScope` (the trained ones to
    `values`, the others to their current values), so on JAX none falls back to a value
    compiled in; nothing is assigned.

    Args:
        step: the `Step`.
        values: one tensor per `step.variables`.
        x: the inputs.
        task_ids: each sample's task id.

    Returns:
        The outputs.

    Example:
    ```python
    outputs = virtual_outputs(step, [v - 0.1 * g for v, g in zip(step.variables, grads)], x, ids)
    ```
    """
    mapping = {id(v): (v, value) for v, value in zip(step.variables, values)}
    for model in step.trainer.router.models:
        for v in model.weights:
            if id(v) not in mapping:
                mapping[id(v)] = (v, ops.convert_to_tensor(v))
    with keras.StatelessScope(state_mapping=list(mapping.values())):
        return step.outputs(x, task_ids, training=False)


def per_sample_losses(step: Step, y: Any, task_ids: Any, outputs: Any) -> Any:
    """Each sample's loss by its own task's loss (the routed tasks'), float32, `[n]`.

    Args:
        step: the `Step`.
        y: the labels.
        task_ids: each sample's task id.
        outputs: each sample's outputs from its own task's model.

    Returns:
        `[n]` per-sample losses.

    Example:
    ```python
    values = per_sample_losses(step, y, ids, step.outputs(x, ids))
    ```
    """
    tasks = step.trainer.router.tasks
    values = [ops.cast(per_sample_loss(t.loss, y, outputs), "float32") for t in tasks]
    if len(values) == 1:
        return values[0]
    return select(task_ids, values)
