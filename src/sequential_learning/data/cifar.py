"""CIFAR-10 and CIFAR-100 loaders: the binary versions (or an ``.npz``), never the pickled ones.

The binary records are read by `data.formats.cifar`; this module finds the files (a directory
given, else the Keras cache) and, when they are missing, says where it looked and how to get
them (and that a pickled Python version found there is not loaded: unpickling runs arbitrary
code). Both loaders are also `sequential_learning.data.datasets.load_cifar10` / `load_cifar100`.
"""

from __future__ import annotations

import os
from pathlib import Path

from sequential_learning.data.dataset import Dataset
from sequential_learning.data.formats.cifar import (
    CIFAR10_CLASS_NAMES,
    CIFAR100_BIN_DIR,
    CIFAR100_CLASS_NAMES,
    CIFAR100_FILES,
    CIFAR100_NPZ,
    CIFAR100_PY_DIR,
    CIFAR_BIN_DIR,
    CIFAR_NPZ,
    CIFAR_PY_DIR,
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    dataset_from_cifar100_bin,
    dataset_from_cifar_bin,
)
from sequential_learning.data.formats.npz import NPZ_KEYS, dataset_from_npz
from sequential_learning.data.loading import (
    check_limit,
    describe_path,
    keras_datasets_dir,
    not_found,
)


def load_cifar10(
    directory: str | os.PathLike[str] | None = None, limit: int | None = None
) -> Dataset:
    """Loads CIFAR-10 (50,000 + 10,000 colour 32×32 images, 10 classes), never from a pickle.

    Reads the *binary version* (``data_batch_1.bin`` .. ``data_batch_5.bin`` and
    ``test_batch.bin``; each record is 1 label byte then the red, green and blue 32×32 planes),
    or a ``cifar10.npz`` with ``x_train, y_train, x_test, y_test`` (images ``(N, 32, 32, 3)``
    uint8). With ``directory``: the batches in it or in its ``cifar-10-batches-bin`` folder,
    else its ``cifar10.npz``; ``directory`` may also be an npz file. Without it: the Keras cache
    ``$KERAS_HOME/datasets/cifar-10-batches-bin``, then ``$KERAS_HOME/datasets/cifar10.npz``.

    The Python version (``cifar-10-batches-py``, what ``keras.datasets.cifar10`` downloads) is
    made of pickles and is deliberately not read: unpickling runs arbitrary code.

    Args:
        directory: a folder (or npz file) to read, or None to search the Keras cache.
        limit: if given, keep only the first ``limit`` samples of each split (only the records
            needed are read).

    Returns:
        A `Dataset` named ``"cifar10"``: images ``(N, 32, 32, 3)`` (RGB, channels last) in
        ``[0, 1]``, labels 0..9, class names ``airplane`` .. ``truck``.

    Raises:
        DatasetNotFoundError: no binary batches or npz found (the message lists every place
            looked in, and says so if only the pickled Python batches are there).
        DataError: a batch file is truncated or holds labels above 9.

    Example:
    ```python
    >>> data = load_cifar10("~/data/cifar-10-batches-bin", limit=256)
    >>> data.input_shape
    (32, 32, 3)
    ```
    """
    return _load_cifar(_CIFAR10, directory, check_limit(limit))


def load_cifar100(
    directory: str | os.PathLike[str] | None = None, limit: int | None = None
) -> Dataset:
    """Loads CIFAR-100 (50,000 + 10,000 colour 32×32 images, 100 fine classes), never a pickle.

    Reads the *binary version* (``train.bin`` and ``test.bin``; each record is 1 coarse-label
    byte, 1 fine-label byte, then the red, green and blue 32×32 planes; the fine label is kept),
    or a ``cifar100.npz`` with ``x_train, y_train, x_test, y_test`` (images ``(N, 32, 32, 3)``
    uint8, fine labels). With ``directory``: the two files in it or in its ``cifar-100-binary``
    folder, else its ``cifar100.npz``; ``directory`` may also be an npz file. Without it: the
    Keras cache ``$KERAS_HOME/datasets/cifar-100-binary``, then
    ``$KERAS_HOME/datasets/cifar100.npz``.

    The Python version (``cifar-100-python``, what ``keras.datasets.cifar100`` downloads) is
    made of pickles and is deliberately not read: unpickling runs arbitrary code.

    Args:
        directory: a folder (or npz file) to read, or None to search the Keras cache.
        limit: if given, keep only the first ``limit`` samples of each split (only the records
            needed are read).

    Returns:
        A `Dataset` named ``"cifar100"``: images ``(N, 32, 32, 3)`` (RGB, channels last) in
        ``[0, 1]``, labels 0..99, class names ``apple`` .. ``worm``.

    Raises:
        DatasetNotFoundError: neither the binary files nor an npz found (the message lists every
            place looked in, and says so if only the pickled Python version is there).
        DataError: a file is truncated or holds fine labels above 99.

    Example:
    ```python
    >>> data = load_cifar100("~/data/cifar-100-binary", limit=256)
    >>> data.num_classes
    100
    ```
    """
    return _load_cifar(_CIFAR100, directory, check_limit(limit))


