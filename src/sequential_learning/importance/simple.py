"""Estimators that need no data: none, weight decay and the reference design's controls.

The controls (weight magnitude, inverse weight magnitude, random) say nothing about what a task
needs; they are there to show how much of a method's benefit any pull towards the old weights
gives.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from sequential_learning.importance.base import ImportanceEstimator, TaskContext


def _float(variable):
    """A variable's current value as a float32 tensor, outside autodiff."""
    return ops.stop_gradient(ops.cast(ops.convert_to_tensor(variable), "float32"))


class NoImportance(ImportanceEstimator):
    """No consolidation: plain fine-tuning. The manager applies no penalty at all."""

    name = "none"

    def end_task(self, context: TaskContext) -> list:
        return [ops.zeros(v.shape) for v in context.variables]


class WeightDecayImportance(ImportanceEstimator):
    """Ω = 1 for every weight: an L2 pull towards the previous task's weights."""

    name = "weight-decay"

    def end_task(self, context: TaskContext) -> list:
        return [ops.ones(v.shape) for v in context.variables]


class WeightMagnitudeImportance(ImportanceEstimator):
    """Ω = |θ| at the end of the task: large weights are deemed important (a control)."""

    name = "magnitude"

    def end_task(self, context: TaskContext) -> list:
        return [ops.abs(_float(v)) for v in context.variables]


class InverseWeightMagnitudeImportance(ImportanceEstimator):
    """Ω = 1 / (|θ| + ε) at the end of the task: small weights are deemed important (a control).

    Args:
        epsilon: ε > 0; bounds Ω by 1/ε for weights at zero (such as fresh biases).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method="inverse-magnitude",
                                        method_options={"epsilon": 0.01})
    ```
    """

    name = "inverse-magnitude"

    def __init__(self, epsilon: float = 1e-2) -> None:
        try:
            epsilon = float(epsilon)
        except (TypeError, ValueError):
            raise ValueError(f"epsilon must be a number > 0, got {epsilon!r}") from None
        if not math.isfinite(epsilon) or epsilon <= 0:
            raise ValueError(f"epsilon must be a finite number > 0, got {epsilon}")
        self.epsilon = epsilon

    def end_task(self, context: TaskContext) -> list:
        return [
            1.0 / (ops.abs(_float(v)) + self.epsilon)
            for v in context.variables
        ]

    def describe(self) -> dict:
        return {"method": self.name, "epsilon": self.epsilon}


class RandomImportance(ImportanceEstimator):
    """Ω ~ U(0, 1) per weight, drawn afresh for every task (a control).

    Args:
        seed: seed of the draws; None uses the run's seed. Task k draws with `(seed, k)`, so the
            same seed gives the same Ω.

    Example:
    ```python
    omega = RandomImportance(seed=0).end_task(context)   # U(0, 1) per weight
    ```
    """

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or int(seed) != seed):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)

    def end_task(self, context: TaskContext) -> list:
        seed = context.seed if self.seed is None else self.seed
        rng = np.random.default_rng([abs(int(seed)), int(context.task_index)])
        return [
            ops.convert_to_tensor(rng.uniform(0.0, 1.0, size=tuple(v.shape)).astype(np.float32))
            for v in context.variables
        ]

    def describe(self) -> dict:
        return {"method": self.name, "random_seed": self.seed}
