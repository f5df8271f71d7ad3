"""Each sample through its own task's model: what replay, distillation and joint training need
when every task has its own head.

In a task-incremental stream task k's model is the shared base plus head k, so a batch that
mixes samples of several tasks (a replay buffer's, or the union of every task's data) needs each
sample's outputs from its own task's head. Shapes stay fixed (JAX compiles the step once, and no
backend partitions a batch by value inside it): the shared base runs once on the whole batch,
every routed head (small) runs on its features, and each sample takes its own head's outputs and
its own task's loss with `ops.where`. Task models that are not `head(base(inputs))` are each run
on the whole batch and selected the same way. With one model for every task (domain- and
class-incremental streams) the ids are not needed and the batch goes through that model whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from sequential_learning.plugins.base import mean_over_batch, per_sample_loss, replica_share


def split_heads(models: Sequence[keras.Model]) -> tuple[keras.Model, list] | None:
    """`(base, heads)` when every model is `head_k(base(inputs))` with one shared base, else None.

    Args:
        models: task models.

    Returns:
        The shared base and each model's head (in the models' order), or None when a model is
        built otherwise (then each model has to be run whole).

    Example:
    ```python
    found = split_heads([t.model for t in tasks])
    if found is not None:
        base, heads = found
        outputs = [head(base(x)) for head in heads]
    ```
    """
    base, heads = None, []
    for model in models:
        layers = [layer for layer in getattr(model, "layers", [])
                  if not isinstance(layer, keras.layers.InputLayer)]
        if len(layers) != 2 or not isinstance(layers[0], keras.Model):
            return None
        if isinstance(layers[1], keras.Model) or (base is not None and layers[0] is not base):
            return None
        base = layers[0]
        heads.append(layers[1])
    return (base, heads) if base is not None else None


def select(task_ids: Any, values: Sequence[Any]) -> Any:
    """Each sample's row of `values[task_ids[i]]` (fixed shapes: `ops.where`, no partition).

    Args:
        task_ids: int, one per sample, `[N]`.
        values: one tensor per task, each `[N, ...]`.

    Returns:
        A tensor shaped like `values[0]`.

    Example:
    ```python
    select(ops.array([1, 0]), [ops.zeros((2, 3)), ops.ones((2, 3))])   # rows: ones, zeros
    ```
    """
    ids = ops.cast(task_ids, "int32")
    out = values[0]
    for k, value in enumerate(values[1:], start=1):
        chosen = ops.reshape(ops.equal(ids, k), (-1,) + (1,) * (len(value.shape) - 1))
        out = ops.where(chosen, value, out)
    return out


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
        self.heads = split_heads(self.models) if len(self.tasks) > 1 else None

    @property
    def models(self) -> list:
        return [t.model for t in self.tasks]

    def outputs(self, x, task_ids=None, training: bool = True) -> Any:
        """Each sample's outputs from its own task's model, in batch order."""
        if len(self.tasks) == 1:
            return self.tasks[0].model(x, training=training)
        self._check(task_ids)
        if self.heads is not None:
            base, heads = self.heads
            features = base(x, training=training)
            outputs = [head(features, training=training) for head in heads]
        else:
            outputs = [t.model(x, training=training) for t in self.tasks]
        return select(task_ids, outputs)

    def loss(self, x, y, task_ids=None, sample_weight=None, training: bool = True,
             outputs=None) -> Any:
        """The mean per-sample loss, each sample by its own task's loss; a replica's share.

        Like Keras's losses under a distribution strategy, the mean is divided by the number of
        replicas in sync, so that summing the replicas' gradients gives the global mean's.
        """
        if outputs is None:
            outputs = self.outputs(x, task_ids, training)
        if len(self.tasks) == 1:
            values = per_sample_loss(self.tasks[0].loss, y, outputs)
        else:
            self._check(task_ids)
            losses = [t.loss for t in self.tasks]
            if all(_same_loss(loss, losses[0]) for loss in losses[1:]):
                values = per_sample_loss(losses[0], y, outputs)
            else:
                values = select(task_ids, [ops.cast(per_sample_loss(loss, y, outputs), "float32")
                                           for loss in losses])
        return replica_share(mean_over_batch(values, sample_weight))

    def _check(self, task_ids) -> None:
        if task_ids is None:
            raise ValueError("samples of several tasks' heads need their task ids")


def _same_loss(a, b) -> bool:
    """Whether two tasks' losses are the same function (the same object, or one loss name or
    Keras loss class with the same configuration)."""
    if a is b or (isinstance(a, str) and a == b):
        return True
    if isinstance(a, keras.losses.Loss) and type(a) is type(b):
        try:
            return a.get_config() == b.get_config()
        except NotImplementedError:
            return False
    return False
