"""CIFAR-10's binary version: ``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin``.

Each record is 1 label byte, then the red, green and blue 32×32 planes (3073 bytes). The Python
version (``cifar-10-batches-py``) is made of pickles and is never read.

Example:
```python
if cifar_bin_files(folder) is not None:
    data = dataset_from_cifar_bin(folder, limit=256)
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sequential_learning.data.dataset import Dataset, build_dataset, scale_images
from sequential_learning.data.errors import DataError

__all__ = [
    "CIFAR10_CLASS_NAMES", "CIFAR_BIN_DIR", "CIFAR_NPZ", "CIFAR_PY_DIR", "CIFAR_TEST_FILE",
    "CIFAR_TRAIN_FILES", "cifar_bin_files", "dataset_from_cifar_bin",
]

CIFAR10_CLASS_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]

CIFAR_BIN_DIR = "cifar-10-batches-bin"
CIFAR_PY_DIR = "cifar-10-batches-py"
CIFAR_NPZ = "cifar10.npz"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"
_CIFAR_SIDE = 32
_CIFAR_RECORD = 1 + 3 * _CIFAR_SIDE * _CIFAR_SIDE  # 1 label byte + R, G, B planes (3073 bytes)


def cifar_bin_files(folder: Path) -> list[Path] | None:
    """The CIFAR-10 binary batches of a folder, when all six are there.

    Args:
        folder: a `cifar-10-batches-bin` folder.

    Returns:
        The paths of `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin`, or None when
        any is missing.

    Example:
    ```python
    files = cifar_bin_files(Path("~/.keras/datasets/cifar-10-batches-bin").expanduser())
    ```
    """
    files = [folder / name for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)]
    return files if all(path.is_file() for path in files) else None


def _read_cifar_batch(path: Path, max_records: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Reads records of a CIFAR-10 binary batch: 1 label byte, then R, G, B 32×32 planes."""

    def unreadable(error: OSError) -> DataError:
        return DataError(
            f"CIFAR-10 binary batch {path} could not be read: {error.strerror or error}."
        )

    try:
        size = path.stat().st_size
    except OSError as error:
        raise unreadable(error) from error
    if size == 0 or size % _CIFAR_RECORD:
        raise DataError(
            f"CIFAR-10 binary batch {path} is {size} bytes, not a positive multiple of the "
            f"{_CIFAR_RECORD}-byte record (1 label byte + 3×32×32 pixels): truncated or not a "
            "CIFAR-10 binary batch."
        )
    count = size // _CIFAR_RECORD
    if max_records is not None:
        count = min(count, max_records)
    try:
        with open(path, "rb") as handle:
            data = handle.read(count * _CIFAR_RECORD)
    except OSError as error:
        raise unreadable(error) from error
    if len(data) != count * _CIFAR_RECORD:  # the file shrank while it was read
        raise DataError(
            f"CIFAR-10 binary batch {path} ended after {len(data)} bytes; expected "
            f"{count * _CIFAR_RECORD} (truncated while reading?)."
        )
    raw = np.frombuffer(data, dtype=np.uint8)
    records = raw.reshape(count, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= 10:
        raise DataError(
            f"CIFAR-10 binary batch {path} has label {int(labels.max())}; labels are 0..9 "
            "(is this the CIFAR-100 binary version?)."
        )
    images = records[:, 1:].reshape(count, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
    return images, labels


def dataset_from_cifar_bin(folder: Path, limit: int | None) -> Dataset:
    """Reads CIFAR-10 from its binary batches (never the pickled Python version).

    Args:
        folder: the folder holding the batches (see `cifar_bin_files`).
        limit: keep only the first `limit` samples of each split, or None.

    Returns:
        The `Dataset`: float32 images `(N, 32, 32, 3)` in [0, 1] and the ten class names.

    Raises:
        DataError: for an unreadable or truncated batch.

    Example:
    ```python
    data = dataset_from_cifar_bin(folder, limit=1000)
    ```
    """
    xs, ys = [], []
    remaining = limit
    for name in CIFAR_TRAIN_FILES:
        if remaining is not None and remaining <= 0:
            break
        images, labels = _read_cifar_batch(folder / name, remaining)
        xs.append(images)
        ys.append(labels)
        if remaining is not None:
            remaining -= len(labels)
    x_test, y_test = _read_cifar_batch(folder / CIFAR_TEST_FILE, limit)
    return build_dataset(
        "cifar10",
        scale_images(np.concatenate(xs)),
        np.concatenate(ys),
        scale_images(x_test),
        y_test,
        10,
        CIFAR10_CLASS_NAMES,
        str(folder),
    )
