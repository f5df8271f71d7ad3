"""Data-set loaders: Fashion-MNIST, MNIST, CIFAR-10, CIFAR-100, Iris, digits, the user's arrays.

Every loader returns a validated `Dataset` (`data/dataset.py`). Nothing is downloaded: the
loaders read files that are already on disk (a Debian package, the Keras cache, or a directory the
user names) and, when a data set is missing, raise `DatasetNotFoundError` listing every place
looked in and how to get the data. The file formats are read by `data/formats/` (`idx`, `cifar`,
`npz`); the CIFAR loaders are `data/cifar.py`, and what every loader shares (the Keras cache, the
`limit` check, the not-found message) is `data/loading.py`. No pickle is ever loaded: NumPy files
are read with ``allow_pickle=False`` and CIFAR-10 and CIFAR-100 are read from their binary
versions (or an ``.npz``), never from the pickled Python versions.

Conventions of every `Dataset`:

- ``x`` is float32; images are shaped ``(N, H, W, C)`` (channels last, ``C=1`` for grayscale)
  and scaled to ``[0, 1]``; tabular data is shaped ``(N, F)``.
- ``y`` is int64, one label per sample, in ``0 .. num_classes - 1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sequential_learning.data.cifar import load_cifar10, load_cifar100
from sequential_learning.data.dataset import Dataset, build_dataset, head
from sequential_learning.data.errors import DataError, DatasetNotFoundError
from sequential_learning.data.formats.cifar import CIFAR10_CLASS_NAMES, CIFAR100_CLASS_NAMES
from sequential_learning.data.formats.idx import (
    IDX_FILES,
    dataset_from_idx,
    find_idx_files,
    idx_note,
)
from sequential_learning.data.formats.npz import MAX_CLASSES, dataset_from_npz
from sequential_learning.data.loading import (
    check_limit,
    describe_path,
    keras_datasets_dir,
    not_found,
)

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "CIFAR100_CLASS_NAMES",
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DIGIT_CLASS_NAMES",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASS_NAMES",
    "keras_datasets_dir",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_iris",
    "load_mnist",
    "load_npz",
    "MAX_CLASSES",
]

#: Where the Debian package ``dataset-fashion-mnist`` installs its four gzip-compressed IDX files.
#: Read at call time, so tests may point it elsewhere.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGIT_CLASS_NAMES = [str(digit) for digit in range(10)]


# ----------------------------------------------------------------------------------------------
# Helpers


def _split_features(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}.")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=float(test_fraction), random_state=seed, stratify=y
    )
    return x_train, y_train, x_test, y_test


# ----------------------------------------------------------------------------------------------
# Loaders


def load_digits(test_fraction: float = 0.2, seed: int = 0, limit: int | None = None) -> Dataset:
    """Loads scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes; no download).

    Args:
        test_fraction: the share of samples held out for the test split, in (0, 1).
        seed: the seed of the stratified split (same seed, same split).
        limit: if given, keep only the first ``limit`` samples of each split.

    Returns:
        A `Dataset` named ``"digits"`` with images shaped ``(N, 8, 8, 1)`` scaled from 0..16 to
        ``[0, 1]``, labels 0..9 and class names ``"0"`` .. ``"9"``.

    Example:
    ```python
    >>> data = load_digits(limit=100)
    >>> data.x_train.shape, data.num_classes
    ((100, 8, 8, 1), 10)
    ```
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    limit = check_limit(limit)
    bunch = sklearn_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    x_train, y_train, x_test, y_test = _split_features(images, bunch.target, test_fraction, seed)
    return build_dataset(
        "digits",
        head(x_train, limit),
        head(y_train, limit),
        head(x_test, limit),
        head(y_test, limit),
        10,
        DIGIT_CLASS_NAMES,
        "sklearn.datasets.load_digits",
    )


def load_iris(test_fraction: float = 0.2, seed: int = 0, limit: int | None = None) -> Dataset:
    """Loads scikit-learn's Iris flowers (150 samples, 4 features, 3 classes; no download).

    The features are standardised with the mean and standard deviation of the training split
    (after ``limit``), so no test statistics leak into training.

    Args:
        test_fraction: the share of samples held out for the test split, in (0, 1).
        seed: the seed of the stratified split.
        limit: if given, keep only the first ``limit`` samples of each split.

    Returns:
        A tabular `Dataset` named ``"iris"``: ``x`` shaped ``(N, 4)``, labels 0..2, class names
        ``setosa``, ``versicolor``, ``virginica``.

    Example:
    ```python
    >>> data = load_iris()
    >>> data.input_shape, data.class_names
    ((4,), ['setosa', 'versicolor', 'virginica'])
    ```
    """
    from sklearn.datasets import load_iris as sklearn_load_iris

    limit = check_limit(limit)
    bunch = sklearn_load_iris()
    x_train, y_train, x_test, y_test = _split_features(
        bunch.data.astype(np.float64), bunch.target, test_fraction, seed
    )
    x_train, y_train = head(x_train, limit), head(y_train, limit)
    x_test, y_test = head(x_test, limit), head(y_test, limit)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return build_dataset(
        "iris",
        (x_train - mean) / std,
        y_train,
        (x_test - mean) / std,
        y_test,
        3,
        [str(name) for name in bunch.target_names],
        "sklearn.datasets.load_iris",
    )


