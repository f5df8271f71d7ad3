"""Data-set loaders: Fashion-MNIST, MNIST, CIFAR-10, CIFAR-100, Iris, digits, the user's arrays.

Every loader returns a validated `Dataset` (`data/dataset.py`). Nothing is downloaded: the
loaders read files that are already on disk (a Debian package, the Keras cache, or a directory the
user names) and, when a data set is missing, raise `DatasetNotFoundError` listing every place
looked in and how to get the data. The file formats are read by `data/formats/` (`idx`, `cifar`,
`npz`). No pickle is ever loaded: NumPy files are read with ``allow_pickle=False`` and CIFAR-10
and CIFAR-100 are read from their binary versions (or an ``.npz``), never from the pickled Python
versions.

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

from sequential_learning.data.dataset import Dataset, build_dataset, head
from sequential_learning.data.errors import DataError, DatasetNotFoundError
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
from sequential_learning.data.formats.idx import (
    IDX_FILES,
    dataset_from_idx,
    find_idx_files,
    idx_note,
)
from sequential_learning.data.formats.npz import MAX_CLASSES, NPZ_KEYS, dataset_from_npz

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


def keras_datasets_dir() -> Path:
    """The Keras cache's data-set folder: ``$KERAS_HOME/datasets``, else ``~/.keras/datasets``.

    Returns:
        The folder's path (it need not exist).
    """
    home = os.environ.get("KERAS_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".keras"
    return base / "datasets"


def _check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        raise DataError(f"limit: {limit!r} is not allowed; expected a positive integer or None.")
    return int(limit)



def _describe(path: Path) -> str:
    return "exists" if path.exists() else "does not exist"


def _not_found(what: str, looked: list[tuple[Path, str]], how: str) -> DatasetNotFoundError:
    lines = [f"{what} not found. Looked in:"]
    lines += [f"  - {path}: {note}" for path, note in looked]
    lines.append(how)
    return DatasetNotFoundError("\n".join(lines), [path for path, _ in looked])



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

    limit = _check_limit(limit)
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

    limit = _check_limit(limit)
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
    limit = _check_limit(limit)
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
    raise _not_found(
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
    limit = _check_limit(limit)
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
        looked.append((path, f"{label}: {_describe(path)}"))
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
    raise _not_found(
        "MNIST",
        looked,
        "To get it: put the four IDX files "
        + ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
        + " in a directory and pass it, or put mnist.npz (keys x_train, y_train, x_test, "
        f"y_test; what keras.datasets.mnist.load_data() downloads) in {keras_datasets_dir()}.",
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
    return _load_cifar(_CIFAR10, directory, _check_limit(limit))


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
    return _load_cifar(_CIFAR100, directory, _check_limit(limit))


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
            note = _describe(folder)
        looked.append((folder, f"{label}, binary files: {note}"))
    for path, label in npz_files:
        if path.is_file():
            return dataset_from_npz(path, version.name, limit, classes, version.classes,
                                    channels=3)
        looked.append((path, f"{label}, npz file: {_describe(path)}"))
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
    raise _not_found(version.title, looked, how)


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
    limit = _check_limit(limit)
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
