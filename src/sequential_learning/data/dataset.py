"""`Dataset`: a classification data set split into train and test arrays, validated.

Conventions of every `Dataset`:

- ``x`` is float32; images are shaped ``(N, H, W, C)`` (channels last, ``C=1`` for grayscale)
  and scaled to ``[0, 1]``; tabular data is shaped ``(N, F)``.
- ``y`` is int64, one label per sample, in ``0 .. num_classes - 1``.

`build_dataset` names the file a validation error comes from; `scale_images` and `head` are the
steps every image format shares.

Example:
```python
data = Dataset("toy", x_train, y_train, x_test, y_test, num_classes=2)
data.input_shape
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sequential_learning.data.errors import DataError

__all__ = ["Dataset", "build_dataset", "head", "scale_images"]


@dataclass
class Dataset:
    """A classification data set split into train and test arrays.

    Validated on construction: ``x`` and ``y`` of each split have the same length, labels are
    integers in ``0 .. num_classes - 1``, ``x`` is finite, and train and test samples have the
    same shape. ``x`` is stored as float32 and ``y`` as int64 (converted if needed).

    Args:
        name: a short name such as ``"fashion-mnist"``.
        x_train: training inputs, ``(N, H, W, C)`` for images or ``(N, F)`` for tabular data.
        y_train: training labels, shape ``(N,)``.
        x_test: test inputs, same per-sample shape as ``x_train``.
        y_test: test labels, shape ``(M,)``.
        num_classes: the number of classes ``K``; labels lie in ``0 .. K-1``.
        class_names: ``K`` human-readable class names, or None.
        source: where the data was read from (a directory, a file, or a library).

    Example:
    ```python
    >>> data = Dataset("toy", np.zeros((4, 2)), np.array([0, 1, 0, 1]),
    ...                np.zeros((2, 2)), np.array([1, 0]), num_classes=2)
    >>> data.input_shape
    (2,)
    ```
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int
    class_names: list[str] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int | np.integer):
            raise DataError(
                f"{self.name}: num_classes must be an integer, got {self.num_classes!r}."
            )
        self.num_classes = int(self.num_classes)
        if self.num_classes < 1:
            raise DataError(f"{self.name}: num_classes must be at least 1, got {self.num_classes}.")
        if self.class_names is not None:
            self.class_names = [str(class_name) for class_name in self.class_names]
            if len(self.class_names) != self.num_classes:
                raise DataError(
                    f"{self.name}: {len(self.class_names)} class names for "
                    f"{self.num_classes} classes."
                )
        self.x_train = self._check_x(self.x_train, "train")
        self.x_test = self._check_x(self.x_test, "test")
        self.y_train = self._check_y(self.y_train, "train")
        self.y_test = self._check_y(self.y_test, "test")
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if len(x) != len(y):
                raise DataError(
                    f"{self.name}: the {split} split has {len(x)} samples in x_{split} but "
                    f"{len(y)} labels in y_{split}."
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: train samples are shaped {self.x_train.shape[1:]} but test samples "
                f"are shaped {self.x_test.shape[1:]}."
            )

    def _check_x(self, x: Any, split: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise DataError(f"{self.name}: x_{split} must be numeric, got dtype {x.dtype}.")
        if x.ndim < 2:
            raise DataError(
                f"{self.name}: x_{split} must have a sample axis and at least one feature axis, "
                f"got shape {x.shape}."
            )
        if len(x) == 0:
            raise DataError(f"{self.name}: the {split} split is empty.")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise DataError(f"{self.name}: x_{split} holds NaN or infinite values.")
        return x

    def _check_y(self, y: Any, split: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(
                f"{self.name}: y_{split} must hold one integer label per sample (shape (N,)), "
                f"got shape {y.shape}."
            )
        if y.dtype.kind == "f":
            if not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
                raise DataError(f"{self.name}: y_{split} holds labels that are not integers.")
        elif y.dtype.kind not in "biu":
            raise DataError(f"{self.name}: y_{split} must be integer labels, got dtype {y.dtype}.")
        y = y.astype(np.int64, copy=False)
        if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
            bad = y[(y < 0) | (y >= self.num_classes)]
            raise DataError(
                f"{self.name}: y_{split} has labels out of range 0..{self.num_classes - 1}: "
                f"{len(bad)} of them, for example {int(bad[0])}."
            )
        return y

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, e.g. ``(28, 28, 1)`` or ``(4,)``."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"source={self.source!r})"
        )


def head(array: np.ndarray, limit: int | None) -> np.ndarray:
    """The first `limit` rows of an array (all of them when `limit` is None).

    Args:
        array: the array.
        limit: how many rows to keep, or None.

    Returns:
        A view of `array`.

    Example:
    ```python
    head(np.arange(5), 2)   # array([0, 1])
    ```
    """
    return array if limit is None else array[:limit]


def scale_images(x: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], with a channel axis added to (N, H, W).

    Args:
        x: uint8 images, `(N, H, W)` or `(N, H, W, C)`.

    Returns:
        float32 images in [0, 1], `(N, H, W, C)`.

    Example:
    ```python
    scale_images(np.full((2, 28, 28), 255, np.uint8)).shape   # (2, 28, 28, 1)
    ```
    """
    x = x.astype(np.float32) / np.float32(255.0)
    return x[..., np.newaxis] if x.ndim == 3 else x


def build_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    class_names: list[str] | None,
    source: str,
) -> Dataset:
    """Builds a Dataset, naming the source in any validation error.

    Args:
        name: the data set's name.
        x_train: the training inputs.
        y_train: the training labels.
        x_test: the test inputs.
        y_test: the test labels.
        num_classes: the number of classes.
        class_names: a name per class, or None.
        source: where the data were read from (for messages).

    Returns:
        The `Dataset`.

    Raises:
        DataError: when the arrays do not make a valid data set; the message names `source`.

    Example:
    ```python
    data = build_dataset("toy", x, y, x_test, y_test, 2, None, "memory")
    ```
    """
    try:
        return Dataset(
            name, x_train, y_train, x_test, y_test, num_classes, class_names, source=source
        )
    except DataError as error:
        message = str(error).removeprefix(f"{name}: ")
        raise DataError(f"{source}: {message}") from error
