"""Reader and writer for the IDX format (MNIST, Fashion-MNIST), gzip-compressed or plain.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
``uint32`` dimensions, then the items in row-major (C) order, big-endian. Compression is detected
from the file's first bytes (the gzip magic ``0x1f 0x8b``), never from its name.

The four files of an MNIST-layout directory (`find_idx_files`) are read into a `Dataset` by
`dataset_from_idx`.

Example:
```python
write_idx("labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8), gzip=True)
read_idx("labels-idx1-ubyte.gz", expect_ndim=1)
```
"""

from __future__ import annotations

import gzip as _gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from sequential_learning.data.dataset import Dataset, build_dataset, head, scale_images
from sequential_learning.data.errors import DataError

__all__ = [
    "IDX_FILES", "IDX_TYPES", "MAX_IDX_BYTES", "dataset_from_idx", "find_idx_files", "idx_note",
    "read_idx", "write_idx",
]

#: IDX type code -> big-endian NumPy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
#: The most data an IDX header may declare (1 TiB); more means the bytes are not an IDX header.
MAX_IDX_BYTES = 1 << 40
_MAX_NDIM = 255


def _type_name(code: int) -> str:
    return f"0x{code:02X}"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file {path} does not exist.") from None
    except OSError as error:
        raise DataError(f"IDX file {path} could not be read: {error}") from error
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return _gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(
            f"IDX file {path} starts with the gzip magic bytes but is not a valid gzip stream "
            f"(truncated or corrupt download?): {error}"
        ) from error


def _magic_text(data: bytes) -> str:
    return "0x" + data[:4].hex().upper()


def _expected_magic(expect_type: int | None, expect_ndim: int | None) -> str:
    type_text = "TT" if expect_type is None else f"{expect_type:02X}"
    ndim_text = "DD" if expect_ndim is None else f"{expect_ndim:02X}"
    return f"0x0000{type_text}{ndim_text}"


def _shape_text(dims: tuple[int, ...]) -> str:
    if len(dims) <= 6:
        return str(dims)
    return f"({', '.join(str(d) for d in dims[:4])}, ... {len(dims)} dimensions)"


