"""Shared bases and per-task heads, built with the functional API so layers are shared."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def mlp_base(
    input_shape: Sequence[int],
    hidden: Sequence[int] = (100, 100),
    activation: str = "relu",
    name: str = "base",
) -> keras.Model:
    """A multilayer perceptron base (inputs of any rank are flattened first).

    Args:
        input_shape: shape of one input, e.g. `(8, 8, 1)` or `(64,)`.
        hidden: units of each hidden Dense layer.
        activation: their activation.
        name: the model's name.

    Returns:
        A functional `keras.Model` from inputs to the last hidden layer.

    Example:
    ```python
    base = mlp_base((28, 28, 1), hidden=(400, 400))
    ```
    """
    if not hidden:
        raise ValueError("mlp_base needs at least one hidden layer size")
    inputs = keras.Input(tuple(input_shape), name=f"{name}_input")
    h = keras.layers.Flatten(name=f"{name}_flatten")(inputs) if len(input_shape) > 1 else inputs
    for i, units in enumerate(hidden):
        if int(units) < 1:
            raise ValueError(f"hidden layer sizes must be >= 1, got {list(hidden)}")
        h = keras.layers.Dense(int(units), activation=activation, name=f"{name}_dense_{i + 1}")(h)
    return keras.Model(inputs, h, name=name)


def cnn_base(
    input_shape: Sequence[int],
    filters: Sequence[int] = (32, 64),
    dense: int = 128,
    kernel_size: int = 3,
    name: str = "base",
) -> keras.Model:
    """A small convolutional base: conv-pool blocks, then one Dense layer.

    Args:
        input_shape: `(H, W, C)` of one image.
        filters: filters of each conv block (3×3 conv, ReLU, 2×2 max-pool).
        dense: units of the Dense layer after flattening (0 for none).
        kernel_size: the convolutions' kernel size.
        name: the model's name.

    Returns:
        A functional `keras.Model`.

    Example:
    ```python
    base = cnn_base((28, 28, 1), filters=(32, 64), dense=128)
    ```
    """
    if len(input_shape) != 3:
        raise ValueError(f"cnn_base needs images shaped (H, W, C), got input shape {input_shape}")
    inputs = keras.Input(tuple(input_shape), name=f"{name}_input")
    h = inputs
    for i, f in enumerate(filters):
        h = keras.layers.Conv2D(
            int(f), kernel_size, padding="same", activation="relu", name=f"{name}_conv_{i + 1}"
        )(h)
        if min(h.shape[1], h.shape[2]) >= 2:
            h = keras.layers.MaxPooling2D(2, name=f"{name}_pool_{i + 1}")(h)
    h = keras.layers.Flatten(name=f"{name}_flatten")(h)
    if dense:
        h = keras.layers.Dense(int(dense), activation="relu", name=f"{name}_dense")(h)
    return keras.Model(inputs, h, name=name)


def build_task_models(
    base: keras.Model,
    head_sizes: Sequence[int],
    shared_head: bool = False,
    head_activation: str | None = None,
) -> list[keras.Model]:
    """One model per task: the shared base plus a head (its own, or one shared by all tasks).

    Args:
        base: the shared base model (its layers are reused, not copied).
        head_sizes: outputs of each task's head (all equal when the head is shared).
        shared_head: one head for every task (domain- and class-incremental scenarios) instead
            of one head per task (task-incremental).
        head_activation: the heads' activation; None gives logits (the default everywhere).

    Returns:
        A list of functional models, one per task, sharing the base's variables.

    Example:
    ```python
    models = build_task_models(base, [2, 2, 2, 2, 2])             # five 2-way heads
    models = build_task_models(base, [10] * 5, shared_head=True)  # one 10-way head
    ```
    """
    if shared_head and len(set(head_sizes)) > 1:
        raise ValueError(f"A shared head needs equal sizes for every task, got {list(head_sizes)}")
    shared = (
        keras.layers.Dense(int(head_sizes[0]), activation=head_activation, name="head")
        if shared_head
        else None
    )
    models = []
    for k, size in enumerate(head_sizes, start=1):
        inputs = keras.Input(tuple(base.input_shape[1:]), name=f"task_{k}_input")
        head = shared or keras.layers.Dense(int(size), activation=head_activation, name=f"head_{k}")
        models.append(keras.Model(inputs, head(base(inputs)), name=f"task_{k}"))
    return models
