"""Data-set loaders: Fashion-MNIST, MNIST, CIFAR-10, Iris, digits and the user's own arrays.

Every loader returns a validated `Dataset`. Nothing is downloaded: the loaders read files that are
already on disk (a Debian package, the Keras cache, or a directory the user names) and, when a
data set is missing, raise `DatasetNotFoundError` listing every place looked in and how to get
the data. No pickle is ever loaded: NumPy files are read with ``allow_pickle=False`` and CIFAR-10
is read from its binary version (or an ``.npz``), never from the pickled Python batches.

Conventions of every `Dataset`:

- ``x`` is float32; images are shaped ``(N, H, W, C)`` (channels last, ``C=1`` for grayscale)
  and scaled to ``[0, 1]``; tabular data is shaped ``(N, F)``.
- ``y`` is int64, one label per sample, in ``0 .. num_classes - 1``.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sequential_learning.data.idx import DataError, read_idx

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DIGIT_CLASS_NAMES",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASS_NAMES",
    "keras_datasets_dir",
    "load_cifar10",
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
DIGIT_CLASS_NAMES = [str(digit) for digit in range(10)]

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# The four IDX files of MNIST and Fashion-MNIST, by role. Each may be plain or end in ".gz";
# some mirrors write "train-images.idx3-ubyte" (a dot instead of the second hyphen).
_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

_CIFAR_BIN_DIR = "cifar-10-batches-bin"
_CIFAR_PY_DIR = "cifar-10-batches-py"
_CIFAR_NPZ = "cifar10.npz"
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST_FILE = "test_batch.bin"
_CIFAR_SIDE = 32
_CIFAR_RECORD = 1 + 3 * _CIFAR_SIDE * _CIFAR_SIDE  # 1 label byte + R, G, B planes (3073 bytes)


class DatasetNotFoundError(DataError):
    """A data set is not on disk in any of the places looked in.

    Attributes:
        searched: the paths looked in, in order.
    """

    def __init__(self, message: str, searched: Sequence[Path]):
        super().__init__(message)
        self.searched = list(searched)


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

    >>> data = Dataset("toy", np.zeros((4, 2)), np.array([0, 1, 0, 1]),
    ...                np.zeros((2, 2)), np.array([1, 0]), num_classes=2)
    >>> data.input_shape
    (2,)
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


def _head(array: np.ndarray, limit: int | None) -> np.ndarray:
    return array if limit is None else array[:limit]


def _scale_images(x: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], with a channel axis added to (N, H, W)."""
    x = x.astype(np.float32) / np.float32(255.0)
    return x[..., np.newaxis] if x.ndim == 3 else x


def _describe(path: Path) -> str:
    return "exists" if path.exists() else "does not exist"


def _not_found(what: str, looked: list[tuple[Path, str]], how: str) -> DatasetNotFoundError:
    lines = [f"{what} not found. Looked in:"]
    lines += [f"  - {path}: {note}" for path, note in looked]
    lines.append(how)
    return DatasetNotFoundError("\n".join(lines), [path for path, _ in looked])


def _find_idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The IDX files of an MNIST-layout directory, and the names of any that are missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, stem in _IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        candidates = [stem, stem + ".gz", dotted, dotted + ".gz"]
        for candidate in candidates:
            if (directory / candidate).is_file():
                found[role] = directory / candidate
                break
        else:
            missing.append(f"{stem}[.gz]")
    return found, missing


def _idx_note(directory: Path, missing: list[str]) -> str:
    if not directory.is_dir():
        return "directory does not exist" if not directory.exists() else "not a directory"
    if len(missing) == len(_IDX_FILES):
        return "no IDX files there"
    return "incomplete, missing " + ", ".join(missing)


