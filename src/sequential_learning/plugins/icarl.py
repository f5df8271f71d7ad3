"""iCaRL (Rebuffi et al. 2017, "iCaRL: Incremental classifier and representation learning").

A memory of `memory` exemplars shared equally by the classes seen so far (`memory // classes`
each), chosen per class by herding on the L2-normalised features of the shared base
(`plugins.herding`); when new classes arrive every old class is cut to its first m exemplars in
herding order. Each task trains on its own data together with the exemplars (one training set:
the union is shuffled into the task's batches, as iCaRL's training set is), with

    loss = CE over the classes seen so far + KD(old classes),
    KD   = − Σ_old softmax(z_prev / T) · log_softmax(z / T)   (batch mean, T = 2),

where z_prev are the outputs of the model as it was before the task (its weights copied into a
frozen teacher). The loss is PyCIL's iCaRL (`models/icarl.py`: cross-entropy plus
`_KD_loss` with T = 2), the variant most reproductions use, not the paper's sigmoid binary
cross-entropy with the old network's outputs as targets. In a task-incremental stream the
exemplars go through their own task's head and KD covers each earlier task's head.

Prediction is nearest-mean-of-exemplars (NME): the class means (the mean of each class's
exemplars' normalised features, normalised) are recomputed with the current network after each
task, and a sample takes the class of the nearest mean, among every class seen so far
(class-incremental) or among its task's own classes (task-incremental). The network's own
arg-max stays the run's `accuracy`; the NME accuracy of every task after each task is row i of
the matrix `nme_accuracy` (results.json's `matrices`), with its ACC, BWT and forgetting as
`nme_acc`, `nme_bwt` and `nme_forgetting` in `metrics`. A task whose classes have no exemplars
yet scores 0 there (NME cannot predict them), as the masked network does.

Where we differ from PyCIL: no data augmentation (the streams here have none), the classes are
those of each task as the stream gives them, and the memory never exceeds `memory` (PyCIL's
`fixed_memory` off, as here).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from sequential_learning.class_incremental import mask_outputs
from sequential_learning.plugins.base import Experience, Plugin, Run, Step
from sequential_learning.plugins.herding import (
    ExemplarMemory,
    Key,
    class_mean,
    features,
    herding,
    nme_predict,
    stream_classes,
    stream_scenario,
)
from sequential_learning.plugins.lwf import LearningWithoutForgetting
from sequential_learning.plugins.registry import ICARL_TEMPERATURE, MEMORY
from sequential_learning.plugins.replay import check_memory_fits
from sequential_learning.saved_state import state_array


class SoftTargetDistillation(LearningWithoutForgetting):
    """LwF's frozen teacher with PyCIL's distillation term (iCaRL's and BiC's).

    The teacher is LwF's (the weights before the task, copied into variables and run through
    `stateless_call`); the term is the cross-entropy of the teacher's softened outputs,

        − Σ softmax(z_teacher / T) · log_softmax(z_student / T)   (summed over classes, batch
        mean),

    over the classes seen before the task (one head) or over each earlier task's head. It
    differs from LwF's KL divergence by the teacher's entropy, a constant of the student: the
    same gradients, a larger logged value (PyCIL's `_KD_loss`, and BiC's L_d).

    Args:
        alpha: the weight of the term.
        temperature: T > 0.
        name: the owning plugin's name (in checkpoint messages).

    Example:
    ```python
    distillation = SoftTargetDistillation(1.0, 2.0, name="icarl")
    distillation.build(run)                        # in the owner's build
    losses = distillation.extra_losses(step)       # {"distillation_loss": ...}
    ```
    """

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0,
                 name: str = "distillation") -> None:
        super().__init__(alpha, temperature)
        self.name = name

    def _distillation(self, teacher, student, mask) -> Any:
        from_logits = getattr(self.run.tasks[0], "from_logits", True)
        teacher = _as_logits(ops.cast(teacher, "float32"), from_logits) / self.temperature
        student = _as_logits(ops.cast(student, "float32"), from_logits) / self.temperature
        if mask is not None:  # classes outside the mask get q = 0: they add nothing
            teacher, student = mask_outputs(teacher, mask), mask_outputs(student, mask)
        q = ops.softmax(teacher, axis=-1)
        terms = -q * ops.log_softmax(student, axis=-1)
        count = ops.cast(ops.shape(terms)[0], "float32")
        return ops.divide_no_nan(ops.sum(terms), count)


def _as_logits(outputs: Any, from_logits: bool) -> Any:
    return outputs if from_logits else ops.log(ops.clip(outputs, 1e-7, 1.0))


class ICaRL(Plugin):
    """iCaRL: herding exemplars replayed in the training set, distillation, NME prediction.

    Args:
        memory: exemplars kept, every class together (`memory // classes seen` each).
        icarl_temperature: T > 0 of the distillation (PyCIL's 2).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=ICaRL(memory=500))
    results = manager.train_all()
    results.metrics["nme_acc"], results.matrices["nme_accuracy"]
    ```
    """

    name = "icarl"
    family = "replay"
    log_names = ("distillation_loss",)
    task_types = ("classification",)
    needs_boundaries = True
    boundary_use = ("it takes a teacher when a task starts, and chooses exemplars and class means "
                    "when it ends")

    def __init__(self, memory: int = MEMORY.default,
                 icarl_temperature: float = ICARL_TEMPERATURE.default) -> None:
        MEMORY.validate(memory)
        ICARL_TEMPERATURE.validate(icarl_temperature)
        self.memory = int(memory)
        self.temperature = float(icarl_temperature)

    def check(self, run: Run) -> None:
        super().check(run)
        if stream_scenario(run) == "domain":
            raise ValueError("icarl: needs a class- or task-incremental stream (--scenario class "
                             "or task): its class means need classes of their own, and this "
                             "stream is domain-incremental (one head, no classes masked)")
        run.require_arrays(self.name, "it keeps exemplars of each class")
        if not all(isinstance(t.validation_data, tuple | list) for t in run.tasks):
            raise ValueError("icarl needs array validation data (its NME accuracy reads it); a "
                             "task streams a dataset")
        if run.base_model is None:
            raise ValueError("icarl: needs the shared base (the exemplars and class means are "
                             "its features); this run has none")
        check_memory_fits(self.name, self.memory, run)
        classes = sum(len(keys) for keys in stream_classes(run.tasks))
        if self.memory < classes:
            raise ValueError(f"memory: {self.memory} is smaller than the {classes} classes of the "
                             "stream (icarl keeps memory // classes seen exemplars of each)")

    def build(self, run: Run) -> None:
        self.run = run
        self.scenario = stream_scenario(run)
        self.classes = stream_classes(run.tasks)
        every = [key for keys in self.classes for key in keys]
        self._row = {key: i for i, key in enumerate(every)}
        input_shape = np.asarray(run.tasks[0].train_data[0]).shape[1:]
        self.exemplars = ExemplarMemory(self.memory, input_shape, self.name, every)
        width = int(np.prod(run.base_model.output_shape[1:]))
        self.means = np.zeros((len(every), width))
        self.has_mean = np.zeros(len(every), bool)
        self.distillation = SoftTargetDistillation(1.0, self.temperature, name=self.name)
        self.distillation.build(run)

    def variables(self) -> list:
        """The teacher's copies and the distillation's switches (the exemplars live in NumPy:
        nothing in the step reads them)."""
        return self.distillation.variables()

    def routed_tasks(self, exp: Experience) -> int:
        return exp.index + 1

    def routed_data(self, exp: Experience) -> bool:
        return self.scenario == "task" and exp.index > 0

    def before_training_exp(self, exp: Experience) -> None:
        self.distillation.before_training_exp(exp)

    def adapt_dataset(self, dataset: Any, exp: Experience) -> Any:
        """The task's data and every exemplar, shuffled together (the task's own stream while
        the memory is empty)."""
        from sequential_learning.pipeline import array_dataset

        x_memory, y_memory, task_memory = self.exemplars.arrays()
        if not len(x_memory):
            return dataset
        task = exp.task
        x_own, y_own = (np.asarray(a) for a in task.train_data)
        x = np.concatenate([x_own.astype(np.float32), x_memory])
        y = np.concatenate([y_own, y_memory.astype(y_own.dtype)])
        ids = None
        if self.routed_data(exp):
            ids = np.concatenate([np.full(len(x_own), exp.index, np.int32), task_memory])
        return array_dataset(x, y, task.batch_size, task.shuffle_seed + exp.run.seed * 1000
                             + exp.index, task_ids=ids)

    def extra_losses(self, step: Step) -> dict[str, Any]:
        return self.distillation.extra_losses(step)

    def after_training_exp(self, exp: Experience) -> None:
        """Cuts the old classes to the new share, chooses the new classes' exemplars by
        herding, recomputes every class mean and records the NME accuracy of every task."""
        seen = [key for keys in self.classes[: exp.index + 1] for key in keys]
        per_class = self.memory // len(seen)
        self.exemplars.cut(per_class)
        x, y = (np.asarray(a) for a in exp.task.train_data)
        base = self.run.base_model
        for key in self.classes[exp.index]:
            rows = np.flatnonzero(y == key[1])
            order = herding(features(base, x[rows]), per_class)
            self.exemplars.put(key, x[rows[order]])
        self.update_means(seen)
        row = self.nme_accuracies()
        exp.matrices["nme_accuracy"] = row
        exp.summary["icarl"] = {"exemplars_per_class": per_class, "nme_accuracy": row,
                                "exemplars": self.exemplars.composition()}

    # -- nearest mean of exemplars -----------------------------------------------------------
    def update_means(self, classes: list[Key]) -> None:
        """Recomputes the means of `classes` from their exemplars with the current base.

        Args:
            classes: `(task, label)` keys held in the memory.

        Returns:
            None.
        """
        for key in classes:
            x, _, _ = self.exemplars.arrays(classes=[key])
            self.means[self._row[key]] = class_mean(features(self.run.base_model, x))
            self.has_mean[self._row[key]] = True

    def predict(self, x: np.ndarray, task: int | None = None) -> np.ndarray:
        """NME labels: the class of the nearest class mean, among every class with a mean
        (class-incremental) or among task `task`'s own (task-incremental).

        Args:
            x: inputs.
            task: the task whose classes compete (needed in a task-incremental stream).

        Returns:
            Labels, int64 `[n]` (-1 for every sample when no class competes).
        """
        return self._predict(features(self.run.base_model, x), task)

    def _predict(self, vectors: np.ndarray, task: int | None) -> np.ndarray:
        if self.scenario == "task" and task is None:
            raise ValueError("icarl: in a task-incremental stream NME predicts within one "
                             "task's classes; give task=")
        keys = [k for k, i in self._row.items() if self.has_mean[i]
                and (task is None or self.scenario != "task" or k[0] == task)]
        if not keys:
            return np.full(len(vectors), -1, np.int64)
        rows = nme_predict(vectors, self.means[[self._row[k] for k in keys]])
        return np.asarray([k[1] for k in keys], np.int64)[rows]

    def nme_accuracies(self) -> list[float]:
        """The NME accuracy of every task on its whole validation set (0 where none of its
        classes has exemplars yet).

        Returns:
            One float per task.
        """
        row = []
        for k, task in enumerate(self.run.tasks):
            x, y = (np.asarray(a) for a in task.validation_data)
            predicted = self._predict(features(self.run.base_model, x), k)
            row.append(float(np.mean(predicted == y.reshape(-1))) if len(y) else 0.0)
        return row

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        out = {f"exemplars_{k}": v for k, v in self.exemplars.state().items()}
        out["means"] = self.means.copy()
        out["has_mean"] = self.has_mean.astype(np.int32)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: a key is missing or has another shape or dtype, or an exemplar
                names a class the stream does not have; nothing is changed then.
        """
        means = state_array(self.name, state, "means", self.means.shape)
        has_mean = state_array(self.name, state, "has_mean", self.has_mean.shape, "int", low=0,
                               high=1, what="0 or 1")
        self.exemplars.load_state({k[len("exemplars_"):]: v for k, v in state.items()
                                   if k.startswith("exemplars_")})
        self.means = np.array(means, np.float64)
        self.has_mean = np.asarray(has_mean).astype(bool)

    def describe(self) -> dict:
        return {"memory": self.memory, "icarl_temperature": self.temperature}
