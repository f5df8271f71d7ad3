"""NumPy ``.npz`` archives of a data set, read without pickle.

The archive holds ``x_train, y_train, x_test, y_test`` (and optionally ``class_names``); every
way a file can be wrong (not a zip, a single ``.npy``, a pickled member, a truncated member,
labels that are not class ids) is one `DataError` naming the file and the key.

Example:
```python
np.savez("mine.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
data = dataset_from_npz(Path("mine.npz"), "mine", limit=None)
```
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from sequential_learning.data.dataset import Dataset, build_dataset, head, scale_images
from sequential_learning.data.errors import DataError

__all__ = ["MAX_CLASSES", "NPZ_KEYS", "dataset_from_npz"]

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
_NPY_MAGIC = b"\x93NUMPY"
_GZIP_MAGIC = b"\x1f\x8b"
# Errors NumPy and zipfile raise for a truncated or corrupt archive or member.
_ARCHIVE_ERRORS = (
    OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError
)
#: The most classes the labels of an npz may imply (largest label + 1).
MAX_CLASSES = 100_000


def _npz_expected() -> str:
    return f"expected an npz (zip) file with the arrays {', '.join(NPZ_KEYS)} (np.savez)"


def _read_member(archive: Any, path: Path, key: str) -> np.ndarray:
    """One member of an open npz archive, as an array; a DataError for anything else."""
    pickled = (
        f"{path}: member {key!r} is a pickled object; expected a numeric array "
        "(saved with allow_pickle=False)."
    )
    try:
        value = archive[key]
    except ValueError as error:
        if "pickle" in str(error).lower() or "object arrays" in str(error).lower():
            raise DataError(pickled) from None
        raise DataError(
            f"{path}: member {key!r} could not be read ({error}); the file is truncated or "
            "corrupt."
        ) from error
    except _ARCHIVE_ERRORS as error:
        raise DataError(
            f"{path}: member {key!r} could not be read ({error}); the file is truncated or "
            "corrupt."
        ) from error
    if isinstance(value, np.ndarray):
        return value
    # NumPy hands back the raw bytes of a member that is not a .npy file.
    raw = bytes(value) if isinstance(value, bytes | bytearray) else b""
    if raw[:1] == b"\x80" or raw[:1] in (b"(", b"]", b"}"):  # pickle protocol 2+ or 0/1
        raise DataError(pickled)
    raise DataError(
        f"{path}: member {key!r} is not a NumPy array but {len(raw)} bytes of other data; "
        "expected a numeric array saved by np.savez."
    )


def _read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an npz file (and its class names, if any), read without pickle."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise DataError(f"npz file {path} does not exist.") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory; {_npz_expected()}.") from None
    except OSError as error:
        raise DataError(
            f"npz file {path} could not be read: {error.strerror or error}."
        ) from error
    if not head:
        raise DataError(f"{path} is empty (0 bytes); {_npz_expected()}.")
    if head.startswith(_NPY_MAGIC):
        raise DataError(
            f"{path} holds a single array (.npy), not an npz archive with the keys "
            f"{', '.join(NPZ_KEYS)}."
        )
    if not head.startswith(_ZIP_MAGICS):
        hint = " (it is gzip-compressed)" if head.startswith(_GZIP_MAGIC) else ""
        raise DataError(f"{path} is not an npz (zip) file{hint}; {_npz_expected()}.")
    try:
        archive = np.load(path, allow_pickle=False)
    except _ARCHIVE_ERRORS as error:
        raise DataError(
            f"{path} is not a readable npz (zip) file ({error}); {_npz_expected()}."
        ) from error
    with archive:
        keys = sorted(archive.files)
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise DataError(
                f"npz file {path} is missing the key(s) {', '.join(missing)}; it holds: "
                f"{', '.join(keys) if keys else 'no arrays'}. Expected: {', '.join(NPZ_KEYS)}."
            )
        return {
            key: _read_member(archive, path, key)
            for key in [*NPZ_KEYS, "class_names"]
            if key in archive.files
        }


def _check_npz_labels(path: Path, key: str, y: np.ndarray, infer_classes: bool) -> None:
    """Labels of an npz: integer class ids >= 0 (and few enough when num_classes is inferred)."""
    if y.ndim == 2 and y.shape[1] > 1:
        raise DataError(
            f"npz file {path}: {key} has shape {y.shape}; expected one integer label per sample, "
            "shape (N,) (one-hot labels? save y.argmax(axis=1))."
        )
    if y.dtype.kind not in "iuf":
        raise DataError(
            f"npz file {path}: {key} must hold integer class labels, got dtype {y.dtype}."
        )
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise DataError(
                f"npz file {path}: {key} holds NaN or infinite labels; expected integer class ids."
            )
        fractional = y[y != np.round(y)]
        if fractional.size:
            raise DataError(
                f"npz file {path}: {key} holds labels that are not integers "
                f"({fractional.size} of them, for example {float(fractional.flat[0]):g}); "
                "expected integer class ids."
            )
    negative = y[y < 0]
    if negative.size:
        raise DataError(
            f"npz file {path}: {key} holds negative labels ({negative.size} of them, for "
            f"example {int(negative.flat[0])}); expected class ids 0, 1, 2, ..."
        )
    if infer_classes and y.max() >= MAX_CLASSES:
        raise DataError(
            f"npz file {path}: {key} holds label {int(y.max())}; labels are class ids 0..K-1 with "
            f"K at most {MAX_CLASSES} (renumber them: np.unique(y, return_inverse=True)[1])."
        )


def _check_image_shape(path: Path, key: str, x: np.ndarray, name: str, channels: int) -> None:
    """The images of a known image data set read from an npz: (N, H, W) or (N, H, W, C)."""
    if (x.ndim == 3 and channels == 1) or (x.ndim == 4 and x.shape[-1] == channels):
        return
    expected = "(N, H, W) or (N, H, W, 1)" if channels == 1 else f"(N, H, W, {channels})"
    hint = ""
    if x.ndim == 4 and x.shape[1] == channels:
        hint = " (channels first? save x.transpose(0, 2, 3, 1))"
    raise DataError(
        f"npz file {path}: {key} has shape {x.shape}; expected {name} images shaped "
        f"{expected}{hint}."
    )


def dataset_from_npz(
    path: Path,
    name: str,
    limit: int | None,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    channels: int | None = None,
) -> Dataset:
    """Reads a data set from an npz file with `x_train, y_train, x_test, y_test` (no pickle).

    Args:
        path: the npz file.
        name: the data set's name.
        limit: keep only the first `limit` samples of each split, or None.
        num_classes: the number of classes; None infers it from the labels.
        class_names: a name per class; None takes the file's `class_names` array, if any.
        channels: when given, the images must have this many channels.

    Returns:
        The `Dataset` (uint8 images scaled to [0, 1]).

    Raises:
        DataError: for a file that is not npz, a pickled or missing member, mismatched lengths or
            labels that are not non-negative integers; the message names the file and the key.

    Example:
    ```python
    data = dataset_from_npz(Path("mine.npz"), "mine", limit=None)
    ```
    """
    arrays = _read_npz_arrays(path)
    for key in NPZ_KEYS:
        if arrays[key].ndim == 0:
            raise DataError(f"npz file {path}: array {key!r} is a scalar, not an array.")
        if len(arrays[key]) == 0:
            raise DataError(
                f"npz file {path}: {key} is empty (shape {arrays[key].shape}); expected at "
                "least one sample."
            )
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise DataError(
                f"npz file {path}: x_{split} has {len(x)} samples but y_{split} has "
                f"{len(y)} labels."
            )
        _check_npz_labels(path, f"y_{split}", y, infer_classes=num_classes is None)
        if channels is not None:
            _check_image_shape(path, f"x_{split}", x, name, channels)
    if class_names is None and "class_names" in arrays:
        names = arrays["class_names"]
        if names.dtype.kind not in "US" or names.ndim != 1:
            raise DataError(
                f"npz file {path}: 'class_names' should be a 1-d array of strings, "
                f"got dtype {names.dtype} shape {names.shape}."
            )
        class_names = [str(n.decode() if isinstance(n, bytes) else n) for n in names]
    if num_classes is None:
        num_classes = int(max(np.max(arrays[key]) for key in ("y_train", "y_test"))) + 1
        if class_names is not None:
            num_classes = max(num_classes, len(class_names))
    xs = {}
    for split in ("train", "test"):
        x = head(arrays[f"x_{split}"], limit)
        if x.dtype == np.uint8:
            x = scale_images(x)
        elif x.ndim == 3:
            x = x[..., np.newaxis]
        xs[split] = x
    return build_dataset(
        name,
        xs["train"],
        head(arrays["y_train"], limit),
        xs["test"],
        head(arrays["y_test"], limit),
        num_classes,
        class_names,
        str(path),
    )