def read_idx(
    path: str | os.PathLike[str],
    *,
    expect_type: int | None = None,
    expect_ndim: int | None = None,
) -> np.ndarray:
    """Reads an IDX file (gzip-compressed or plain) into a NumPy array.

    The header is validated: the magic number must start with two zero bytes, the type code must
    be one of ``0x08`` (uint8), ``0x09`` (int8), ``0x0B`` (int16), ``0x0C`` (int32), ``0x0D``
    (float32), ``0x0E`` (float64), there must be at least one dimension, and the data after the
    header must be exactly ``prod(dims) * itemsize`` bytes long. A header that declares more
    than `MAX_IDX_BYTES` of data is not taken for a truncated file: it is reported as not an IDX
    file at all.

    Args:
        path: the file to read. Gzip compression is detected from the content, so
            ``train-images-idx3-ubyte`` may be compressed and ``x.gz`` may be plain.
        expect_type: the type code the caller needs (e.g. ``0x08`` for MNIST images), or None
            to accept any.
        expect_ndim: the number of dimensions the caller needs (3 for images, 1 for labels),
            or None to accept any. Checked from the magic number, before the data is read, so
            a file of the wrong kind is named as such instead of as truncated.

    Returns:
        An array shaped by the header's dimensions, in native byte order, with the dtype given
        by the type code (for example ``uint8`` for MNIST images and labels). The array owns
        its memory and is writable.

    Raises:
        DataError: the file is missing, not valid gzip, has a bad magic number (or not the
            expected one), an unknown type code, no dimensions, or a payload that is shorter or
            longer than the header says. The message names the file, and for a bad magic
            number both the number found and the one expected (``0x0000TTDD``: type code TT,
            DD dimensions); for a length mismatch, both byte counts.

    Example:
    ```python
    >>> images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
    ...                   expect_type=0x08, expect_ndim=3)
    >>> images.shape, images.dtype
    ((10000, 28, 28), dtype('uint8'))
    ```
    """
    path = Path(path)
    data = _read_bytes(path)
    expected_magic = _expected_magic(expect_type, expect_ndim)
    if len(data) < 4:
        raise DataError(
            f"IDX file {path} is too short for an IDX header: {len(data)} bytes, "
            f"expected at least 4 (magic number {expected_magic})."
        )
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"{path} is not an IDX file: magic number {_magic_text(data)} (expected "
            f"{expected_magic}: two zero bytes, type code TT, DD dimensions)."
        )
    if type_code not in IDX_TYPES:
        known = ", ".join(_type_name(code) for code in IDX_TYPES)
        raise DataError(
            f"{path} is not an IDX file: magic number {_magic_text(data)} has unknown type code "
            f"{_type_name(type_code)} (expected {expected_magic}; known codes: {known})."
        )
    if (expect_type is not None and type_code != expect_type) or (
        expect_ndim is not None and ndim != expect_ndim
    ):
        found = IDX_TYPES[type_code].newbyteorder("=").name
        wanted = [IDX_TYPES[expect_type].newbyteorder("=").name] if expect_type in IDX_TYPES else []
        if expect_ndim is not None:
            wanted.append(f"{expect_ndim} dimension(s)")
        raise DataError(
            f"{path} is not the expected IDX file: magic number {_magic_text(data)} means "
            f"{found}, {ndim} dimension(s) (expected {expected_magic}: {', '.join(wanted)})."
        )
    if ndim == 0:
        raise DataError(
            f"{path} is not an IDX file: magic number {_magic_text(data)} declares 0 "
            f"dimensions (expected {expected_magic} with DD at least 01)."
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"IDX file {path} is truncated inside its header: it declares {ndim} dimensions, "
            f"so the header is {header_size} bytes, but the file holds only {len(data)} bytes."
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header_size
    if expected > MAX_IDX_BYTES:
        raise DataError(
            f"{path} is not an IDX file: magic number {_magic_text(data)} and dimensions "
            f"{_shape_text(dims)} declare {expected} bytes of data (expected {expected_magic} "
            f"and at most {MAX_IDX_BYTES} bytes); the file holds {actual}."
        )
    if actual != expected:
        kind = "truncated" if actual < expected else "over-long"
        raise DataError(
            f"IDX file {path} is {kind}: the header declares shape {_shape_text(dims)} of "
            f"{dtype.newbyteorder('=').name} ({dtype.itemsize} byte(s) each), so {expected} "
            f"bytes of data are expected after the {header_size}-byte header, but {actual} "
            "bytes were found."
        )
    flat = np.frombuffer(data, dtype=dtype, offset=header_size)
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, gzip: bool = False) -> Path:
    """Writes an array as an IDX file, optionally gzip-compressed.

    Args:
        path: where to write. The name is not inspected; pass ``gzip=True`` for compression.
        array: at least one dimension, dtype one of uint8, int8, int16, int32, float32 or
            float64 (the types IDX can hold). Each dimension must fit in an unsigned 32-bit
            integer.
        gzip: if True, compress the file with gzip (deterministic: no time stamp).

    Returns:
        The path written, as a ``Path``.

    Raises:
        TypeError: the array's dtype has no IDX type code.
        ValueError: the array is 0-dimensional, has more than 255 dimensions, or a dimension
            too large for IDX.

    Example:
    ```python
    >>> labels = np.array([3, 1, 4], dtype=np.uint8)
    >>> write_idx("labels-idx1-ubyte.gz", labels, gzip=True)
    PosixPath('labels-idx1-ubyte.gz')
    >>> read_idx("labels-idx1-ubyte.gz")
    array([3, 1, 4], dtype=uint8)
    ```
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        known = ", ".join(dtype.name for dtype in codes)
        raise TypeError(f"IDX cannot hold dtype {array.dtype}; supported dtypes: {known}.")
    if not 1 <= array.ndim <= _MAX_NDIM:
        raise ValueError(
            f"IDX needs between 1 and {_MAX_NDIM} dimensions; the array has {array.ndim}."
        )
    if any(d > 0xFFFFFFFF for d in array.shape):
        raise ValueError(f"Array shape {array.shape} has a dimension too large for IDX.")
    header = (
        bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    )
    payload = header + np.ascontiguousarray(array, dtype=IDX_TYPES[codes[native]]).tobytes()
    if gzip:
        payload = _gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


# The four IDX files of MNIST and Fashion-MNIST, by role. Each may be plain or end in ".gz";
# some mirrors write "train-images.idx3-ubyte" (a dot instead of the second hyphen).
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def find_idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The IDX files of an MNIST-layout directory, and the names of any that are missing.

    Plain or gzipped files, named with `-idx` or `.idx` (`train-images-idx3-ubyte.gz`, ...).

    Args:
        directory: the folder to look in.

    Returns:
        `(found, missing)`: `{role: path}` for the files found (roles `train_images`,
        `train_labels`, `test_images`, `test_labels`) and the names of those missing.

    Example:
    ```python
    found, missing = find_idx_files(Path("/usr/share/datasets/fashion-mnist"))
    ```
    """
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, stem in IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        candidates = [stem, stem + ".gz", dotted, dotted + ".gz"]
        for candidate in candidates:
            if (directory / candidate).is_file():
                found[role] = directory / candidate
                break
        else:
            missing.append(f"{stem}[.gz]")
    return found, missing


def idx_note(directory: Path, missing: list[str]) -> str:
    """Why a folder did not serve as an IDX data set, for the not-found message.

    Args:
        directory: the folder looked in.
        missing: the files `find_idx_files` found missing.

    Returns:
        A few words: "directory does not exist", "no IDX files there" or what is missing.

    Example:
    ```python
    idx_note(Path("/nowhere"), [])   # "directory does not exist"
    ```
    """
    if not directory.is_dir():
        return "directory does not exist" if not directory.exists() else "not a directory"
    if len(missing) == len(IDX_FILES):
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
    return scale_images(head(images, limit)), head(labels, limit)


def dataset_from_idx(
    name: str,
    files: dict[str, Path],
    directory: Path,
    num_classes: int,
    class_names: list[str],
    limit: int | None,
) -> Dataset:
    """Reads an MNIST-layout data set from its IDX files.

    Args:
        name: the data set's name.
        files: `{role: path}`, as `find_idx_files` returns.
        directory: the folder, for messages and the data set's source.
        num_classes: the number of classes (labels are checked against it).
        class_names: a name per class.
        limit: keep only the first `limit` samples of each split, or None.

    Returns:
        The `Dataset`: float32 images `(N, H, W, 1)` in [0, 1].

    Raises:
        DataError: for a malformed file (magic number, dimensions, length) or a bad label.

    Example:
    ```python
    found, missing = find_idx_files(folder)
    data = dataset_from_idx("mnist", found, folder, 10, [str(i) for i in range(10)], None)
    ```
    """
    x_train, y_train = _load_idx_split(files, "train", limit, num_classes)
    x_test, y_test = _load_idx_split(files, "test", limit, num_classes)
    return build_dataset(name, x_train, y_train, x_test, y_test, num_classes, class_names, str(directory))