def _load_idx_split(
    files: dict[str, Path], split: str, limit: int | None, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = files[f"x_{split}"], files[f"y_{split}"]
    # uint8 images (N, rows, cols): magic 0x00000803; labels (N,) of any integer type: 0x0000TT01.
    images = read_idx(images_path, expect_type=0x08, expect_ndim=3)
    labels = read_idx(labels_path, expect_ndim=1)
    if labels.dtype.kind not in "iu":
        raise DataError(
            f"IDX file {labels_path} holds {labels.dtype} values; expected integer class labels "
            "(type code 0x08)."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise DataError(
            f"IDX file {labels_path} holds labels out of range 0..{num_classes - 1}: "
            f"{len(bad)} of them, for example {int(bad[0])}."
        )
    if len(images) != len(labels):
        raise DataError(
            f"The {split} split does not match: {images_path} holds {len(images)} images but "
            f"{labels_path} holds {len(labels)} labels."
        )
    return _scale_images(_head(images, limit)), _head(labels, limit)


def _dataset_from_idx(
    name: str,
    files: dict[str, Path],
    directory: Path,
    num_classes: int,
    class_names: list[str],
    limit: int | None,
) -> Dataset:
    x_train, y_train = _load_idx_split(files, "train", limit, num_classes)
    x_test, y_test = _load_idx_split(files, "test", limit, num_classes)
    return _build(name, x_train, y_train, x_test, y_test, num_classes, class_names, str(directory))


def _build(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    class_names: list[str] | None,
    source: str,
) -> Dataset:
    """Builds a Dataset, naming the source in any validation error."""
    try:
        return Dataset(
            name, x_train, y_train, x_test, y_test, num_classes, class_names, source=source
        )
    except DataError as error:
        message = str(error).removeprefix(f"{name}: ")
        raise DataError(f"{source}: {message}") from error


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


def _dataset_from_npz(
    path: Path,
    name: str,
    limit: int | None,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    channels: int | None = None,
) -> Dataset:
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
        x = _head(arrays[f"x_{split}"], limit)
        if x.dtype == np.uint8:
            x = _scale_images(x)
        elif x.ndim == 3:
            x = x[..., np.newaxis]
        xs[split] = x
    return _build(
        name,
        xs["train"],
        _head(arrays["y_train"], limit),
        xs["test"],
        _head(arrays["y_test"], limit),
        num_classes,
        class_names,
        str(path),
    )


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

    >>> data = load_digits(limit=100)
    >>> data.x_train.shape, data.num_classes
    ((100, 8, 8, 1), 10)
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    limit = _check_limit(limit)
    bunch = sklearn_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    x_train, y_train, x_test, y_test = _split_features(images, bunch.target, test_fraction, seed)
    return _build(
        "digits",
        _head(x_train, limit),
        _head(y_train, limit),
        _head(x_test, limit),
        _head(y_test, limit),
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

    >>> data = load_iris()
    >>> data.input_shape, data.class_names
    ((4,), ['setosa', 'versicolor', 'virginica'])
    """
    from sklearn.datasets import load_iris as sklearn_load_iris

    limit = _check_limit(limit)
    bunch = sklearn_load_iris()
    x_train, y_train, x_test, y_test = _split_features(
        bunch.data.astype(np.float64), bunch.target, test_fraction, seed
    )
    x_train, y_train = _head(x_train, limit), _head(y_train, limit)
    x_test, y_test = _head(x_test, limit), _head(y_test, limit)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return _build(
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

    >>> data = load_fashion_mnist(limit=1000)
    >>> data.x_train.shape, data.class_names[9]
    ((1000, 28, 28, 1), 'Ankle boot')
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
        files, missing = _find_idx_files(candidate)
        if not missing:
            return _dataset_from_idx(
                "fashion-mnist", files, candidate, 10, FASHION_MNIST_CLASS_NAMES, limit
            )
        looked.append((candidate, f"{label}: {_idx_note(candidate, missing)}"))
    raise _not_found(
        "Fashion-MNIST",
        looked,
        "To get it: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs into "
        f"{DEBIAN_FASHION_MNIST_DIR}), or pass a directory holding the four IDX files "
        + ", ".join(f"{stem}[.gz]" for stem in _IDX_FILES.values())
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

    >>> data = load_mnist("~/data/mnist", limit=500)
    >>> data.input_shape
    (28, 28, 1)
    """
    limit = _check_limit(limit)
    looked: list[tuple[Path, str]] = []

    def try_idx(folder: Path, label: str) -> Dataset | None:
        files, missing = _find_idx_files(folder)
        if not missing:
            return _dataset_from_idx("mnist", files, folder, 10, DIGIT_CLASS_NAMES, limit)
        looked.append((folder, f"{label}: {_idx_note(folder, missing)}"))
        return None

    def try_npz(path: Path, label: str) -> Dataset | None:
        if path.is_file():
            return _dataset_from_npz(path, "mnist", limit, 10, DIGIT_CLASS_NAMES, channels=1)
        looked.append((path, f"{label}: {_describe(path)}"))
        return None

    attempts: list[Callable[[], Dataset | None]]
    if directory is not None:
        given = Path(directory).expanduser()
        if given.is_file():
            return _dataset_from_npz(given, "mnist", limit, 10, DIGIT_CLASS_NAMES, channels=1)
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
        + ", ".join(f"{stem}[.gz]" for stem in _IDX_FILES.values())
        + " in a directory and pass it, or put mnist.npz (keys x_train, y_train, x_test, "
        f"y_test; what keras.datasets.mnist.load_data() downloads) in {keras_datasets_dir()}.",
    )


def _cifar_bin_files(folder: Path) -> list[Path] | None:
    files = [folder / name for name in (*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE)]
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


def _dataset_from_cifar_bin(folder: Path, limit: int | None) -> Dataset:
    xs, ys = [], []
    remaining = limit
    for name in _CIFAR_TRAIN_FILES:
        if remaining is not None and remaining <= 0:
            break
        images, labels = _read_cifar_batch(folder / name, remaining)
        xs.append(images)
        ys.append(labels)
        if remaining is not None:
            remaining -= len(labels)
    x_test, y_test = _read_cifar_batch(folder / _CIFAR_TEST_FILE, limit)
    return _build(
        "cifar10",
        _scale_images(np.concatenate(xs)),
        np.concatenate(ys),
        _scale_images(x_test),
        y_test,
        10,
        CIFAR10_CLASS_NAMES,
        str(folder),
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

    >>> data = load_cifar10("~/data/cifar-10-batches-bin", limit=256)
    >>> data.input_shape
    (32, 32, 3)
    """
    limit = _check_limit(limit)
    looked: list[tuple[Path, str]] = []
    if directory is not None:
        given = Path(directory).expanduser()
        if given.is_file():
            return _dataset_from_npz(given, "cifar10", limit, 10, CIFAR10_CLASS_NAMES, channels=3)
        bin_dirs = [(given, "given directory"), (given / _CIFAR_BIN_DIR, "given directory")]
        npz_files = [(given / _CIFAR_NPZ, "given directory")]
        py_dirs = [given, given / _CIFAR_PY_DIR]
    else:
        cache = keras_datasets_dir()
        bin_dirs = [(cache / _CIFAR_BIN_DIR, "Keras cache")]
        npz_files = [(cache / _CIFAR_NPZ, "Keras cache")]
        py_dirs = [cache / _CIFAR_PY_DIR]
    for folder, label in bin_dirs:
        if _cifar_bin_files(folder) is not None:
            return _dataset_from_cifar_bin(folder, limit)
        if folder.is_dir():
            present = [
                name
                for name in (*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE)
                if (folder / name).is_file()
            ]
            note = f"incomplete, has only {', '.join(present)}" if present else "no *.bin batches"
        else:
            note = _describe(folder)
        looked.append((folder, f"{label}, binary batches: {note}"))
    for path, label in npz_files:
        if path.is_file():
            return _dataset_from_npz(path, "cifar10", limit, 10, CIFAR10_CLASS_NAMES, channels=3)
        looked.append((path, f"{label}, npz file: {_describe(path)}"))
    how = (
        "To get it: download the CIFAR-10 binary version "
        "(https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz), extract it so that "
        f"{keras_datasets_dir() / _CIFAR_BIN_DIR} (or a directory you pass) holds "
        f"{', '.join(_CIFAR_TRAIN_FILES)} and {_CIFAR_TEST_FILE}; or save the arrays as "
        f"{_CIFAR_NPZ} with keys {', '.join(NPZ_KEYS)}."
    )
    pickled = [folder for folder in py_dirs if (folder / "data_batch_1").is_file()]
    if pickled:
        how += (
            f" Found the Python version in {pickled[0]}, but its batches are pickles and are "
            "not loaded for safety (unpickling can run arbitrary code). Use the binary version, "
            "or convert once, in a session you trust, to an npz with np.savez(..., x_train=..., "
            "y_train=..., x_test=..., y_test=...)."
        )
    raise _not_found("CIFAR-10", looked, how)


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

    >>> np.savez("mine.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    >>> data = load_npz("mine.npz")
    """
    limit = _check_limit(limit)
    return _dataset_from_npz(Path(path).expanduser(), name, limit)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "iris": load_iris,
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "npz": load_npz,
}
_ALIASES = {"cifar-10": "cifar10", "fashion": "fashion-mnist", "fmnist": "fashion-mnist"}

#: The names `load_dataset` knows.
DATASET_NAMES = tuple(_LOADERS)


def load_dataset(
    name: str, directory: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Dataset:
    """Loads a data set by name.

    Args:
        name: one of ``digits, iris, fashion-mnist, mnist, cifar10, npz`` (case and ``_`` vs
            ``-`` do not matter).
        directory: where to read from: the folder for ``fashion-mnist``, ``mnist`` and
            ``cifar10`` (None searches the default places), the file for ``npz`` (required).
            ``digits`` and ``iris`` are embedded in scikit-learn and take no directory.
        **kwargs: passed to the loader, e.g. ``limit=1000`` or, for digits and iris,
            ``test_fraction=0.25, seed=1``.

    Returns:
        The loaded `Dataset`.

    Raises:
        DataError: unknown name (the message lists the known ones), a directory given to an
            embedded data set, no path for ``npz``, or any loader error.

    Example:

    >>> data = load_dataset("fashion-mnist", limit=2000)
    >>> data = load_dataset("npz", "mine.npz")
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
