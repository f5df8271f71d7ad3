"""TensorFlow: gradients with `tf.GradientTape`, replicas from the `tf.distribute` strategy.

The train step is Keras's own compiled `tf.function` around `ContinualTrainer.continual_step`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf


def replicas() -> int:
    """Replicas in sync under the current `tf.distribute` strategy (1 without one).

    Returns:
        The number of replicas.

    Example:
    ```python
    replicas()   # 1
    ```
    """
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def value_and_grad(fn: Callable[[], tuple[Any, Any]], variables: Sequence) -> tuple:
    """`fn()`'s value, its aux and the value's gradients with respect to `variables`.

    Args:
        fn: a function of no arguments returning `(scalar, aux)`.
        variables: Keras variables; an unconnected one gets a zero gradient.

    Returns:
        `(value, aux, gradients)`.

    Example:
    ```python
    value, aux, grads = value_and_grad(lambda: (ops.sum(v * v), {}), [v])
    ```
    """
    with tf.GradientTape() as tape:
        value, aux = fn()
    gradients = tape.gradient(value, list(variables))
    gradients = [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables)]
    return value, aux, gradients


def input_gradients(fn: Callable[..., tuple[Any, Any]], inputs: Sequence) -> tuple:
    """`fn(*inputs)`'s value, its aux and the value's gradients with respect to `inputs`.

    Args:
        fn: a function of the tensors `inputs` returning `(scalar, aux)`.
        inputs: tensors.

    Returns:
        `(value, aux, gradients)` (zeros where the value does not depend on an input).

    Example:
    ```python
    value, aux, (gx,) = input_gradients(lambda x: (ops.sum(x * x), None), [x])
    ```
    """
    inputs = [tf.convert_to_tensor(t) for t in inputs]
    with tf.GradientTape() as tape:
        for t in inputs:
            tape.watch(t)
        value, aux = fn(*inputs)
    gradients = tape.gradient(value, inputs,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return value, aux, gradients


def no_grad() -> contextlib.AbstractContextManager:
    """A context in which nothing is recorded for gradients (nothing to do on TensorFlow).

    Returns:
        A context manager.

    Example:
    ```python
    with no_grad():
        optimizer.apply(gradients, variables)
    ```
    """
    return contextlib.nullcontext()


def apply_gradients(optimizer, gradients: Sequence, variables: Sequence) -> None:
    """One optimizer update (Keras's `apply_gradients`).

    Args:
        optimizer: a Keras optimizer.
        gradients: one per variable.
        variables: the trained variables.

    Returns:
        None.

    Example:
    ```python
    apply_gradients(trainer.optimizer, grads, trainer.trained_variables)
    ```
    """
    optimizer.apply_gradients(zip(gradients, variables))


def train_step(trainer, data) -> dict:
    """Keras's TensorFlow `train_step`: the trainer's backend-neutral step (Keras compiles it).

    Args:
        trainer: a `ContinualTrainer`.
        data: one batch.

    Returns:
        The step's logs.

    Example:
    ```python
    logs = train_step(trainer, (x, y))
    ```
    """
    return trainer.continual_step(data)


def compiled(fn: Callable, variables: Sequence = (), shared: tuple | None = None) -> Callable:
    """`fn` compiled (`tf.function`, retracing only on new shapes).

    Args:
        fn: a function of tensors that may read and assign Keras variables.
        variables: the variables `fn` reads (used on JAX only).
        shared: a cache and signature to share the compiled function through (JAX only).

    Returns:
        The compiled function.

    Example:
    ```python
    step = compiled(lambda x: model(x, training=False), model.variables)
    ```
    """
    del variables, shared
    return tf.function(fn, reduce_retracing=True)


def per_sample_gradient_sums(fn: Callable[..., tuple[Any, Any]], variables: Sequence,
                             inputs: Sequence, transform: Callable) -> list:
    """Σ_n Σ_k w_nk · transform(∂ obj_nk / ∂θ) per variable, with exact per-sample gradients.

    Vectorised over the samples with `tf.vectorized_map`, one persistent tape per sample.

    Args:
        fn: called with one sample of each of `inputs` (no batch axis); returns
            `(objectives [1, K], weights [1, K])`; the weights are not differentiated.
        variables: the variables to differentiate.
        inputs: tensors with the samples on their first axis.
        transform: applied to every per-sample gradient (a square, an absolute value).

    Returns:
        One tensor per variable, shaped like it.

    Example:
    ```python
    sums = per_sample_gradient_sums(lambda x, y: objective(model(x[None]), y[None]),
                                    model.trainable_variables, [x, labels], tf.square)
    ```
    """
    variables = list(variables)

    def one(args):
        with tf.GradientTape(persistent=True) as tape:
            objectives, weights = fn(*args)
            targets = [objectives[0, k] for k in range(objectives.shape[-1])]
        weights = tf.stop_gradient(weights)
        acc = [tf.zeros(v.shape) for v in variables]
        for k, target in enumerate(targets):
            grads = tape.gradient(
                target, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
            acc = [a + weights[0, k] * transform(g) for a, g in zip(acc, grads)]
        return acc

    per = tf.vectorized_map(one, tuple(inputs))
    return [tf.reduce_sum(p, axis=0) for p in per]


def per_output_gradients(fn: Callable[..., tuple[Any, Any]], inputs: Sequence) -> tuple:
    """Gradients of each output column's sum with respect to `inputs`: one forward pass under a
    persistent tape, one backward pass per column.

    Args:
        fn: a function of the tensors `inputs` returning `(outputs [N, K], aux)`.
        inputs: tensors.

    Returns:
        `(outputs, aux, gradients)` with `gradients[k][i]` = ∂ Σ_n outputs[n, k] / ∂ inputs[i].

    Example:
    ```python
    out, aux, grads = per_output_gradients(lambda z: (tf.tanh(z) * w, None), [z])
    ```
    """
    inputs = [tf.convert_to_tensor(t) for t in inputs]
    with tf.GradientTape(persistent=True) as tape:
        for t in inputs:
            tape.watch(t)
        outputs, aux = fn(*inputs)
        targets = [outputs[:, k] for k in range(outputs.shape[-1])]
    gradients = [tape.gradient(target, inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                 for target in targets]
    return outputs, aux, gradients
