"""The importance-estimator protocol: begin_task / track_step / end_task -> Ω.

An estimator measures how important each covered variable is to the task just learned. Ω is
data: `end_task` returns a list of tensors shaped like the covered variables, all ≥ 0 and
finite; the penalty, the plots and `augment` only ever see that list.

Estimators that need per-step information (synaptic intelligence, sign flips, ...) set
`tracks_steps = True`; the compiled train step then calls `track_step` after every optimizer
update with the task loss's gradients (without the penalty) and the values before the update.
Their accumulators are `keras.Variable`s created in `build` (under the strategy's scope on
TensorFlow) and listed by `own_variables`, so that on JAX they go in and out of the stateless
train step. Estimators are written in `keras.ops` and run on every Keras backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np


@dataclass
class TaskContext:
    """What an estimator may read at the end of a task.

    Attributes:
        task: the `SequentialTask` just trained.
        model: that task's model (shared base + head).
        variables: the covered variables, in the order Ω must follow.
        x: a sample of the task's training inputs (at most the estimator's sample budget).
        y: the matching labels.
        seed: the run's seed, for estimators that draw random numbers.
        task_index: 0-based position of the task in the stream.

    Example:
    ```python
    context = TaskContext(task, task.model, base.trainable_variables, x[:1000], y[:1000], seed=0)
    omega = estimator.end_task(context)
    ```
    """

    task: Any
    model: keras.Model
    variables: Sequence
    x: np.ndarray
    y: np.ndarray
    seed: int = 0
    task_index: int = 0
    extra: dict = field(default_factory=dict)


class ImportanceEstimator:
    """Base class of weight-importance estimators.

    Subclasses override `end_task` (and, for per-step trackers, `build`, `begin_task` and
    `track_step`). `describe()` returns the settings recorded in every result.
    """

    name: str = "base"
    tracks_steps: bool = False
    needs_samples: bool = False

    def build(self, variables: Sequence) -> None:
        """Creates accumulators for `variables` (called once, under the strategy's scope)."""
        self.variables = list(variables)

    def begin_task(self, variables: Sequence) -> None:
        """Called before a task's training starts (e.g. to record θ_start or reset counters)."""

    def own_variables(self) -> list:
        """The `keras.Variable`s `track_step` reads or assigns (none unless it tracks steps)."""
        return []

    def track_step(self, gradients: Sequence[Any], old_values: Sequence[Any]) -> None:
        """Called inside the compiled train step after each optimizer update.

        Args:
            gradients: per covered variable, the gradients of the loss the step minimises
                without the consolidation penalty: the task loss plus the losses other plugins
                add (replay, distillation), taken before any plugin transforms them.
            old_values: the covered variables' values before the update.
        """

    def end_task(self, context: TaskContext) -> list:
        """Returns Ω for the task just learned, one tensor per covered variable."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Settings of this estimator, recorded in results."""
        return {"method": self.name}

    def state(self) -> dict[str, np.ndarray]:
        """Tracker state as NumPy arrays (for checkpoints)."""
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned."""
