"""CIFAR's binary versions: CIFAR-10's six batches and CIFAR-100's two files, never the pickles.

* CIFAR-10 (``cifar-10-batches-bin``): ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
  ``test_batch.bin``; each record is 1 label byte, then the red, green and blue 32×32 planes
  (3073 bytes).
* CIFAR-100 (``cifar-100-binary``): ``train.bin`` and ``test.bin``; each record is 1 coarse-label
  byte (0..19), 1 fine-label byte (0..99), then the three planes (3074 bytes). The fine labels
  are read (the 100 classes of Seq-CIFAR-100).

The Python versions (``cifar-10-batches-py``, ``cifar-100-python``) are made of pickles and are
never read: unpickling runs arbitrary code.

`CIFAR10_MEAN` / `CIFAR10_STD` and `CIFAR100_MEAN` / `CIFAR100_STD` are the per-channel
statistics Mammoth's `seq-cifar10` and `seq-cifar100` normalise with (of the [0, 1] images).

Example:
```python
if cifar_bin_files(folder) is not None:
    data = dataset_from_cifar_bin(folder, limit=256)
if cifar100_bin_files(folder100) is not None:
    data = dataset_from_cifar100_bin(folder100, limit=256)
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sequential_learning.data.dataset import Dataset, build_dataset, scale_images
from sequential_learning.data.errors import DataError

__all__ = [
    "CIFAR100_BIN_DIR", "CIFAR100_CLASS_NAMES", "CIFAR100_FILES", "CIFAR100_MEAN", "CIFAR100_NPZ",
    "CIFAR100_PY_DIR", "CIFAR100_STD", "CIFAR10_CLASS_NAMES", "CIFAR10_MEAN", "CIFAR10_STD",
    "CIFAR_BIN_DIR", "CIFAR_NPZ", "CIFAR_PY_DIR", "CIFAR_TEST_FILE", "CIFAR_TRAIN_FILES",
    "cifar100_bin_files", "cifar_bin_files", "dataset_from_cifar100_bin", "dataset_from_cifar_bin",
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

#: CIFAR-100's fine classes in label order (as ``fine_label_names.txt`` of the binary version).
CIFAR100_CLASS_NAMES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]

#: Mammoth's `seq-cifar10` normalisation (datasets/seq_cifar10.py): per-channel mean and std.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2615)
#: Mammoth's `seq-cifar100` normalisation (datasets/seq_cifar100.py).
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)

CIFAR_BIN_DIR = "cifar-10-batches-bin"
CIFAR_PY_DIR = "cifar-10-batches-py"
CIFAR_NPZ = "cifar10.npz"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"
CIFAR100_BIN_DIR = "cifar-100-binary"
CIFAR100_PY_DIR = "cifar-100-python"
CIFAR100_NPZ = "cifar100.npz"
#: CIFAR-100's binary files: training split, then test split.
CIFAR100_FILES = ("train.bin", "test.bin")
_CIFAR_SIDE = 32
_CIFAR_PIXELS = 3 * _CIFAR_SIDE * _CIFAR_SIDE


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


def cifar100_bin_files(folder: Path) -> list[Path] | None:
    """CIFAR-100's binary files of a folder, when both are there.

    Args:
        folder: a `cifar-100-binary` folder.

    Returns:
        The paths of `train.bin` and `test.bin`, or None when either is missing.

    Example:
    ```python
    files = cifar100_bin_files(Path("~/data/cifar-100-binary").expanduser())
    ```
    """
    files = [folder / name for name in CIFAR100_FILES]
    return files if all(path.is_file() for path in files) else None


def _read_records(path: Path, what: str, label_bytes: int, num_classes: int,
                  max_records: int | None, hint: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads fixed-size records: `label_bytes` label bytes (the last one is the label read),
    then the R, G, B 32×32 planes; returns uint8 images `(N, 32, 32, 3)` and int64 labels."""
    record = label_bytes + _CIFAR_PIXELS

    def unreadable(error: OSError) -> DataError:
        return DataError(f"{what} {path} could not be read: {error.strerror or error}.")

    try:
        size = path.stat().st_size
    except OSError as error:
        raise unreadable(error) from error
    if size == 0 or size % record:
        raise DataError(
            f"{what} {path} is {size} bytes, not a positive multiple of the {record}-byte record "
            f"({label_bytes} label byte{'s' if label_bytes > 1 else ''} + 3×32×32 pixels): "
            f"truncated or not a {what}."
        )
    count = size // record
    if max_records is not None:
        count = min(count, max_records)
    try:
        with open(path, "rb") as handle:
            data = handle.read(count * record)
    except OSError as error:
        raise unreadable(error) from error
    if len(data) != count * record:  # the file shrank while it was read
        raise DataError(
            f"{what} {path} ended after {len(data)} bytes; expected {count * record} (truncated "
            "while reading?)."
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(count, record)
    labels = records[:, label_bytes - 1].astype(np.int64)
    if labels.max() >= num_classes:
        raise DataError(
            f"{what} {path} has label {int(labels.max())}; labels are 0..{num_classes - 1}{hint}."
        )
    images = records[:, label_bytes:].reshape(count, 3, _CIFAR_SIDE, _CIFAR_SIDE)
    return images.transpose(0, 2, 3, 1), labels


def _read_cifar_batch(path: Path, max_records: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Reads records of a CIFAR-10 binary batch: 1 label byte, then R, G, B 32×32 planes."""
    return _read_records(path, "CIFAR-10 binary batch", 1, 10, max_records,
                         " (is this the CIFAR-100 binary version?)")


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


def dataset_from_cifar100_bin(folder: Path, limit: int | None) -> Dataset:
    """Reads CIFAR-100 (fine labels) from its binary files (never the pickled Python version).

    Each record of `train.bin` and `test.bin` is 1 coarse-label byte, 1 fine-label byte and the
    R, G, B 32×32 planes; the fine label (0..99) is the sample's label.

    Args:
        folder: the folder holding `train.bin` and `test.bin` (see `cifar100_bin_files`).
        limit: keep only the first `limit` samples of each split, or None.

    Returns:
        The `Dataset` named `cifar100`: float32 images `(N, 32, 32, 3)` in [0, 1], labels 0..99
        and the hundred fine class names.

    Raises:
        DataError: for an unreadable or truncated file, or a fine label above 99.

    Example:
    ```python
    data = dataset_from_cifar100_bin(folder, limit=1000)
    ```
    """
    what = "CIFAR-100 binary file"
    hint = " (is this the CIFAR-10 binary version, or coarse labels only?)"
    x_train, y_train = _read_records(folder / CIFAR100_FILES[0], what, 2, 100, limit, hint)
    x_test, y_test = _read_records(folder / CIFAR100_FILES[1], what, 2, 100, limit, hint)
    return build_dataset(
        "cifar100",
        scale_images(x_train),
        y_train,
        scale_images(x_test),
        y_test,
        100,
        CIFAR100_CLASS_NAMES,
        str(folder),
    )
