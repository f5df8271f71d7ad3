"""Each sample through its own task's model: what replay, distillation and joint training need
when every task has its own head.

In a task-incremental stream task k's model is the shared base plus head k, so a batch that
mixes samples of several tasks (a replay buffer's, or the union of every task's data) is
partitioned by task id, each part goes through its own task's model, and the outputs and
per-sample losses are put back in batch order. The parts are disjoint, so the base computes each
sample once. With one model for every task (domain- and class-incremental streams) the ids are
not needed and the batch goes through that model whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from sequential_learning.plugins.base import mean_over_batch, per_sample_loss, replica_share


class Router:
    """Sends each sample of a batch through its own task's model and loss.

    Args:
        tasks: the `SequentialTask`s that samples may belong to (task id k is `tasks[k]`); one
            task when every task trains the same model.

    Example:
    ```python
    router = Router(tasks[:3])
    outputs = router.outputs(x, task_ids)        # inside the compiled step
    loss = router.loss(x, y, task_ids)           # mean per-sample loss, a replica's share
    ```
    """

    def __init__(self, tasks: Sequence) -> None:
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("Router needs at least one task")
        shapes = {tuple(t.model.output_shape[1:]) for t in self.tasks}
        if len(shapes) > 1:
            raise ValueError(
                "samples of several tasks are routed to heads with different output shapes "
                f"({sorted(shapes)}); give every task's head the same number of outputs"
            )

    @property
    def models(self) -> list:
        return [t.model for t in self.tasks]

    def outputs(self, x, task_ids=None, training: bool = True) -> tf.Tensor:
        """Each sample's outputs from its own task's model, in batch order."""
        if len(self.tasks) == 1:
            return self.tasks[0].model(x, training=training)
        ids, positions = self._partition(task_ids, x)
        parts = _split(x, ids, len(self.tasks))
        outputs = [t.model(p, training=training) for t, p in zip(self.tasks, parts)]
        return tf.dynamic_stitch(positions, outputs)

    def loss(self, x, y, task_ids=None, sample_weight=None, training: bool = True,
             outputs=None) -> tf.Tensor:
        """The mean per-sample loss, each sample by its own task's loss; a replica's share.

        Like Keras's losses under a distribution strategy, the mean is divided by the number of
        replicas in sync, so that summing the replicas' gradients gives the global mean's.
        """
        if outputs is None:
            outputs = self.outputs(x, task_ids, training)
        if len(self.tasks) == 1:
            values = per_sample_loss(self.tasks[0].loss, y, outputs)
        else:
            ids, positions = self._partition(task_ids, x)
            n = len(self.tasks)
            parts = [per_sample_loss(t.loss, yk, ok) for t, yk, ok in
                     zip(self.tasks, tf.dynamic_partition(y, ids, n),
                         tf.dynamic_partition(outputs, ids, n))]
            values = tf.dynamic_stitch(positions, [tf.cast(p, tf.float32) for p in parts])
        return replica_share(mean_over_batch(values, sample_weight))

    def _partition(self, task_ids, x):
        if task_ids is None:
            raise ValueError("samples of several tasks' heads need their task ids")
        ids = tf.cast(task_ids, tf.int32)
        size = tf.shape(tf.nest.flatten(x)[0])[0]
        return ids, tf.dynamic_partition(tf.range(size), ids, len(self.tasks))


def _split(x, ids, n: int) -> list:
    """`x` (a tensor or a nest of them) partitioned by `ids` into `n` parts."""
    flat = [tf.dynamic_partition(t, ids, n) for t in tf.nest.flatten(x)]
    return [tf.nest.pack_sequence_as(x, [f[k] for f in flat]) for k in range(n)]
