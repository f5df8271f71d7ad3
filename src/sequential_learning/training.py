"""The compiled train step: task loss + consolidation penalty, gradients, optimizer, trackers.

`ConsolidationTrainer` wraps one task's model and overrides Keras's `train_step`, so `fit` (and any
`tf.distribute` strategy under it) drives it. Inside the one compiled step:

1. the task loss and its gradients (one backward pass);
2. the penalty's *analytic* gradient λ Ω (θ − θ̄) is added to the covered variables' gradients
   (no second backward pass, and the task loss's own gradients stay available for trackers);
3. the optimizer update;
4. the estimator's per-step tracking (synaptic intelligence, sign flips, ...) on `tf.Variable`s.

No Python callback runs per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from sequential_learning.importance.base import ImportanceEstimator
from sequential_learning.importance.penalty import ConsolidationPenalty


class ConsolidationTrainer(keras.Model):
    """Trains `model` on its task loss plus a consolidation penalty.

    Args:
        model: the task model (shared base + this task's head).
        penalty: the consolidation penalty (zero while nothing is consolidated), or None for
            plain training.
        estimator: an importance estimator whose `track_step` runs every step, or None.
        covered: the variables the penalty and trackers cover (a subset of the model's).

    Reports the metrics `loss` (task loss + penalty), `base_loss` (task loss alone), `penalty`
    and the compiled metrics.

    Example:
    ```python
    trainer = ConsolidationTrainer(task_model, penalty, estimator, base.trainable_variables)
    trainer.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    trainer.fit(x, y, epochs=2)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        penalty: ConsolidationPenalty | None = None,
        estimator: ImportanceEstimator | None = None,
        covered: Sequence | None = None,
        **kwargs,
    ) -> None:
        super().__init__(name=f"{model.name}_trainer", **kwargs)
        self.task_model = model
        # Kept even before the first consolidation (when it is zero; see train_step), so the
        # same compiled step serves every task.
        self.penalty = penalty
        self.estimator = estimator if estimator is not None and estimator.tracks_steps else None
        self.covered = list(covered or [])
        # Step (within the epoch, from 0) of the first non-finite loss, -1 while all are finite;
        # checked once per epoch, so the hot path has no host sync.
        self.nonfinite_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.epoch_step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._multi_worker = isinstance(
            tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy
        )
        self.sample_batch = None  # a non-distributed (x, y) batch; see _maybe_symbolic_build
        self.base_loss_tracker = keras.metrics.Mean(name="base_loss")
        self.penalty_tracker = keras.metrics.Mean(name="penalty")
        trainable = model.trainable_variables
        position = {id(v): i for i, v in enumerate(trainable)}
        missing = [getattr(v, "path", "?") for v in self.covered if id(v) not in position]
        if missing:
            raise ValueError(
                f"Covered variables {missing} are not trainable variables of model {model.name!r}"
            )
        # (index in trainable variables, index in covered variables), fixed at trace time.
        self._covered_positions = [(position[id(v)], j) for j, v in enumerate(self.covered)]

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds a model made under a strategy from the first *distributed* batch,
        # reduced across replicas, which fails under MultiWorkerMirroredStrategy; a plain batch
        # of the task's data (`sample_batch`) builds the same thing.
        if data_batch is None and self.sample_batch is not None:
            return super()._maybe_symbolic_build(data_batch=self.sample_batch)
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def reset_epoch_step(self) -> None:
        """Restarts the within-epoch step counter (called by the manager's callback)."""
        self.epoch_step.assign(0)

    def call(self, inputs, training=None):
        return self.task_model(inputs, training=training)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        trainable = self.task_model.trainable_variables
        with tf.GradientTape() as tape:
            y_pred = self.task_model(x, training=True)
            # Already divided by the number of replicas under a distribution strategy.
            loss = self._compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, trainable)
        gradients = [
            tf.zeros_like(v) if g is None else g for g, v in zip(gradients, trainable)
        ]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        task_loss = loss * replicas
        loss_scale = self.optimizer.scale_loss(tf.constant(1.0))
        tracked_gradients = None
        if self.estimator is not None:
            # The task loss's own gradients (unscaled, summed over replicas' shares).
            tracked_gradients = [
                gradients[i] * (replicas / loss_scale) for i, _ in self._covered_positions
            ]
        penalty_value = tf.constant(0.0)
        if self.penalty is not None:
            # The penalty's gradient is added unscaled by the loss: scale it like the task's.
            share = 1.0
            if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer) or replicas != 1:
                share = loss_scale / replicas
            covered_gradients = [gradients[i] for i, _ in self._covered_positions]
            # No branch on whether anything is consolidated yet: before the first task's Ω
            # is folded in, √(λΩ) is 0, so the value is 0 and the gradients are unchanged,
            # and one compiled step serves every task. A `tf.cond` here cost more (measured)
            # than the fused pass it would skip in the first task.
            penalty_value, summed = self.penalty.add_to_gradients(covered_gradients, share)
            for (i, _), g in zip(self._covered_positions, summed):
                gradients[i] = g
        old_values = None
        if self.estimator is not None:
            old_values = [tf.identity(tf.convert_to_tensor(v)) for v in self.covered]
        total = task_loss + penalty_value
        first_bad = tf.logical_and(
            tf.logical_not(tf.math.is_finite(total)), self.nonfinite_step < 0
        )
        self.nonfinite_step.assign(tf.where(first_bad, self.epoch_step, self.nonfinite_step))
        self.epoch_step.assign_add(1)
        self.optimizer.apply_gradients(zip(gradients, trainable))
        if self.estimator is not None:
            self.estimator.track_step(tracked_gradients, old_values)
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        self.base_loss_tracker.update_state(task_loss, sample_weight=batch)
        self.penalty_tracker.update_state(penalty_value, sample_weight=batch)
        self._loss_tracker.update_state(total, sample_weight=batch)
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if self._multi_worker:
            # Keras reduces each log across workers with a MEAN over axis 0, which a scalar
            # lacks: give each log that axis (the reduction then returns the scalar).
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs
