"""Learning without Forgetting (Li & Hoiem 2017): distil the previous model into the new one.

Before each task after the first, the weights of every task model are copied into a frozen
teacher (`keras.Variable`s; the teacher is the same models run with those values through Keras's
`stateless_call`, so no model is cloned). Every step then adds

    α · Σ_old KL( softmax(z_teacher / T) ‖ softmax(z_student / T) )   (batch mean)

on the training task's own inputs, as Avalanche's LwF: with a head per task, over each earlier
task's head (both computed on the shared base; the old heads keep training on this loss); with
one head for every task, over the classes seen before this task (class-incremental) or all of
them (domain-incremental).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning.class_incremental import mask_outputs
from sequential_learning.plugins.base import Experience, Plugin, Run, Step, replica_share
from sequential_learning.plugins.registry import LWF_ALPHA, LWF_TEMPERATURE
from sequential_learning.plugins.routing import split_heads
from sequential_learning.saved_state import kind_of, state_array


class LearningWithoutForgetting(Plugin):
    """Distillation from the previous model's outputs on the new task's data.

    Args:
        lwf_alpha: α, the weight of the distillation term.
        lwf_temperature: T > 0, the softmax temperature of teacher and student.

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=LearningWithoutForgetting(1.0, 2.0))
    ```
    """

    name = "lwf"
    family = "distillation"
    log_names = ("distillation_loss",)
    task_types = ("classification",)
    needs_boundaries = True
    boundary_use = "it takes the previous task's model as its teacher when a task starts"

    def __init__(self, lwf_alpha: float = LWF_ALPHA.default,
                 lwf_temperature: float = LWF_TEMPERATURE.default) -> None:
        LWF_ALPHA.validate(lwf_alpha)
        LWF_TEMPERATURE.validate(lwf_temperature)
        self.alpha = float(lwf_alpha)
        self.temperature = float(lwf_temperature)

    def build(self, run: Run) -> None:
        self.run = run
        variables = {}
        for task in run.tasks:
            for v in task.model.weights:
                variables.setdefault(id(v), v)
        self._sources = list(variables.values())
        self.teacher = {key: keras.Variable(np.zeros(v.shape, v.dtype), trainable=False,
                                            dtype=v.dtype, name=f"lwf_teacher_{i}")
                        for i, (key, v) in enumerate(variables.items())}
        self.on = keras.Variable(0.0, trainable=False, dtype="float32", name="lwf_on")
        width = int(run.tasks[0].model.output_shape[-1])
        self.old_classes = keras.Variable(np.ones([width], np.float32), trainable=False,
                                          name="lwf_old_classes")
        self._heads = _heads(run)

    def variables(self) -> list:
        """The teacher's copies, the on switch and the old classes' mask (not the models')."""
        return [*self.teacher.values(), self.on, self.old_classes]

    def routed_tasks(self, exp: Experience) -> int:
        return exp.index + 1

    def before_training_exp(self, exp: Experience) -> None:
        if exp.index == 0:
            self.on.assign(0.0)
            return
        for v in self._sources:
            # A copy on the host: on JAX the teacher must not share the weight's buffer, which
            # the compiled step donates.
            self.teacher[id(v)].assign(np.array(ops.convert_to_numpy(v)))
        self.on.assign(1.0)
        active = getattr(exp.task, "active_classes", None)
        if active is not None:  # the classes seen before this task
            self.old_classes.assign(active.mask_through(exp.index - 1))

    def extra_losses(self, step: Step) -> dict[str, Any]:
        x = step.x
        if self.run.shared_head:
            teacher = _stateless(step.model, self.teacher, x)
            loss = self._distillation(teacher, step.y_pred, self.old_classes)
        else:
            old = step.trainer.router.tasks[:-1]
            if not old:
                return {"distillation_loss": ops.zeros((), "float32")}
            loss = ops.zeros((), "float32")
            for t_out, s_out in zip(self._teacher_outputs(old, x), self._student_outputs(old, x)):
                loss = loss + self._distillation(t_out, s_out, None)
        return {"distillation_loss": replica_share(self.alpha * loss * self.on)}

    def _student_outputs(self, tasks, x) -> list:
        if self._heads is not None:
            base, heads = self._heads
            features = base(x, training=True)
            return [heads[t.model.name](features, training=True) for t in tasks]
        return [t.model(x, training=True) for t in tasks]

    def _teacher_outputs(self, tasks, x) -> list:
        if self._heads is not None:
            base, heads = self._heads
            features = _stateless(base, self.teacher, x)
            return [_stateless(heads[t.model.name], self.teacher, features) for t in tasks]
        return [_stateless(t.model, self.teacher, x) for t in tasks]

    def _distillation(self, teacher, student, mask) -> Any:
        """KL(softmax(teacher/T) ‖ softmax(student/T)) summed over classes, batch mean."""
        from_logits = getattr(self.run.tasks[0], "from_logits", True)
        teacher = _as_logits(ops.cast(teacher, "float32"), from_logits) / self.temperature
        student = _as_logits(ops.cast(student, "float32"), from_logits) / self.temperature
        if mask is not None:  # masked classes get q = 0: they add nothing
            teacher, student = mask_outputs(teacher, mask), mask_outputs(student, mask)
        q = ops.softmax(teacher, axis=-1)
        terms = q * (ops.log_softmax(teacher, axis=-1) - ops.log_softmax(student, axis=-1))
        count = ops.cast(ops.shape(terms)[0], "float32")
        return ops.divide_no_nan(ops.sum(terms), count)

    def state(self) -> dict[str, np.ndarray]:
        out = {f"teacher_{i}": np.array(ops.convert_to_numpy(v))
               for i, v in enumerate(self.teacher.values())}
        out["on"] = np.array(ops.convert_to_numpy(self.on))
        out["old_classes"] = np.array(ops.convert_to_numpy(self.old_classes))
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: a teacher weight is missing or has another shape or dtype than
                its variable, or `on` / `old_classes` are not 0 or 1; nothing is assigned then.
        """
        teacher = [(v, state_array(self.name, state, f"teacher_{i}", tuple(v.shape),
                                   kind_of(v.dtype)))
                   for i, v in enumerate(self.teacher.values())]
        on = state_array(self.name, state, "on", (), low=0, high=1, what="off or on")
        old = state_array(self.name, state, "old_classes", tuple(self.old_classes.shape),
                          low=0, high=1, what="a 0/1 mask of classes")
        for v, value in teacher:
            v.assign(value.astype(v.dtype))
        self.on.assign(float(on))
        self.old_classes.assign(old.astype(np.float32))

    def describe(self) -> dict:
        return {"lwf_alpha": self.alpha, "lwf_temperature": self.temperature}


def _as_logits(outputs: Any, from_logits: bool) -> Any:
    return outputs if from_logits else ops.log(ops.clip(outputs, 1e-7, 1.0))


def _stateless(layer, values: dict, x) -> Any:
    """`layer(x)` in inference mode, computed with the teacher's copies of its weights."""
    trainable = [ops.convert_to_tensor(values[id(v)]) for v in layer.trainable_variables]
    frozen = [ops.convert_to_tensor(values[id(v)]) for v in layer.non_trainable_variables]
    outputs, _ = layer.stateless_call(trainable, frozen, x, training=False)
    return outputs


def _heads(run: Run):
    """(base, {task model name: head layer}) when every task model is `head(base(inputs))`,
    so old heads share one pass of the base; else None (each model is run whole)."""
    base = run.base_model
    if base is None or run.shared_head:
        return None
    found = split_heads([task.model for task in run.tasks])
    if found is None or found[0] is not base:
        return None
    return base, {task.model.name: head for task, head in zip(run.tasks, found[1])}
