"""Diagonal Fisher information of a model's predictive distribution.

Four modes, which are *not* interchangeable (λ does not transfer between them); every result
records which one was used:

* `exact`: Σ_c p(c|x) (∂ log p(c|x) / ∂θ)², the expectation over the model's own predictive
  distribution (the true Fisher). The default.
* `sampled`: one label per input drawn from p(·|x) (seeded), then (∂ log p(ŷ|x) / ∂θ)².
* `empirical`: the true label, (∂ log p(y|x) / ∂θ)² (the "empirical Fisher").
* `batch`: squares of *mini-batch* gradients of the loss, as the reference design computed them:
  biased (about 1/B too small near a minimum); kept only for comparison.

The first three are means of per-sample squared gradients, computed in closed form per layer by
`PerSampleReducer`; the model runs with `training=False`. Everything is `keras.ops` (gradients
through `sequential_learning.backend`), so the Fisher is the same on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.importance.base import ImportanceEstimator, TaskContext
from sequential_learning.importance.modes import FISHER_MODES
from sequential_learning.importance.per_sample import (
    ObjectiveFn,
    PerSampleReducer,
    ReducerCache,
    _distinct,
)


def log_probabilities(outputs: Any, from_logits: bool) -> Any:
    """Log p(c|x) from a classifier's outputs (logits or probabilities), shape [N, C].

    Args:
        outputs: the model's outputs, `[N, C]`.
        from_logits: whether `outputs` are logits (else probabilities, clipped at 1e-12).

    Returns:
        The log-probabilities, float32, `[N, C]`.

    Example:
    ```python
    log_probabilities(ops.zeros((1, 2)), from_logits=True)   # [[-0.693, -0.693]]
    ```
    """
    outputs = ops.cast(outputs, "float32")
    if from_logits:
        return ops.log_softmax(outputs, axis=-1)
    return ops.log(ops.clip(outputs, 1e-12, 1.0))


def fisher_objective(mode: str, from_logits: bool = True) -> ObjectiveFn:
    """The objective and weights whose weighted squared gradients give the Fisher.

    Args:
        mode: `"exact"`, `"sampled"` or `"empirical"` (for `sampled`, pass the drawn labels).
        from_logits: whether the model outputs logits (else probabilities).

    Returns:
        A function `(outputs, labels) -> (objectives [N, K], weights [N, K])`.

    Example:
    ```python
    objective = fisher_objective("exact")
    objectives, weights = objective(model(x, training=False), None)   # [N, C] each
    ```
    """
    if mode == "exact":

        def exact(outputs, labels):
            logp = log_probabilities(outputs, from_logits)
            return logp, ops.exp(logp)

        return exact
    if mode in ("sampled", "empirical"):

        def labelled(outputs, labels):
            logp = log_probabilities(outputs, from_logits)
            chosen = ops.take_along_axis(logp, ops.cast(labels, "int32")[:, None], axis=-1)
            return chosen, ops.ones_like(chosen)

        return labelled
    raise ValueError(f"Unknown Fisher mode {mode!r}; expected one of {FISHER_MODES}")


def gaussian_objective(outputs: Any, labels: Any) -> tuple[Any, Any]:
    """Regression: the outputs themselves, weight 1 (the Fisher of N(f(x), I) is Σ_k (∂f_k/∂θ)²).

    Args:
        outputs: the model's outputs, `[N, K]`.
        labels: not used (the Fisher of a Gaussian does not depend on the targets).

    Returns:
        `(objectives, weights)`: the outputs as float32 `[N, K]` and ones of the same shape.

    Example:
    ```python
    objectives, weights = gaussian_objective(model(x, training=False), None)
    ```
    """
    outputs = ops.cast(outputs, "float32")
    outputs = ops.reshape(outputs, (-1, int(np.prod(outputs.shape[1:]))))
    return outputs, ops.ones_like(outputs)


def _is_regression(task) -> bool:
    """Whether a task is trained on a regression loss (not a categorical cross-entropy)."""
    check = getattr(task, "_is_classification", None)
    return check is not None and not check()


def sample_labels(model: keras.Model, x, seed: int, from_logits: bool = True, batch_size: int = 1024):
    """Draws one label per input from the model's predictive distribution (seeded).

    Args:
        model: the classifier.
        x: inputs.
        seed: the seed of the draw (the same seed gives the same labels on a backend).
        from_logits: whether the model outputs logits.
        batch_size: inputs per forward pass.

    Returns:
        An integer NumPy array of labels.

    Example:
    ```python
    labels = sample_labels(model, x[:1000], seed=0)
    ```
    """
    logp = []
    for start in range(0, len(x), batch_size):
        out = model(ops.convert_to_tensor(x[start : start + batch_size]), training=False)
        logp.append(log_probabilities(out, from_logits))
    logits = ops.concatenate(logp, axis=0)
    if backend.is_tensorflow():  # the draws TensorFlow runs always made
        import tensorflow as tf

        draw = tf.random.stateless_categorical(logits, 1, seed=[int(seed), 0], dtype=tf.int64)
    else:
        draw = keras.random.categorical(logits, 1, dtype="int32", seed=int(seed))
    return ops.convert_to_numpy(draw[:, 0])


def fisher_information(
    model: keras.Model,
    variables: Sequence,
    x,
    y=None,
    mode: str = "exact",
    from_logits: bool = True,
    seed: int = 0,
    chunk_size: int = 256,
    loss_fn=None,
    batch_size: int = 32,
    cache: ReducerCache | None = None,
) -> list[np.ndarray]:
    """Diagonal Fisher information of `model` at its current weights, for `variables`.

    Args:
        model: the task model (outputs logits, or probabilities with `from_logits=False`).
        variables: the variables to measure (e.g. the shared base's).
        x: inputs of the task (the model's input shape, batch first).
        y: integer labels (needed for `empirical` and `batch`).
        mode: one of `exact`, `sampled`, `empirical`, `batch` (see the module docstring).
        from_logits: whether the model outputs logits.
        seed: seed for the `sampled` mode's label draw.
        chunk_size: inputs per compiled call (bounds memory).
        loss_fn: loss for `batch` mode (default: sparse categorical cross-entropy).
        batch_size: mini-batch size for `batch` mode.
        cache: a `ReducerCache` to reuse the compiled computation between calls (one per
            estimator), or None.

    Returns:
        A list of float32 arrays shaped like `variables`: the mean over inputs.

    Example:
    ```python
    omega = fisher_information(model, base.trainable_variables, x[:1000], mode="exact")
    ```
    """
    if mode not in FISHER_MODES:
        raise ValueError(f"Unknown Fisher mode {mode!r}; expected one of {FISHER_MODES}")
    x = np.asarray(x, np.float32)
    n = len(x)
    if n == 0:
        raise ValueError("Fisher information needs at least one input; got an empty array")
    if mode in ("empirical", "batch") and y is None:
        raise ValueError(f"Fisher mode {mode!r} needs the true labels y")
    if mode == "batch":
        return _batch_fisher(model, variables, x, np.asarray(y), from_logits, loss_fn, batch_size)
    labels = None
    if mode == "sampled":
        labels = sample_labels(model, x, seed, from_logits)
    elif mode == "empirical":
        labels = np.asarray(y, np.int64).reshape(-1)
    objective = fisher_objective(mode, from_logits)
    if cache is None:
        reducer = PerSampleReducer(model, variables, objective, "square", chunk_size)
    else:
        reducer = cache.get(model, variables, objective, "square", chunk_size,
                            key=("fisher", mode, bool(from_logits)))
    return [s / n for s in reducer(x, labels)]


def _batch_fisher(model, variables, x, y, from_logits, loss_fn, batch_size) -> list[np.ndarray]:
    loss_fn = loss_fn or keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    functions = backend.ops()
    if np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.int32)

    def squared(xb, yb):
        _, _, grads = functions.value_and_grad(
            lambda: (loss_fn(yb, model(xb, training=False)), None), variables)
        return [ops.square(g) for g in grads]

    squared = functions.compiled(squared, _distinct(model.variables, variables))
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    batches = 0
    for start in range(0, len(x), batch_size):
        xb = ops.convert_to_tensor(x[start : start + batch_size])
        yb = ops.convert_to_tensor(y[start : start + batch_size])
        for i, g in enumerate(squared(xb, yb)):
            totals[i] += ops.convert_to_numpy(g)
        batches += 1
    return [(t / batches).astype(np.float32) for t in totals]


class FisherImportance(ImportanceEstimator):
    """Ω = diagonal Fisher information of the task just learned (EWC, Kirkpatrick et al. 2017).

    Args:
        mode: `exact` (default), `sampled`, `empirical` or `batch` (see the module docstring).
        samples: how many training inputs of the task to average over (default 1000).
        chunk_size: inputs per compiled call.

    Example:
    ```python
    estimator = FisherImportance(mode="exact", samples=1000)
    ```
    """

    name = "fisher"
    needs_samples = True

    def __init__(self, mode: str = "exact", samples: int = 1000, chunk_size: int = 256) -> None:
        if mode not in FISHER_MODES:
            raise ValueError(f"Unknown Fisher mode {mode!r}; expected one of {FISHER_MODES}")
        if int(samples) < 1:
            raise ValueError(f"fisher_samples must be at least 1, got {samples}")
        self.mode = mode
        self.samples = int(samples)
        self.chunk_size = int(chunk_size)
        self._reducers = ReducerCache()  # one trace per model for the whole run

    def end_task(self, context: TaskContext) -> list:
        from_logits = getattr(context.task, "from_logits", True)
        if _is_regression(context.task):
            return [ops.convert_to_tensor(v) for v in self._regression_fisher(context)]
        values = fisher_information(
            context.model,
            context.variables,
            context.x,
            context.y,
            mode=self.mode,
            from_logits=from_logits,
            seed=context.seed + context.task_index,
            chunk_size=self.chunk_size,
            cache=self._reducers,
        )
        return [ops.convert_to_tensor(v) for v in values]

    def _regression_fisher(self, context: TaskContext) -> list[np.ndarray]:
        """Regression (MSE) tasks: the Fisher of a unit-variance Gaussian around the output.

        `exact`, `sampled` and `empirical` all give the exact value Σ_outputs (∂f/∂θ)² (the
        expectation over y ~ N(f, 1) has this closed form); `batch` squares mini-batch gradients
        of the task's own loss.
        """
        x = np.asarray(context.x, np.float32)
        if self.mode == "batch":
            y = np.asarray(context.y, np.float32)
            loss = keras.losses.get(context.task.loss)

            def mean_loss(y_true, y_pred):
                return ops.mean(loss(y_true, y_pred))

            return _batch_fisher(context.model, context.variables, x, y, True, mean_loss, 32)
        reducer = self._reducers.get(
            context.model, context.variables, gaussian_objective, "square", self.chunk_size,
            key="gaussian",
        )
        return [s / len(x) for s in reducer(x)]

    def describe(self) -> dict:
        out = {"method": self.name, "fisher_mode": self.mode, "fisher_samples": self.samples}
        if self.mode == "batch":
            out["fisher_note"] = (
                "biased: squares of mini-batch gradients (the reference design's estimate), "
                "about 1/B too small near a minimum; kept for comparison only"
            )
        return out
