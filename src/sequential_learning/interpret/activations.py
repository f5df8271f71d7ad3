"""Layer activations, and activation maximisation of filters and classes.

Activation maximisation (Erhan et al. 2009; Simonyan et al. 2014) starts from noise and climbs the
gradient of a score with respect to the input:

    x ← clip(x + step_size · g / (RMS(g) + ε))

where `g` is the gradient for that image and RMS its root mean square, so every image moves by
the same amount per step whatever the score's scale. Several filters (or classes) are optimised
at once, one image each, in one batch; the model runs with `training=False`.

- Filters: the score is the filter's mean activation over all positions of the layer's output.
- Classes: the score is the class's logit (before any softmax, see `interpret/base.py`): the
  probability can also rise by lowering the other classes, the logit only by adding evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sequential_learning.interpret import base


def layer_activations(
    model: keras.Model,
    layer: str | keras.layers.Layer,
    images: Any,
    batch_size: int = 256,
) -> np.ndarray:
    """A layer's output for a batch of images (with `training=False`).

    Args:
        model: a Sequential or functional model; the layer may sit in a nested model.
        layer: the layer's name, path (`"base/conv2d"`) or object.
        images: array `(N, *input_shape)`.
        batch_size: images per model call.

    Returns:
        The layer's output as a float NumPy array, e.g. `(N, h, w, filters)` for a `Conv2D`.

    Example:
    ```python
    >>> maps = layer_activations(task_model, "base/conv2d", x[:4])
    >>> maps.shape
    (4, 26, 26, 32)
    ```
    """
    found = base.find_layer(model, layer)
    probe = base.build_probe(model, [found])
    x = base.validate_images(model, images)
    chunks = [
        keras.ops.convert_to_numpy(probe(x[i : i + batch_size])[0])
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(chunks, axis=0)


def _ascend(
    score: Any,
    input_shape: tuple,
    indices: np.ndarray,
    steps: int,
    step_size: float,
    seed: int,
    value_range: tuple[float, float] | None,
) -> np.ndarray:
    """Gradient ascent from noise on `score(x, indices) -> (B,)`, one image per index."""
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"`steps` must be a non-negative int; got {steps!r}.")
    if not np.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"`step_size` must be a positive number; got {step_size!r}.")
    if None in input_shape[1:]:
        raise ValueError(
            f"Activation maximisation needs a fixed input shape; the model takes {input_shape}."
        )
    low, high = (0.0, 1.0) if value_range is None else value_range
    if not low < high:
        raise ValueError(f"`value_range` must be (low, high) with low < high; got {value_range}.")
    rng = np.random.default_rng(seed)
    shape = (len(indices), *input_shape[1:])
    start = (low + high) / 2 + 0.1 * (high - low) * rng.standard_normal(shape)
    if value_range is not None:
        start = np.clip(start, low, high)
    x = tf.Variable(start.astype(np.float32))
    idx = tf.constant(indices.astype(np.int32))
    axes = list(range(1, len(shape)))

    @tf.function
    def step(rate):
        with tf.GradientTape() as tape:
            scores = score(x, idx)
        grads = tape.gradient(scores, x)  # images are independent: the sum's gradient suffices
        rms = tf.sqrt(tf.reduce_mean(tf.square(grads), axis=axes, keepdims=True))
        moved = x + rate * grads / (rms + 1e-8)
        if value_range is not None:
            moved = tf.clip_by_value(moved, low, high)
        x.assign(moved)

    rate = tf.constant(float(step_size), tf.float32)
    for _ in range(int(steps)):
        step(rate)
    return x.numpy()


def _indices(values: Any, count: int, what: str, where: str) -> np.ndarray:
    if values is None:
        return np.arange(count)
    array = np.atleast_1d(np.asarray(values))
    if array.ndim != 1 or len(array) == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"`{what}` must be a non-empty list of int indices; got {values!r}.")
    bad = (array < 0) | (array >= count)
    if np.any(bad):
        raise ValueError(f"`{what}` must lie in [0, {count}) ({where}); got {array[bad].tolist()}.")
    return array


def filter_activation_maximization(
    model: keras.Model,
    layer: str | keras.layers.Layer | None = None,
    filters: Sequence[int] | None = None,
    steps: int = 100,
    step_size: float = 0.01,
    seed: int = 0,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> np.ndarray:
    """Inputs that maximise chosen filters' mean activation, found by gradient ascent.

    Args:
        model: a Sequential or functional model; the layer may sit in a nested model.
        layer: the layer (name, path or object); any layer whose last axis indexes filters or
            units works. None picks the last convolutional layer.
        filters: indices of the filters to visualise (one image each, optimised together);
            None means all of them.
        steps: gradient ascent steps.
        step_size: how far each step moves the image, in units of its normalised gradient.
        seed: seeds the starting noise.
        value_range: the images are kept in `[low, high]` (noise starts around its middle);
            None keeps them unclipped (noise around 0.5).

    Returns:
        Float32 array `(len(filters), *input_shape)`: one image per filter.

    Example:
    ```python
    >>> images = filter_activation_maximization(task_model, "base/conv2d", [0, 1, 2], steps=50)
    >>> images.shape
    (3, 28, 28, 1)
    ```
    """
    found = base.resolve_conv_layer(model, layer, "filter activation maximisation")
    probe = base.build_probe(model, [found])
    count = int(probe.layer_shapes[0][-1])
    chosen = _indices(filters, count, "filters", f"layer {found.name!r} has {count} filters")

    def score(x: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        activations = probe.forward(x)[0]
        onehot = tf.one_hot(idx, count, dtype=activations.dtype)
        onehot = tf.reshape(onehot, [-1] + [1] * (len(activations.shape) - 2) + [count])
        per_position = tf.reduce_sum(activations * onehot, axis=-1)
        axes = list(range(1, len(per_position.shape)))
        return tf.reduce_mean(per_position, axis=axes) if axes else per_position

    return _ascend(
        score, base.model_input_shape(model), chosen, steps, step_size, seed, value_range
    )


def class_activation_maximization(
    model: keras.Model,
    classes: Sequence[int] | None = None,
    steps: int = 100,
    step_size: float = 0.01,
    seed: int = 0,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> np.ndarray:
    """Inputs that maximise chosen classes' logits, found by gradient ascent.

    Args:
        model: a Sequential or functional model (nested base models are fine).
        classes: the output classes to visualise (one image each, optimised together); None
            means all of them.
        steps: gradient ascent steps.
        step_size: how far each step moves the image, in units of its normalised gradient.
        seed: seeds the starting noise.
        value_range: the images are kept in `[low, high]`; None keeps them unclipped.

    Returns:
        Float32 array `(len(classes), *input_shape)`: one image per class.

    Example:
    ```python
    >>> images = class_activation_maximization(task_model, classes=[0, 1], steps=50)
    >>> images.shape
    (2, 28, 28, 1)
    ```
    """
    probe = base.build_probe(model)
    count = probe.num_classes
    chosen = _indices(classes, count, "classes", f"model {model.name!r} has {count} outputs")

    def score(x: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        logits = probe.forward(x)
        return tf.gather(logits, idx, axis=1, batch_dims=1)

    return _ascend(
        score, base.model_input_shape(model), chosen, steps, step_size, seed, value_range
    )
