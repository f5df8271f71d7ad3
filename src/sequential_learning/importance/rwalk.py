"""RWalk (Chaudhry, Dokania, Ajanthan & Torr 2018, "Riemannian walk for incremental learning").

Two importances, both tracked inside the compiled train step (`track_step`, after every update):

* EWC++: the diagonal of the empirical Fisher as a moving average over the whole stream (never
  reset between tasks), F ← α g_t² + (1 − α) F, with g_t the step's gradient of the loss without
  the penalty (`Step.tracked_gradients`, as synaptic intelligence) and α = 0.9 as the paper;
* the path-integral score of the task, accumulated step by step with the Fisher as the metric
  of the parameter distance:

      s_task = Σ_t −g_t · Δθ_t / (½ F_t Δθ_t² + ε),    Δθ_t = θ_t − θ_{t−1},

  where F_t already holds g_t² (ε: float32's machine epsilon, as Avalanche).

At the task's end the score is clipped at 0 (as the paper's code, Avalanche and Mammoth's
synaptic intelligence: a weight whose moves raised the loss is deemed unimportant) and averaged
with the earlier tasks' scores (s ← ½ (s + s_task); the first task's is taken as it is). Ω is

    Ω = F / max F + s / max s,

each term normalised to [0, 1] by its maximum over every covered variable, as the paper
requires and as its code and Avalanche do (the two have unrelated scales). Ω already covers every
task so far, so the penalty keeps only the latest Ω, anchored at the weights after the latest
task: the penalty's `latest` mode, RWalk's default (`default_penalty_mode`). Its λ/2 Σ Ω (θ − θ*)²
is the paper's λ Σ (F + s)(θ − θ*)² with λ here twice the paper's.

Where we differ: the paper's code and Avalanche update the score over blocks of steps (Avalanche:
Δθ over 10 steps, the authors: the Fisher averaged over 50); here every step is its own interval,
as the paper's formula with t and t + 1, and the Fisher of a step is the squared gradient of the
mini-batch's mean loss (as Avalanche; the per-sample empirical Fisher would cost a gradient per
sample in the step). The authors also use min-max normalisation; F and s are ≥ 0 with minima at
or near 0, so that is the max normalisation here up to that minimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

from sequential_learning.importance.base import TaskContext
from sequential_learning.importance.trackers import StepTracker
from sequential_learning.saved_state import state_array

#: ε of the score's denominator: float32's machine epsilon (Avalanche's).
EPSILON = float(np.finfo(np.float32).eps)


class RWalkImportance(StepTracker):
    """Ω = F / max F + s / max s: EWC++'s running Fisher plus the averaged path-integral score.

    Args:
        alpha: the moving average's weight of the newest squared gradient, in (0, 1] (the
            paper's α = 0.9).
        epsilon: ε > 0 in the score's denominator ½ F Δθ² + ε.

    Example:
    ```python
    estimator = RWalkImportance()
    manager = SequentialLearningManager(base, tasks, method="rwalk", ewc_lambda=10.0)
    ```
    """

    name = "rwalk"
    slots = ("fisher", "score", "average")
    nonnegative_slots = ("fisher", "average")

    def __init__(self, alpha: float = 0.9, epsilon: float = EPSILON) -> None:
        for label, value, high in (("alpha", alpha, 1.0), ("epsilon", epsilon, None)):
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value <= 0
                    or (high is not None and value > high)):
                expected = "a number in (0, 1]" if high is not None else "a finite number > 0"
                raise ValueError(f"rwalk {label} must be {expected}, got {value!r}")
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)
        self.tasks = 0  # tasks whose scores are in the average

    def begin_task(self, variables: Sequence) -> None:
        """Resets the task's score (the running Fisher and the average are kept)."""
        for score in self._slot("score"):
            score.assign(ops.zeros(score.shape))

    def track_step(self, gradients: Sequence[Any], old_values: Sequence[Any]) -> None:
        if gradients is None or len(gradients) != len(self.variables):
            raise ValueError("rwalk needs the loss's gradient per variable")
        super().track_step(gradients, old_values)

    def _update(self, index, new, old, gradient):
        g = ops.cast(gradient, "float32")
        fisher = self._slot("fisher")[index]
        updated = self.alpha * ops.square(g) + (1.0 - self.alpha) * ops.convert_to_tensor(fisher)
        fisher.assign(updated)
        delta = new - old
        self._slot("score")[index].assign_add(
            -g * delta / (0.5 * updated * ops.square(delta) + self.epsilon))

    def fisher(self) -> list[np.ndarray]:
        """The running Fisher F, one array per covered variable."""
        return self.counts("fisher")

    def task_score(self) -> list[np.ndarray]:
        """This task's score so far (unclipped), one array per covered variable."""
        return self.counts("score")

    def end_task(self, context: TaskContext) -> list:
        scores = [ops.maximum(ops.convert_to_tensor(s), 0.0) for s in self._slot("score")]
        average = self._slot("average")
        for a, s in zip(average, scores):
            a.assign(s if self.tasks == 0 else 0.5 * (ops.convert_to_tensor(a) + s))
        self.tasks += 1
        fisher = [ops.convert_to_tensor(f) for f in self._slot("fisher")]
        averaged = [ops.convert_to_tensor(a) for a in average]
        return [f + s for f, s in zip(_normalised(fisher), _normalised(averaged))]

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "tasks": np.asarray(self.tasks, np.int64)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores the slots and the number of tasks averaged (see `StepTracker.load_state`)."""
        tasks = int(state_array(self.name, state, "tasks", (), "int", low=0))
        super().load_state(state)
        self.tasks = tasks

    def describe(self) -> dict:
        return {"method": self.name, "rwalk_alpha": self.alpha, "rwalk_epsilon": self.epsilon,
                "rwalk_fisher": "squared mini-batch gradient, moving average (EWC++)",
                "rwalk_normalised": "F / max F + s / max s"}


def _normalised(tensors: list) -> list:
    """The tensors divided by their largest value over all of them (unchanged if that is 0)."""
    peak = ops.max(ops.stack([ops.max(t) for t in tensors]))
    scale = ops.where(peak > 0, peak, 1.0)
    return [t / scale for t in tensors]