def load_fashion_mnist(
    directory: str | os.PathLike[str] | None = None, limit: int | None = None
) -> Dataset:
    """Loads Fashion-MNIST (60,000 + 10,000 grayscale 28×28 images of clothes, 10 classes).

    Reads the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``). Looks in
    ``directory`` if given (and nowhere else); otherwise in the Debian package's folder
    ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``), then in
    the Keras cache ``$KERAS_HOME/datasets/fashion-mnist`` (default ``~/.keras``).

    Args:
        directory: a folder holding the four IDX files, or None to search the default places.
        limit: if given, keep only the first ``limit`` samples of each split.

    Returns:
        A `Dataset` named ``"fashion-mnist"``: images ``(N, 28, 28, 1)`` in ``[0, 1]``, labels
        0..9, class names ``T-shirt/top`` .. ``Ankle boot``.

    Raises:
        DatasetNotFoundError: no folder with the four files; the message lists every place
            looked in and how to get the data.
        DataError: a file is corrupt, truncated or inconsistent with its partner.

    Example:
    ```python
    >>> data = load_fashion_mnist(limit=1000)
    >>> data.x_train.shape, data.class_names[9]
    ((1000, 28, 28, 1), 'Ankle boot')
    ```
    """
    limit = check_limit(limit)
    if directory is not None:
        candidates = [(Path(directory).expanduser(), "given directory")]
    else:
        candidates = [
            (DEBIAN_FASHION_MNIST_DIR, "Debian package dataset-fashion-mnist"),
            (keras_datasets_dir() / "fashion-mnist", "Keras cache"),
        ]
    looked: list[tuple[Path, str]] = []
    for candidate, label in candidates:
        files, missing = find_idx_files(candidate)
        if not missing:
            return dataset_from_idx(
                "fashion-mnist", files, candidate, 10, FASHION_MNIST_CLASS_NAMES, limit
            )
        looked.append((candidate, f"{label}: {idx_note(candidate, missing)}"))
    raise not_found(
        "Fashion-MNIST",
        looked,
        "To get it: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs into "
        f"{DEBIAN_FASHION_MNIST_DIR}), or pass a directory holding the four IDX files "
        + ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
        + " (from https://github.com/zalandoresearch/fashion-mnist).",
    )


def load_mnist(
    directory: str | os.PathLike[str] | None = None, limit: int | None = None
) -> Dataset:
    """Loads MNIST (60,000 + 10,000 grayscale 28×28 handwritten digits, 10 classes).

    With ``directory``: the four IDX files there (``train-images-idx3-ubyte[.gz]`` etc.), else
    ``mnist.npz`` there; ``directory`` may also be the path of an npz file. Without it: the Keras
    cache file ``$KERAS_HOME/datasets/mnist.npz`` (default ``~/.keras``), then IDX files in
    ``$KERAS_HOME/datasets/mnist``. An npz must hold ``x_train, y_train, x_test, y_test`` as
    written by ``keras.datasets.mnist``.

    Args:
        directory: a folder (or npz file) to read, or None to search the Keras cache.
        limit: if given, keep only the first ``limit`` samples of each split.

    Returns:
        A `Dataset` named ``"mnist"``: images ``(N, 28, 28, 1)`` in ``[0, 1]``, labels 0..9.

    Raises:
        DatasetNotFoundError: neither IDX files nor ``mnist.npz`` were found; the message lists
            every place looked in.
        DataError: a file is corrupt, truncated or inconsistent.

    Example:
    ```python
    >>> data = load_mnist("~/data/mnist", limit=500)
    >>> data.input_shape
    (28, 28, 1)
    ```
    """
    limit = check_limit(limit)
    looked: list[tuple[Path, str]] = []

    def try_idx(folder: Path, label: str) -> Dataset | None:
        files, missing = find_idx_files(folder)
        if not missing:
            return dataset_from_idx("mnist", files, folder, 10, DIGIT_CLASS_NAMES, limit)
        looked.append((folder, f"{label}: {idx_note(folder, missing)}"))
        return None

    def try_npz(path: Path, label: str) -> Dataset | None:
        if path.is_file():
            return dataset_from_npz(path, "mnist", limit, 10, DIGIT_CLASS_NAMES, channels=1)
        looked.append((path, f"{label}: {describe_path(path)}"))
        return None

    attempts: list[Callable[[], Dataset | None]]
    if directory is not None:
        given = Path(directory).expanduser()
        if given.is_file():
            return dataset_from_npz(given, "mnist", limit, 10, DIGIT_CLASS_NAMES, channels=1)
        attempts = [
            lambda: try_idx(given, "given directory, IDX files"),
            lambda: try_npz(given / "mnist.npz", "given directory, npz file"),
        ]
    else:
        cache = keras_datasets_dir()
        attempts = [
            lambda: try_npz(cache / "mnist.npz", "Keras cache"),
            lambda: try_idx(cache / "mnist", "Keras cache, IDX files"),
        ]
    for attempt in attempts:
        data = attempt()
        if data is not None:
            return data
    raise not_found(
        "MNIST",
        looked,
        "To get it: put the four IDX files "
        + ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
        + " in a directory and pass it, or put mnist.npz (keys x_train, y_train, x_test, "
        f"y_test; what keras.datasets.mnist.load_data() downloads) in {keras_datasets_dir()}.",
    )


