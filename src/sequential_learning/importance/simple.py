"""Estimators that need no data: none and weight decay (more controls join in later issues)."""

from __future__ import annotations

import tensorflow as tf

from sequential_learning.importance.base import ImportanceEstimator, TaskContext


class NoImportance(ImportanceEstimator):
    """No consolidation: plain fine-tuning. The manager applies no penalty at all."""

    name = "none"

    def end_task(self, context: TaskContext) -> list[tf.Tensor]:
        return [tf.zeros(v.shape) for v in context.variables]


class WeightDecayImportance(ImportanceEstimator):
    """Ω = 1 for every weight: an L2 pull towards the previous task's weights."""

    name = "weight-decay"

    def end_task(self, context: TaskContext) -> list[tf.Tensor]:
        return [tf.ones(v.shape) for v in context.variables]
