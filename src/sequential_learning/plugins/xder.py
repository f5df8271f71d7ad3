"""X-DER (Boschini et al. 2022, "Class-incremental continual learning into the extended
DER-verse"), without its future-preparation variants (no SupCon / RPC heads): Mammoth's `xder_ce`.

A buffer of past samples with the logits the model gave them (DER++'s), filled at the end of each
task and kept class-balanced. What is implemented, term by term (t: the task in training):

* **present head**: the incoming batch's cross-entropy over task t's classes only (the
  earlier classes masked out; added as `xder_shift` = that loss minus the task loss, which the
  trainer computes over every class seen so far);
* **DER term** α · mean (f(x') − z')² over one buffer batch, every logit matched;
* **label replay** β · CE(f(x''), y'') over another buffer batch, over the classes of tasks
  before t (the past heads);
* **future-heads constraint** η · mean over the positive entries of
  max(future classes' logits) + m − max(ground-truth head's logits), for the incoming batch
  (ground-truth head: task t's classes) and the buffer batches (their label's task's classes),
  while any task is still to come;
* **logit updates** ("future past" and "past"), Mammoth's `update_logits`: the logits of some
  classes are replaced by the current model's, rescaled when their largest exceeds the stored
  target-class logit so that it becomes γ · that logit (coefficient γ · z_y / max, as Mammoth's):
  - in the step, each buffer sample drawn (once per step, duplicates removed) whose class is of
    an earlier task gets its logits of the classes of tasks ≥ t from the outputs the step
    computed, with probability 1 / (the times it was drawn this task) (Mammoth's
    `update_counter`, reset at each task's end);
  - at the end of task t: every held class keeps its first memory // (classes seen) samples;
    the free slots take task t's samples, an equal share per class (the remainder to randomly
    chosen classes) drawn in a seeded shuffled order, stored with the model's logits, their
    earlier classes' logits rescaled ("past"); then every sample of an earlier task gets its
    logits of the classes of tasks ≥ t from the current model ("future past").

Where we differ from Mammoth: the end-of-task logits are taken in inference mode without
augmentation (Mammoth: training mode, augmented inputs, BatchNorm statistics frozen); no BatchNorm
alignment (`--align_bn`); classes may be in any order (each class's task comes from the stream,
not label // classes per task). The weights α and β are DER++'s options (`derpp_alpha`,
`derpp_beta`), γ, m and η are `xder_gamma`, `xder_margin` and `xder_eta` (Mammoth's `--gamma`,
`--constr_margin`, `--constr_eta`, same defaults as its `xder_ce`).

Measured on class-incremental split Fashion-MNIST (`seql run --benchmark split-fashion-mnist
--scenario class --method xder --memory 500`: MLP, 2 epochs, batch 128): ACC 0.725 (DER++ 0.795),
with a weak diagonal (the task just trained 0.71, 0.56, 0.01, 0.40 from the second on) that later
tasks repair (BWT +0.24): the incoming batch's loss never sets the present classes against the
earlier ones, which only the buffer's rescaled logits do once the task's samples are stored; with
the constraint off (`--xder-eta 0`) ACC 0.736, so that is the present-head loss's doing, not the
constraint's. Mammoth's X-DER prepares the future heads with SupCon or RPC, not reproduced here.

X-DER is a class-incremental method: its logit updates and constraint are about one head over
every class. A stream with a head per task (task-incremental) or one head reused by every task
(domain-incremental) is refused with one line: there DER++ (`derpp`) is what remains of it. So is
a task-free stream (`--boundaries none` or `blurry`): the buffer is filled when a task ends.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.class_incremental import mask_outputs
from sequential_learning.plugins.base import (
    Experience,
    Run,
    Step,
    per_sample_loss,
    replica_share,
)
from sequential_learning.plugins.buffer import MemoryBuffer, buffer_for
from sequential_learning.plugins.er_ace import masked_loss_shift
from sequential_learning.plugins.registry import (
    DERPP_ALPHA,
    DERPP_BETA,
    MEMORY,
    MEMORY_BATCH,
    XDER_ETA,
    XDER_GAMMA,
    XDER_MARGIN,
)
from sequential_learning.plugins.rehearsal import RehearsalPlugin
from sequential_learning.plugins.replay import check_memory_fits
from sequential_learning.saved_state import state_array

_LOW = -1e9  # a logit below every real one: outside a head's classes


class XDER(RehearsalPlugin):
    """eXtended DER (X-DER) for class-incremental streams (see the module docstring).

    Args:
        memory: samples the buffer holds, all tasks together (at least the stream's classes).
        memory_batch: samples per buffer batch (None: the task's batch size).
        derpp_alpha: α, the weight of matching the stored logits.
        derpp_beta: β, the weight of the replayed labels' loss (past heads).
        xder_gamma: γ in (0, 1], the logit update's bound relative to the target logit.
        xder_margin: m, the future-heads constraint's margin.
        xder_eta: η, the future-heads constraint's weight.
        seed: seed of the buffer's draws and end-of-task choices (None: the run's seed).

    Logs `xder_shift`, `xder_logit_loss`, `xder_replay_loss` and `xder_future_loss`.

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=XDER(memory=500))
    ```
    """

    name = "xder"
    family = "replay"
    log_names = ("xder_shift", "xder_logit_loss", "xder_replay_loss", "xder_future_loss")
    task_types = ("classification",)
    needs_boundaries = True
    boundary_use = "xder fills its buffer and rewrites its logits when a task ends"

    def __init__(self, memory: int = MEMORY.default, memory_batch: int | None = None,
                 derpp_alpha: float = DERPP_ALPHA.default,
                 derpp_beta: float = DERPP_BETA.default,
                 xder_gamma: float = XDER_GAMMA.default,
                 xder_margin: float = XDER_MARGIN.default,
                 xder_eta: float = XDER_ETA.default,
                 seed: int | None = None) -> None:
        for option, value in ((MEMORY, memory), (MEMORY_BATCH, memory_batch),
                              (DERPP_ALPHA, derpp_alpha), (DERPP_BETA, derpp_beta),
                              (XDER_GAMMA, xder_gamma), (XDER_MARGIN, xder_margin),
                              (XDER_ETA, xder_eta)):
            option.validate(value)
        self.memory = int(memory)
        self.memory_batch = memory_batch
        self.alpha, self.beta = float(derpp_alpha), float(derpp_beta)
        self.gamma, self.margin, self.eta = float(xder_gamma), float(xder_margin), float(xder_eta)
        self.seed = seed

    def check(self, run: Run) -> None:
        super().check(run)
        active = getattr(run.tasks[0], "active_classes", None)
        if not run.shared_head or active is None:
            kind = run.scenario or ("head per task" if not run.shared_head else "unmasked")
            raise ValueError(f"xder: needs a class-incremental stream (one head over every "
                             f"class, --scenario class), this one is {kind}; use derpp there")
        if not getattr(run.tasks[0], "from_logits", True):
            raise ValueError("xder: needs a head that outputs logits (its logit updates and "
                             "constraint are on logits), this one outputs probabilities")
        run.require_arrays(self.name, "it fills its buffer from each finished task")
        check_memory_fits(self.name, self.memory, run)
        classes = len({c for task in active.task_classes for c in task})
        if self.memory < classes:
            raise ValueError(f"memory: {self.memory} is less than the stream's {classes} "
                             "classes (xder keeps memory // classes seen of each class)")

    def build(self, run: Run) -> None:
        self._seed = run.seed if self.seed is None else self.seed
        self.buffer: MemoryBuffer = buffer_for(run.tasks, self.memory, logits=True,
                                               seed=self._seed + 6, name="xder")
        self.buffer.build()
        active = run.tasks[0].active_classes
        self.task_classes = [list(c) for c in active.task_classes]
        width = int(run.tasks[0].model.output_shape[-1])
        class_task = np.full(width, -1, np.int32)
        for k, classes in enumerate(self.task_classes):
            class_task[classes] = k
        self.class_task = class_task  # each class's task (-1: no task's)
        self.task_masks = np.stack([active.task_mask(k) for k in range(run.num_tasks)])
        self.current_task = keras.Variable(0, dtype="int32", trainable=False, name="xder_task")
        self.counter = keras.Variable(np.zeros(self.memory, np.float32), trainable=False,
                                      name="xder_update_counter",
                                      aggregation="only_first_replica")
        self.batch = int(self.memory_batch or run.tasks[0].batch_size)
        self.eval_batch = int(getattr(run.tasks[0], "eval_batch_size", 1024))

    def variables(self) -> list:
        """The buffer's variables (its seed generator's state included), the task id and the
        per-slot update counter."""
        return [*super().variables(), self.counter]

    # -- in the step -----------------------------------------------------------------------------
    def _masks(self) -> tuple[Any, Any, Any, Any]:
        task = ops.convert_to_tensor(self.current_task)
        class_task = ops.convert_to_tensor(self.class_task)
        current = ops.cast(ops.equal(class_task, task), "float32")
        past = ops.cast(ops.logical_and(class_task >= 0, class_task < task), "float32")
        future = ops.cast(class_task > task, "float32")
        return task, current, past, future

    def extra_losses(self, step: Step) -> dict[str, Any]:
        task, current, past, future = self._masks()
        shift = masked_loss_shift(step, current)
        first = self.buffer.sample(self.batch, with_slots=True)
        second = self.buffer.sample(self.batch, with_slots=True)
        has_data = first["has_data"]
        out_1 = ops.cast(step.outputs(first["x"], first["task"]), "float32")
        out_2 = ops.cast(step.outputs(second["x"], second["task"]), "float32")
        logit_loss = replica_share(ops.mean(ops.square(out_1 - first["logits"])))
        past_ce = per_sample_loss(step.trainer.loss, second["y"], mask_outputs(out_2, past))
        label_loss = replica_share(ops.mean(ops.cast(past_ce, "float32")))
        # The two buffer batches together, each slot once (its first draw).
        slots = ops.concatenate([first["slot"], second["slot"]])
        labels = ops.reshape(ops.cast(ops.concatenate([first["y"], second["y"]]), "int32"), (-1,))
        outputs = ops.concatenate([out_1, out_2])
        once = first_occurrences(slots) * has_data
        future_loss = self._future_constraint(step, outputs, labels, once, current, future)
        step.carry("xder_slots", slots)
        step.carry("xder_labels", labels)
        step.carry("xder_outputs", ops.stop_gradient(outputs))
        step.carry("xder_stored", ops.concatenate([first["logits"], second["logits"]]))
        step.carry("xder_once", once)
        return {"xder_shift": shift,
                "xder_logit_loss": self.alpha * logit_loss * has_data,
                "xder_replay_loss": self.beta * label_loss * has_data,
                "xder_future_loss": self.eta * future_loss}

    def _future_constraint(self, step, outputs, labels, once, current, future) -> Any:
        """Mean over the positive entries of max(future) + m − max(ground-truth head)."""
        incoming = ops.cast(step.y_pred, "float32")
        future_row = future[None, :]
        own = ops.take(ops.convert_to_tensor(self.task_masks.astype(np.float32)),
                       ops.maximum(ops.take(ops.convert_to_tensor(self.class_task), labels), 0),
                       axis=0)
        stream = (head_max(incoming, future_row) + self.margin
                  - head_max(incoming, current[None, :]))
        replayed = head_max(outputs, future_row) + self.margin - head_max(outputs, own)
        if step.sample_weight is not None:
            weights = ops.cast(ops.reshape(step.sample_weight, (-1,)) > 0, "float32")
        else:
            weights = ops.ones_like(stream)
        violation = ops.concatenate([stream, replayed])
        counted = ops.logical_and(violation > 0, ops.concatenate([weights, once]) > 0)
        total = ops.sum(ops.where(counted, violation, 0.0))
        return replica_share(ops.divide_no_nan(total, ops.sum(ops.cast(counted, "float32"))))

    def after_update(self, step: Step) -> None:
        carried = step.carried
        slots, labels = carried["xder_slots"], carried["xder_labels"]
        task = ops.convert_to_tensor(self.current_task)
        class_task = ops.convert_to_tensor(self.class_task)
        earlier = ops.logical_and(carried["xder_once"] > 0,
                                  ops.take(class_task, labels) < task)
        counter = ops.convert_to_tensor(self.counter)
        count = ops.take(counter, slots) + ops.cast(earlier, "float32")
        target = ops.where(earlier, slots, self.memory)[:, None]
        spare = ops.zeros((1,), "float32")
        written = ops.scatter_update(ops.concatenate([counter, spare]), target, count)
        self.counter.assign(written[: self.memory])
        draw = keras.random.uniform(ops.shape(count), seed=self.buffer.draws)
        chosen = ops.logical_and(earlier, draw * count < 1.0)
        columns = ops.cast(class_task >= task, "float32")
        updated = transplant_logits(carried["xder_stored"], carried["xder_outputs"], labels,
                                    columns, self.gamma)
        self.buffer.update_logits(slots, updated, chosen)

    # -- after each task -------------------------------------------------------------------------
    def after_training_exp(self, exp: Experience) -> None:
        t = exp.index
        rng = np.random.default_rng((self._seed, t, 6))
        held = self.buffer.arrays()
        seen = sorted({c for classes in self.task_classes[: t + 1] for c in classes})
        if t > 0:  # every held class keeps its first memory // (classes seen) samples
            share = self.memory // len(seen)
            rows = [i for label in np.unique(held["y"])
                    for i in np.flatnonzero(held["y"] == label)[:share]]
            held = {key: value[rows] for key, value in held.items()}
        x, y = (np.asarray(a) for a in exp.task.train_data)
        chosen = self._new_rows(y, self.memory - len(held["x"]), t, rng)
        new_x = x[chosen].astype(np.float32)
        new_y = y[chosen].astype(held["y"].dtype)
        logits = self._predict(exp.model, new_x)
        if t > 0:  # "past": the earlier classes' logits rescaled
            logits = _numpy(transplant_logits(logits, logits, new_y,
                                              (self.class_task >= 0) & (self.class_task < t),
                                              self.gamma))
        merged = {"x": np.concatenate([held["x"], new_x]),
                  "y": np.concatenate([held["y"], new_y]),
                  "task": np.concatenate([held["task"], np.full(len(new_x), t, np.int32)]),
                  "logits": np.concatenate([held["logits"], logits.astype(np.float32)])}
        earlier = np.flatnonzero(self.class_task[merged["y"]] < t)
        if earlier.size:  # "future past": the classes of tasks >= t from the current model
            outputs = self._predict(exp.model, merged["x"][earlier])
            merged["logits"][earlier] = _numpy(transplant_logits(
                merged["logits"][earlier], outputs, merged["y"][earlier],
                self.class_task >= t, self.gamma))
        self.buffer.assign_arrays(merged)
        self.counter.assign(np.zeros(self.memory, np.float32))
        exp.summary["replay_buffer"] = self.buffer.composition()

    def _new_rows(self, y: np.ndarray, room: int, t: int, rng) -> np.ndarray:
        """Rows of task t's data for `room` slots: an equal share per class, the remainder to
        randomly chosen classes, each class's first rows in a shuffled order."""
        own = self.task_classes[t]
        share, extra = divmod(room, len(own))
        quota = dict.fromkeys(own, share)
        for k in rng.permutation(len(own))[:extra]:
            quota[own[k]] += 1
        rows = []
        for i in rng.permutation(len(y)):
            label = int(y[i])
            if quota.get(label, 0) > 0:
                rows.append(i)
                quota[label] -= 1
        return np.asarray(rows, np.int64)

    def _predict(self, model: keras.Model, x: np.ndarray) -> np.ndarray:
        parts = []
        with backend.ops().no_grad():
            for start in range(0, len(x), self.eval_batch):
                parts.append(_numpy(model(x[start:start + self.eval_batch], training=False)))
        width = int(model.output_shape[-1])
        return (np.concatenate(parts) if parts else np.zeros((0, width))).astype(np.float32)

    # -- state -----------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        out = self.buffer.state()
        out["update_counter"] = _numpy(self.counter)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: as `MemoryBuffer.load_state`, or `update_counter` missing, of
                another shape, or negative; nothing is assigned then.
        """
        counter = state_array(self.name, state, "update_counter", (self.memory,), low=0,
                              what="a count of draws")
        self.buffer.load_state(state)
        self.counter.assign(counter.astype(np.float32))

    def describe(self) -> dict:
        return {"memory": self.memory, "memory_batch": self.batch, "derpp_alpha": self.alpha,
                "derpp_beta": self.beta, "xder_gamma": self.gamma, "xder_margin": self.margin,
                "xder_eta": self.eta}


def transplant_logits(old: Any, new: Any, labels: Any, columns: Any, gamma: float) -> Any:
    """X-DER's logit update (Mammoth's `update_logits`): the `columns` of `old` replaced by
    those of `new`, scaled by γ · old[label] / max where their largest, max, exceeds the stored
    target logit old[label] (so that it becomes γ times it).

    Args:
        old: the stored logits, `[n, C]`.
        new: the current model's logits, `[n, C]`.
        labels: each row's class, `[n]`.
        columns: `[C]`, > 0 (or True) for the classes replaced.
        gamma: γ.

    Returns:
        `[n, C]` float32 (keras.ops: in the step, or eagerly on NumPy arrays).

    Example:
    ```python
    transplant_logits(np.array([[4.0, 0.0]]), np.array([[0.0, 8.0]]), np.array([0]),
                      np.array([0.0, 1.0]), 0.5)   # [[4.0, 2.0]]: 8 scaled to 0.5 * 4
    ```
    """
    old = ops.cast(ops.convert_to_tensor(old), "float32")
    new = ops.cast(ops.convert_to_tensor(new), "float32")
    keep = ops.reshape(ops.convert_to_tensor(columns), (1, -1))
    if keras.backend.standardize_dtype(keep.dtype) != "bool":
        keep = keep > 0
    index = ops.reshape(ops.cast(ops.convert_to_tensor(labels), "int32"), (-1, 1))
    target = ops.take_along_axis(old, index, axis=1)[:, 0]
    top = ops.max(ops.where(keep, new, _LOW), axis=1)
    scale = ops.where(top > target, gamma * ops.divide_no_nan(target, top), 1.0)
    return ops.where(keep, new * scale[:, None], old)


def head_max(outputs: Any, mask: Any) -> Any:
    """Each row's largest output among the classes `mask` keeps (a very low value for none).

    Args:
        outputs: `[n, C]`.
        mask: `[C]`, `[1, C]` or `[n, C]`, > 0 for the classes of the head.

    Returns:
        `[n]`.

    Example:
    ```python
    head_max(ops.array([[1.0, 3.0, 2.0]]), ops.array([1.0, 0.0, 1.0]))   # [2.0]
    ```
    """
    return ops.max(ops.where(mask > 0, outputs, _LOW), axis=-1)


def first_occurrences(slots: Any) -> Any:
    """1.0 for each entry whose value does not occur earlier in `slots`, else 0.0.

    Args:
        slots: int, `[n]`.

    Returns:
        float32 `[n]`.

    Example:
    ```python
    first_occurrences(ops.array([3, 1, 3, 2]))   # [1, 1, 0, 1]
    ```
    """
    order = ops.arange(ops.shape(slots)[0])
    same = ops.equal(slots[:, None], slots[None, :])
    earlier = order[None, :] < order[:, None]
    return 1.0 - ops.cast(ops.any(ops.logical_and(same, earlier), axis=1), "float32")


def _numpy(value) -> np.ndarray:
    return np.array(ops.convert_to_numpy(value))
