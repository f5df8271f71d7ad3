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

Every backend: a step is `keras.ops` with the gradient from `backend.ops().input_gradients`,
compiled with `backend.ops().compiled`; the images live on the host between steps as the
function's argument and result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.interpret import base
from sequential_learning.interpret.probe import compile_for


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
    chunks = [probe(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks, axis=0)


def _ascend(
    model: keras.Model,
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
    x = ops.convert_to_tensor(start.astype(np.float32))
    idx = ops.convert_to_tensor(indices.astype(np.int32))
    rate = ops.convert_to_tensor(np.float32(step_size))
    axes = tuple(range(1, len(shape)))
    gradients = backend.ops().input_gradients  # resolved here, not inside the traced step

    def step(x: Any, idx: Any, rate: Any) -> Any:
        # Images are independent: the gradient of the sum is every image's own gradient.
        _, _, (grads,) = gradients(
            lambda images: (ops.sum(score(images, idx)), None), [x])
        rms = ops.sqrt(ops.mean(ops.square(grads), axis=axes, keepdims=True))
        moved = x + rate * grads / (rms + 1e-8)
        if value_range is not None:
            moved = ops.clip(moved, low, high)
        return moved

    compiled = compile_for(model, step)
    for _ in range(int(steps)):
        x = compiled(x, idx, rate)
    return np.asarray(ops.convert_to_numpy(x), np.float32)


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

    def score(x: Any, idx: Any) -> Any:
        activations = probe.forward(x)[0]
        onehot = ops.one_hot(idx, count, dtype=activations.dtype)
        onehot = ops.reshape(onehot, [-1] + [1] * (len(activations.shape) - 2) + [count])
        per_position = ops.sum(activations * onehot, axis=-1)
        axes = tuple(range(1, len(per_position.shape)))
        return ops.mean(per_position, axis=axes) if axes else per_position

    return _ascend(
        model,
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

    def score(x: Any, idx: Any) -> Any:
        logits = probe.forward(x)
        return ops.take_along_axis(logits, ops.expand_dims(idx, 1), axis=1)[:, 0]

    return _ascend(
        model,
        score, base.model_input_shape(model), chosen, steps, step_size, seed, value_range
    )
