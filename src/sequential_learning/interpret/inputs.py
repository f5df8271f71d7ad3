"""Validating the input of an explanation: images, targets, patch sizes.

Errors say what is wrong and what was expected (the model's input shape, the number of classes).

Example:
```python
images = validate_images(model, images, require_spatial=True)   # float32 (N, H, W, C)
targets = validate_targets(targets, len(images), num_classes=10)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from sequential_learning.interpret.probe import model_input_shape


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("N" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"


def validate_images(model: keras.Model, images: Any, require_spatial: bool = False) -> np.ndarray:
    """Checks a batch of images against the model's input shape.

    Args:
        model: the model the images are for.
        images: array-like of shape `(N, *input_shape)`.
        require_spatial: also require images shaped `(N, height, width, channels)`.

    Returns:
        The images as a float32 NumPy array.

    Raises:
        ValueError: not numeric, an empty batch, a single image without the batch axis, or a
            shape the model does not take.

    Example:
    ```python
    images = validate_images(model, x_val[:8], require_spatial=True)   # (8, H, W, C) float32
    ```
    """
    expected = model_input_shape(model)
    name = model.name
    try:
        array = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`images` must be a numeric array; could not convert it: {error}"
        ) from error
    per_image = expected[1:]
    matches = array.ndim == len(expected) and all(
        want is None or want == got for want, got in zip(per_image, array.shape[1:], strict=True)
    )
    if not matches:
        if array.ndim == len(per_image) and all(
            want is None or want == got for want, got in zip(per_image, array.shape, strict=True)
        ):
            raise ValueError(
                f"`images` must be a batch of shape {_shape_text(expected)}; got a single image "
                f"of shape {array.shape}. Add the batch axis: `images[None]`."
            )
        raise ValueError(
            f"`images` have shape {array.shape}; model {name!r} expects a batch of shape "
            f"{_shape_text(expected)}."
        )
    if array.shape[0] == 0:
        raise ValueError("`images` is an empty batch; give at least one image.")
    if require_spatial and array.ndim != 4:
        raise ValueError(
            f"This method needs images shaped (N, height, width, channels); model "
            f"{name!r} takes inputs of shape {_shape_text(expected)}."
        )
    return array


def validate_targets(targets: Any, n: int, num_classes: int) -> np.ndarray:
    """Checks the target class of each image.

    Args:
        targets: one class index per image (shape `(n,)`), or a single int for every image.
        n: the number of images.
        num_classes: the number of model outputs.

    Returns:
        The targets as an int32 array of shape `(n,)`.

    Raises:
        ValueError: wrong length, not integers (e.g. one-hot labels), or out of range.

    Example:
    ```python
    targets = validate_targets(3, n=8, num_classes=10)   # array of eight 3s
    ```
    """
    array = np.asarray(targets)
    if array.ndim == 0:
        array = np.full((n,), array)
    if array.ndim != 1:
        raise ValueError(
            f"`targets` must be one class index per image, shape ({n},); got shape {array.shape}"
            + (" (one-hot labels? use `labels.argmax(-1)`)" if array.ndim == 2 else "")
            + "."
        )
    if array.shape[0] != n:
        raise ValueError(
            f"`targets` has {array.shape[0]} entries but there are {n} images; give one class "
            "index per image."
        )
    if not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0):
            array = array.astype(np.int64)
        else:
            raise ValueError(f"`targets` must be integer class indices; got dtype {array.dtype}.")
    bad = (array < 0) | (array >= num_classes)
    if np.any(bad):
        raise ValueError(
            f"`targets` must lie in [0, {num_classes}) (the model has {num_classes} outputs); "
            f"got {array[bad][:5].tolist()}."
        )
    return array.astype(np.int32)


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """`3 -> (3, 3)`; `(3, 4) -> (3, 4)`; checks that both are positive integers.

    Args:
        value: an int or a pair of ints (a patch size, a stride).
        name: the argument's name, for the message.

    Returns:
        `(height, width)`.

    Raises:
        ValueError: unless both are positive integers.

    Example:
    ```python
    pair(3, "patch_size")   # (3, 3)
    ```
    """
    values = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(values) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(f"`{name}` must be a positive int or a pair of them; got {value!r}.")
    return int(values[0]), int(values[1])
