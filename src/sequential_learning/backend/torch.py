"""PyTorch: gradients with `torch.autograd.grad`, updates under `torch.no_grad`.

The train step runs eagerly (Keras's torch trainer), one batch per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from keras import tree


def replicas() -> int:
    """Replicas in sync (1: the torch backend trains on one device here).

    Returns:
        1.

    Example:
    ```python
    replicas()   # 1
    ```
    """
    return 1


def _detach(aux):
    return tree.map_structure(
        lambda t: t.detach() if isinstance(t, torch.Tensor) else t, aux)


def _grads(value, tensors: list) -> list:
    if not isinstance(value, torch.Tensor) or not value.requires_grad:
        return [torch.zeros_like(t) for t in tensors]
    wanted = [t for t in tensors if t.requires_grad]
    found = torch.autograd.grad(value, wanted, allow_unused=True) if wanted else []
    by_id = {id(t): g for t, g in zip(wanted, found)}
    return [torch.zeros_like(t) if by_id.get(id(t)) is None else by_id[id(t)] for t in tensors]


def value_and_grad(fn: Callable[[], tuple[Any, Any]], variables: Sequence) -> tuple:
    """`fn()`'s value, its aux and the value's gradients with respect to `variables`.

    Args:
        fn: a function of no arguments returning `(scalar, aux)`.
        variables: Keras variables; an unconnected one gets a zero gradient.

    Returns:
        `(value, aux, gradients)`; the value and aux are detached from the graph.

    Example:
    ```python
    value, aux, grads = value_and_grad(lambda: (ops.sum(v * v), {}), [v])
    ```
    """
    with torch.enable_grad():
        value, aux = fn()
        gradients = _grads(value, [v.value for v in variables])
    return _detach(value), _detach(aux), gradients


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
    from keras import ops

    tensors = [ops.convert_to_tensor(t).detach().requires_grad_(True) for t in inputs]
    with torch.enable_grad():
        value, aux = fn(*tensors)
        gradients = _grads(value, tensors)
    return _detach(value), _detach(aux), gradients


def no_grad() -> torch.no_grad:
    """A context in which nothing is recorded for gradients (`torch.no_grad`).

    Returns:
        A context manager.

    Example:
    ```python
    with no_grad():
        optimizer.apply(gradients, variables)
    ```
    """
    return torch.no_grad()


def apply_gradients(optimizer, gradients: Sequence, variables: Sequence) -> None:
    """One optimizer update, outside autograd.

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
    with torch.no_grad():
        optimizer.apply(list(gradients), list(variables))


def train_step(trainer, data) -> dict:
    """Keras's torch `train_step`: the trainer's backend-neutral step, eagerly.

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
    """`fn` itself: the torch backend runs eagerly.

    Args:
        fn: a function of tensors that may read and assign Keras variables.
        variables: the variables `fn` reads (used on JAX only).
        shared: a cache and signature to share the compiled function through (JAX only).

    Returns:
        `fn`.

    Example:
    ```python
    step = compiled(lambda x: model(x, training=False), model.variables)
    ```
    """
    del variables, shared
    return fn


def per_sample_gradient_sums(fn: Callable[..., tuple[Any, Any]], variables: Sequence,
                             inputs: Sequence, transform: Callable) -> list:
    """Σ_n Σ_k w_nk · transform(∂ obj_nk / ∂θ) per variable, with exact per-sample gradients.

    One sample at a time (the torch backend runs eagerly), one backward pass per objective.

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
                                    model.trainable_variables, [x, labels], torch.square)
    ```
    """
    from keras import ops

    params = [v.value for v in variables]
    totals = [torch.zeros(tuple(v.shape), dtype=torch.float32, device=p.device)
              for v, p in zip(variables, params)]
    tensors = [ops.convert_to_tensor(t) for t in inputs]
    wanted = [p for p in params if p.requires_grad]
    for n in range(int(tensors[0].shape[0])):
        with torch.enable_grad():
            objectives, weights = fn(*[t[n] for t in tensors])
            count = int(objectives.shape[-1])
            for k in range(count):
                target = objectives[0, k]
                if not target.requires_grad or not wanted:
                    continue
                found = torch.autograd.grad(target, wanted, retain_graph=k < count - 1,
                                            allow_unused=True)
                by_id = {id(p): g for p, g in zip(wanted, found)}
                weight = weights[0, k].detach()
                with torch.no_grad():
                    for total, p in zip(totals, params):
                        g = by_id.get(id(p))
                        if g is not None:
                            total.add_(weight * transform(g))
    return totals


def per_output_gradients(fn: Callable[..., tuple[Any, Any]], inputs: Sequence) -> tuple:
    """Gradients of each output column's sum with respect to `inputs`: one forward pass, one
    backward pass per column (the graph kept between them).

    Args:
        fn: a function of the tensors `inputs` returning `(outputs [N, K], aux)`.
        inputs: tensors.

    Returns:
        `(outputs, aux, gradients)` with `gradients[k][i]` = ∂ Σ_n outputs[n, k] / ∂ inputs[i];
        the outputs and aux are detached.

    Example:
    ```python
    out, aux, grads = per_output_gradients(lambda z: (ops.tanh(z) * w, None), [z])
    ```
    """
    from keras import ops

    tensors = [ops.convert_to_tensor(t).detach().requires_grad_(True) for t in inputs]
    gradients = []
    with torch.enable_grad():
        outputs, aux = fn(*tensors)
        count = int(outputs.shape[-1])
        for k in range(count):
            target = outputs[:, k].sum()
            if not target.requires_grad:
                gradients.append([torch.zeros_like(t) for t in tensors])
                continue
            found = torch.autograd.grad(target, tensors, retain_graph=k < count - 1,
                                        allow_unused=True)
            gradients.append([torch.zeros_like(t) if g is None else g
                              for t, g in zip(tensors, found)])
    return _detach(outputs), _detach(aux), gradients