def load_npz(path: str | os.PathLike[str], limit: int | None = None, name: str = "npz") -> Dataset:
    """Loads the user's own arrays from an ``.npz`` file (never with pickle).

    The file must hold ``x_train, y_train, x_test, y_test``; it may also hold ``class_names``
    (a 1-d string array). ``uint8`` inputs are treated as images and scaled to ``[0, 1]``;
    ``(N, H, W)`` inputs get a channel axis; other inputs are cast to float32 as they are.

    Args:
        path: the npz file, as written by ``np.savez`` or ``np.savez_compressed``.
        limit: if given, keep only the first ``limit`` samples of each split.
        name: the `Dataset`'s name.

    Returns:
        A `Dataset` whose ``num_classes`` is the largest label (of both splits, before
        ``limit``) plus one, or the number of class names if that is larger.

    Raises:
        DataError: the file is missing or not an npz, a key is missing (the message names the
            key and lists the keys found), an array is an object array, x and y lengths
            differ, or labels are not integers.

    Example:
    ```python
    >>> np.savez("mine.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    >>> data = load_npz("mine.npz")
    ```
    """
    limit = check_limit(limit)
    return dataset_from_npz(Path(path).expanduser(), name, limit)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "iris": load_iris,
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "npz": load_npz,
}
_ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "fashion": "fashion-mnist", "fmnist": "fashion-mnist"}

#: The names `load_dataset` knows.
DATASET_NAMES = tuple(_LOADERS)


def load_dataset(
    name: str, directory: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Dataset:
    """Loads a data set by name.

    Args:
        name: one of ``digits, iris, fashion-mnist, mnist, cifar10, cifar100, npz`` (case and
            ``_`` vs ``-`` do not matter).
        directory: where to read from: the folder for ``fashion-mnist``, ``mnist``, ``cifar10``
            and ``cifar100`` (None searches the default places), the file for ``npz`` (required).
            ``digits`` and ``iris`` are embedded in scikit-learn and take no directory.
        **kwargs: passed to the loader, e.g. ``limit=1000`` or, for digits and iris,
            ``test_fraction=0.25, seed=1``.

    Returns:
        The loaded `Dataset`.

    Raises:
        DataError: unknown name (the message lists the known ones), a directory given to an
            embedded data set, no path for ``npz``, or any loader error.

    Example:
    ```python
    >>> data = load_dataset("fashion-mnist", limit=2000)
    >>> data = load_dataset("npz", "mine.npz")
    ```
    """
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _LOADERS:
        raise DataError(f"Unknown data set {name!r}; known data sets: {', '.join(DATASET_NAMES)}.")
    loader = _LOADERS[key]
    if key in ("digits", "iris"):
        if directory is not None:
            raise DataError(
                f"The {key} data set is embedded in scikit-learn and takes no directory "
                f"(got {directory!r})."
            )
        return loader(**kwargs)
    if key == "npz":
        if directory is None:
            raise DataError("The npz data set needs a path: load_dataset('npz', 'FILE.npz').")
        return loader(directory, **kwargs)
    return loader(directory, **kwargs)
