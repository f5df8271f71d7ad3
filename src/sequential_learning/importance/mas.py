"""Memory aware synapses (Aljundi et al. 2018): sensitivity of the output's squared norm.

    Ω = (1/N) Σ_n |∂ ‖f(x_n)‖²₂ / ∂θ|

per sample, with the model in inference mode (`training=False`) and no labels: f is the model's
output (logits for our heads). The per-sample gradient of a Dense layer is an outer product a δᵀ,
so Σ_n |a_n δ_nᵀ| = |A|ᵀ |Δ| gives the sum over a chunk in one matrix product; Conv2D layers use
their patches; any other layer falls back to exact vectorised per-sample gradients
(`PerSampleReducer` with `reduce="abs"`, the engine the Fisher uses with `"square"`).

As in the paper, Ω accumulates over tasks and the penalty anchors it at the weights after the
latest task: the penalty's `online` mode with γ = 1, MAS's default (`default_penalty_mode`).

Absolute values of *mini-batch* gradients (as some libraries compute MAS) are not the same thing:
|Σ_n g_n| ≤ Σ_n |g_n|, so they underestimate Ω where samples disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning.importance.base import ImportanceEstimator, TaskContext
from sequential_learning.importance.per_sample import PerSampleReducer, ReducerCache


def mas_objective(outputs: Any, labels: Any) -> tuple[Any, Any]:
    """‖f(x)‖²₂ per sample as one objective [N, 1] with weight 1 (labels are not used).

    Args:
        outputs: the model's outputs, `[N, K]`.
        labels: not used (MAS needs no labels).

    Returns:
        `(objectives, weights)`, both `[N, 1]`: the squared L2 norm of each sample's outputs, and
        ones.

    Example:
    ```python
    objectives, weights = mas_objective(ops.convert_to_tensor([[3.0, 4.0]]), None)
    # [[25.]], [[1.]]
    ```
    """
    total = None
    for p in keras.tree.flatten(outputs):
        p = ops.cast(p, "float32")
        flat = ops.reshape(ops.square(p), (-1, int(np.prod(p.shape[1:]))))
        part = ops.sum(flat, axis=-1)
        total = part if total is None else total + part
    objective = total[:, None]
    return objective, ops.ones_like(objective)


def mas_importance(
    model: keras.Model,
    variables: Sequence,
    x,
    chunk_size: int = 256,
    cache: ReducerCache | None = None,
) -> list[np.ndarray]:
    """Ω of MAS at the model's current weights, for `variables`.

    Args:
        model: the task model.
        variables: the variables to measure (e.g. the shared base's).
        x: inputs (the model's input shape, batch first); no labels needed.
        chunk_size: inputs per compiled call (bounds memory).
        cache: a `ReducerCache` to reuse the compiled computation between calls, or None.

    Returns:
        A list of float32 arrays shaped like `variables`: the mean over inputs.

    Example:
    ```python
    omega = mas_importance(model, base.trainable_variables, x[:1000])
    ```
    """
    x = np.asarray(x, np.float32)
    if len(x) == 0:
        raise ValueError("MAS needs at least one input; got an empty array")
    if cache is None:
        reducer = PerSampleReducer(model, variables, mas_objective, "abs", chunk_size)
    else:
        reducer = cache.get(model, variables, mas_objective, "abs", chunk_size, key="mas")
    return [s / len(x) for s in reducer(x)]


class MASImportance(ImportanceEstimator):
    """Ω = mean over inputs of |∂ ‖f(x)‖² / ∂θ| (memory aware synapses).

    Args:
        samples: how many training inputs of the task to average over (the manager's sample
            budget, `fisher_samples`).
        chunk_size: inputs per compiled call.

    Example:
    ```python
    estimator = MASImportance(samples=1000)
    ```
    """

    name = "mas"
    needs_samples = True

    def __init__(self, samples: int = 1000, chunk_size: int = 256) -> None:
        if int(samples) < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        self.samples = int(samples)
        self.chunk_size = int(chunk_size)
        self._reducers = ReducerCache()  # one trace per model for the whole run

    def end_task(self, context: TaskContext) -> list:
        values = mas_importance(
            context.model, context.variables, context.x[: self.samples], self.chunk_size,
            cache=self._reducers,
        )
        return [ops.convert_to_tensor(v) for v in values]

    def describe(self) -> dict:
        return {"method": self.name, "mas_samples": self.samples, "mas_per_sample": True}