class _CifarVersion:
    """What tells CIFAR-10 and CIFAR-100 apart for `_load_cifar`."""

    def __init__(self, name: str, title: str, classes: list[str], bin_dir: str, py_dir: str,
                 npz: str, files: tuple[str, ...], pickled: str, url: str, reader) -> None:
        self.name, self.title, self.classes = name, title, classes
        self.bin_dir, self.py_dir, self.npz, self.files = bin_dir, py_dir, npz, files
        self.pickled, self.url, self.reader = pickled, url, reader


_CIFAR10 = _CifarVersion(
    "cifar10", "CIFAR-10", CIFAR10_CLASS_NAMES, CIFAR_BIN_DIR, CIFAR_PY_DIR, CIFAR_NPZ,
    (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE), "data_batch_1",
    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", dataset_from_cifar_bin)
_CIFAR100 = _CifarVersion(
    "cifar100", "CIFAR-100", CIFAR100_CLASS_NAMES, CIFAR100_BIN_DIR, CIFAR100_PY_DIR,
    CIFAR100_NPZ, CIFAR100_FILES, "train",
    "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", dataset_from_cifar100_bin)


def _load_cifar(version: _CifarVersion, directory, limit: int | None) -> Dataset:
    """`load_cifar10` / `load_cifar100`: the binary files, else the npz, in the usual places."""
    classes = len(version.classes)
    looked: list[tuple[Path, str]] = []
    if directory is not None:
        given = Path(directory).expanduser()
        if given.is_file():
            return dataset_from_npz(given, version.name, limit, classes, version.classes,
                                    channels=3)
        bin_dirs = [(given, "given directory"), (given / version.bin_dir, "given directory")]
        npz_files = [(given / version.npz, "given directory")]
        py_dirs = [given, given / version.py_dir]
    else:
        cache = keras_datasets_dir()
        bin_dirs = [(cache / version.bin_dir, "Keras cache")]
        npz_files = [(cache / version.npz, "Keras cache")]
        py_dirs = [cache / version.py_dir]
    for folder, label in bin_dirs:
        if all((folder / name).is_file() for name in version.files):
            return version.reader(folder, limit)
        if folder.is_dir():
            present = [name for name in version.files if (folder / name).is_file()]
            note = f"incomplete, has only {', '.join(present)}" if present else "no *.bin files"
        else:
            note = describe_path(folder)
        looked.append((folder, f"{label}, binary files: {note}"))
    for path, label in npz_files:
        if path.is_file():
            return dataset_from_npz(path, version.name, limit, classes, version.classes,
                                    channels=3)
        looked.append((path, f"{label}, npz file: {describe_path(path)}"))
    *first, last = version.files
    how = (
        f"To get it: download the {version.title} binary version ({version.url}), extract it "
        f"so that {keras_datasets_dir() / version.bin_dir} (or a directory you pass) holds "
        f"{', '.join(first)} and {last}; or save the arrays as {version.npz} with keys "
        f"{', '.join(NPZ_KEYS)}."
    )
    pickled = [folder for folder in py_dirs if (folder / version.pickled).is_file()]
    if pickled:
        how += (
            f" Found the Python version in {pickled[0]}, but its files are pickles and are "
            "not loaded for safety (unpickling can run arbitrary code). Use the binary version, "
            "or convert once, in a session you trust, to an npz with np.savez(..., x_train=..., "
            "y_train=..., x_test=..., y_test=...)."
        )
    raise not_found(version.title, looked, how)
