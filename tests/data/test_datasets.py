"""Tests for the data-set loaders (sequential_learning.data.datasets).

Every test writes small files in the real formats (IDX, npz, the CIFAR-10 binary batch layout)
and points the loaders at them; nothing is downloaded. The Keras cache (``KERAS_HOME``) and the
Debian folder are redirected to temporary folders for every test, except the one that reads the
real Debian Fashion-MNIST (skipped when the package is not installed).
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sequential_learning.data import datasets
from sequential_learning.data.datasets import (
    CIFAR10_CLASS_NAMES,
    DATASET_NAMES,
    FASHION_MNIST_CLASS_NAMES,
    DataError,
    Dataset,
    DatasetNotFoundError,
    keras_datasets_dir,
    load_cifar10,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_iris,
    load_mnist,
    load_npz,
)
from sequential_learning.data.formats.idx import write_idx

pytestmark = pytest.mark.all_backends

REAL_DEBIAN_DIR = datasets.DEBIAN_FASHION_MNIST_DIR
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
CIFAR_RECORD = 3073


@pytest.fixture(autouse=True)
def isolated_places(tmp_path, monkeypatch):
    """Points the Keras cache and the Debian folder at empty temporary folders."""
    keras_home = tmp_path / "keras-home"
    debian = tmp_path / "debian" / "fashion-mnist"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", debian)
    return {"keras_home": keras_home, "debian": debian}


# ---------------------------------------------------------------------------------------------
# Writers of tiny files in the real formats


def tiny_images(n: int, side: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side), dtype=np.uint8)


def write_idx_dir(
    folder: Path,
    n_train: int = 6,
    n_test: int = 4,
    compress: bool | dict[str, bool] = True,
    dotted: bool = False,
) -> dict[str, np.ndarray]:
    """Writes the four MNIST-layout IDX files; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "x_train": tiny_images(n_train, seed=1),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": tiny_images(n_test, seed=2),
        "y_test": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    arrays["x_train"][0, 0, 0] = 255
    for role, stem in IDX_NAMES.items():
        use_gzip = compress[role] if isinstance(compress, dict) else compress
        name = stem.replace("-idx", ".idx") if dotted else stem
        write_idx(folder / (name + (".gz" if use_gzip else "")), arrays[role], gzip=use_gzip)
    return arrays


def write_cifar_batch(path: Path, labels: np.ndarray, images_chw: np.ndarray) -> None:
    """One CIFAR-10 binary batch: per record, 1 label byte then R, G, B 32x32 planes."""
    records = np.concatenate(
        [labels.astype(np.uint8)[:, None], images_chw.reshape(len(labels), -1).astype(np.uint8)],
        axis=1,
    )
    path.write_bytes(records.tobytes())


def write_cifar_dir(folder: Path, per_batch: int = 2, n_test: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for index in range(1, 6):
        labels = (np.arange(per_batch) + index) % 10
        images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        write_cifar_batch(folder / f"data_batch_{index}.bin", labels, images)
    labels = np.arange(n_test) % 10
    images = rng.integers(0, 256, size=(n_test, 3, 32, 32), dtype=np.uint8)
    write_cifar_batch(folder / "test_batch.bin", labels, images)


def write_npz(path: Path, **overrides: np.ndarray) -> dict[str, np.ndarray]:
    arrays = {
        "x_train": tiny_images(5),
        "y_train": np.array([0, 1, 2, 1, 0]),
        "x_test": tiny_images(3, seed=9),
        "y_test": np.array([2, 0, 1]),
    }
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **arrays)
    return arrays


# ---------------------------------------------------------------------------------------------
# Dataset


def make_dataset(**overrides) -> Dataset:
    fields = dict(
        name="toy",
        x_train=np.zeros((4, 3)),
        y_train=np.array([0, 1, 2, 1]),
        x_test=np.ones((2, 3)),
        y_test=np.array([2, 0]),
        num_classes=3,
    )
    fields.update(overrides)
    return Dataset(**fields)


def test_dataset_converts_dtypes_and_reports_input_shape():
    data = make_dataset(y_train=np.array([0, 1, 2, 1], dtype=np.uint8))
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.input_shape == (3,)
    assert "train=4" in repr(data) and "num_classes=3" in repr(data)


def test_dataset_accepts_integral_float_labels_and_column_labels():
    data = make_dataset(y_train=np.array([[0.0], [1.0], [2.0], [1.0]]))
    assert data.y_train.dtype == np.int64 and data.y_train.shape == (4,)


@pytest.mark.parametrize("split", ["train", "test"])
def test_dataset_mismatched_lengths_name_the_split_and_lengths(split):
    short = {"train": np.array([0, 1, 2]), "test": np.array([1])}[split]
    with pytest.raises(DataError, match=f"the {split} split") as info:
        make_dataset(**{f"y_{split}": short})
    expected = {"train": ("4", "3"), "test": ("2", "1")}[split]
    assert f"{expected[0]} samples" in str(info.value)
    assert f"{expected[1]} labels" in str(info.value)


@pytest.mark.parametrize("label", [3, -1])
def test_dataset_labels_out_of_range(label):
    with pytest.raises(DataError, match=r"y_test has labels out of range 0\.\.2"):
        make_dataset(y_test=np.array([label, 0]))


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"x_train": np.array([[0.0, np.nan, 0.0]] * 4)}, "NaN or infinite"),
        ({"x_test": np.full((2, 3), np.inf)}, "NaN or infinite"),
        ({"y_train": np.array([0.0, 0.5, 1.0, 2.0])}, "not integers"),
        ({"y_train": np.array(["a", "b", "c", "d"])}, "integer labels"),
        ({"x_test": np.ones((2, 4))}, "shaped"),
        ({"x_train": np.zeros(4)}, "feature axis"),
        ({"x_test": np.zeros((0, 3)), "y_test": np.zeros(0, dtype=int)}, "empty"),
        ({"class_names": ["a", "b"]}, "2 class names for 3 classes"),
        ({"num_classes": 0}, "at least 1"),
        ({"num_classes": 2.5}, "must be an integer"),
    ],
    ids=[
        "nan",
        "inf",
        "fractional-labels",
        "string-labels",
        "shape-mismatch",
        "no-feature-axis",
        "empty-test",
        "class-names",
        "zero-classes",
        "float-classes",
    ],
)
def test_dataset_rejects_bad_fields(overrides, fragment):
    with pytest.raises(DataError, match=fragment):
        make_dataset(**overrides)


# ---------------------------------------------------------------------------------------------
# digits and iris (embedded in scikit-learn)


def test_load_digits_shapes_scaling_and_seeded_split():
    data = load_digits()
    assert data.name == "digits" and data.num_classes == 10
    assert data.x_train.shape == (1437, 8, 8, 1) and data.x_test.shape == (360, 8, 8, 1)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert data.class_names == [str(d) for d in range(10)]
    # stratified: every class is in the test split in roughly its share
    assert np.bincount(data.y_test, minlength=10).min() >= 30
    again = load_digits()
    np.testing.assert_array_equal(again.y_test, data.y_test)
    other = load_digits(seed=1)
    assert not np.array_equal(other.y_test, data.y_test)


def test_load_digits_limit_and_fraction():
    data = load_digits(test_fraction=0.5, limit=50)
    assert len(data.x_train) == 50 and len(data.x_test) == 50
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


def test_load_iris_is_standardised_with_train_statistics():
    data = load_iris()
    assert data.input_shape == (4,) and data.num_classes == 3
    assert len(data.x_train) == 120 and len(data.x_test) == 30
    assert data.class_names == ["setosa", "versicolor", "virginica"]
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1.0, atol=1e-5)
    assert np.abs(data.x_test.mean(axis=0)).max() > 1e-4  # test statistics were not used
    assert np.bincount(data.y_test).tolist() == [10, 10, 10]


@pytest.mark.parametrize("limit", [0, -3, True, 2.0])
def test_bad_limit_is_rejected(limit):
    with pytest.raises(ValueError, match="limit"):
        load_iris(limit=limit)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST


@pytest.mark.parametrize(
    "compress",
    [True, False, {"x_train": True, "y_train": False, "x_test": False, "y_test": True}],
    ids=["gzip", "plain", "mixed"],
)
def test_fashion_mnist_from_a_directory(tmp_path, compress):
    arrays = write_idx_dir(tmp_path / "fm", compress=compress)
    data = load_fashion_mnist(tmp_path / "fm")
    assert data.name == "fashion-mnist" and data.source == str(tmp_path / "fm")
    assert data.x_train.shape == (6, 4, 4, 1) and data.x_test.shape == (4, 4, 4, 1)
    assert data.x_train.dtype == np.float32 and data.x_train[0, 0, 0, 0] == 1.0
    np.testing.assert_allclose(data.x_test[..., 0] * 255, arrays["x_test"], atol=1e-4)
    np.testing.assert_array_equal(data.y_train, arrays["y_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    assert data.class_names == FASHION_MNIST_CLASS_NAMES
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"


def test_fashion_mnist_dotted_file_names(tmp_path):
    write_idx_dir(tmp_path / "fm", dotted=True, compress=False)
    assert len(load_fashion_mnist(tmp_path / "fm").x_train) == 6


def test_fashion_mnist_limit(tmp_path):
    arrays = write_idx_dir(tmp_path / "fm")
    data = load_fashion_mnist(str(tmp_path / "fm"), limit=3)
    assert len(data.x_train) == 3 and len(data.x_test) == 3
    np.testing.assert_array_equal(data.y_train, arrays["y_train"][:3])


def test_fashion_mnist_prefers_the_debian_folder(isolated_places):
    write_idx_dir(isolated_places["debian"], n_train=7)
    write_idx_dir(isolated_places["keras_home"] / "datasets" / "fashion-mnist", n_train=9)
    data = load_fashion_mnist()
    assert data.source == str(isolated_places["debian"]) and len(data.x_train) == 7


def test_fashion_mnist_from_the_keras_cache(isolated_places):
    cache = isolated_places["keras_home"] / "datasets" / "fashion-mnist"
    write_idx_dir(cache, n_train=9)
    data = load_fashion_mnist()
    assert data.source == str(cache) and len(data.x_train) == 9


def test_fashion_mnist_missing_lists_places_and_how_to_get_it(isolated_places):
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist()
    message = str(info.value)
    debian = isolated_places["debian"]
    cache = isolated_places["keras_home"] / "datasets" / "fashion-mnist"
    assert str(debian) in message and str(cache) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte" in message
    assert info.value.searched == [debian, cache]
    assert isinstance(info.value, DataError)


def test_fashion_mnist_given_directory_is_the_only_place_looked(tmp_path, isolated_places):
    write_idx_dir(isolated_places["debian"])
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(tmp_path / "empty")
    assert info.value.searched == [tmp_path / "empty"]
    assert "does not exist" in str(info.value)


def test_fashion_mnist_incomplete_directory_names_missing_files(tmp_path):
    write_idx_dir(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        load_fashion_mnist(tmp_path / "fm")


def test_idx_images_and_labels_of_different_lengths(tmp_path):
    write_idx_dir(tmp_path / "fm")
    labels = tmp_path / "fm" / "train-labels-idx1-ubyte.gz"
    write_idx(labels, np.zeros(5, dtype=np.uint8), gzip=True)
    with pytest.raises(DataError, match="6 images") as info:
        load_fashion_mnist(tmp_path / "fm")
    assert str(labels) in str(info.value) and "5 labels" in str(info.value)


def test_corrupt_idx_file_in_a_data_set_names_the_file(tmp_path):
    write_idx_dir(tmp_path / "fm", compress=False)
    images = tmp_path / "fm" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated") as info:
        load_fashion_mnist(tmp_path / "fm")
    assert str(images) in str(info.value)


def test_idx_labels_out_of_range_name_the_source(tmp_path):
    write_idx_dir(tmp_path / "fm")
    write_idx(tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 12], np.uint8))
    with pytest.raises(DataError, match="out of range 0..9") as info:
        load_fashion_mnist(tmp_path / "fm")
    assert str(tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz") in str(info.value)


def test_idx_images_with_the_wrong_rank(tmp_path):
    write_idx_dir(tmp_path / "fm")
    write_idx(tmp_path / "fm" / "train-images-idx3-ubyte.gz", np.zeros((6, 16), np.uint8))
    with pytest.raises(DataError, match=r"magic number 0x00000802 .*\(expected 0x00000803") as info:
        load_fashion_mnist(tmp_path / "fm")
    assert "train-images-idx3-ubyte.gz" in str(info.value)


def _truncated_gzip(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _garbage_idx(path: Path) -> None:
    path.write_bytes(b"\x00\x00\x08\x41" + np.random.default_rng(0).bytes(400))


@pytest.mark.parametrize(
    "role, damage, fragment",
    [
        ("y_test", _truncated_gzip, "is not a valid gzip stream"),
        ("x_train", _garbage_idx, "magic number 0x00000841"),
        ("x_test", lambda p: p.write_bytes(b"PK\x03\x04" + bytes(40)), "not an IDX file"),
        ("x_train", lambda p: write_idx(p, np.zeros((6, 4, 4), np.float32)), "0x00000D03"),
        ("y_train", lambda p: write_idx(p, np.zeros(6, np.float64)), "expected integer class"),
        ("y_test", lambda p: write_idx(p, np.zeros((4, 1), np.uint8)), "(expected 0x0000TT01"),
    ],
    ids=["truncated-gzip", "garbage-header", "zip-not-idx", "float-images", "float-labels",
         "2d-labels"],
)
def test_idx_damaged_file_names_the_file(tmp_path, role, damage, fragment):
    write_idx_dir(tmp_path / "fm")
    path = tmp_path / "fm" / f"{IDX_NAMES[role]}.gz"
    damage(path)
    with pytest.raises(DataError) as info:
        load_fashion_mnist(tmp_path / "fm")
    message = str(info.value)
    assert str(path) in message and fragment in message and "\n" not in message, message
    assert "truncated" not in message or role == "y_test"


DEBIAN_FILES = [REAL_DEBIAN_DIR / f"{stem}.gz" for stem in IDX_NAMES.values()]


@pytest.mark.skipif(
    not all(path.is_file() for path in DEBIAN_FILES),
    reason=f"Debian package dataset-fashion-mnist is not installed (no IDX files in "
    f"{REAL_DEBIAN_DIR}); install it with `apt-get install dataset-fashion-mnist`",
)
def test_real_debian_fashion_mnist(monkeypatch):
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", REAL_DEBIAN_DIR)
    data = load_fashion_mnist()
    assert data.source == str(REAL_DEBIAN_DIR)
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
    assert data.y_train.shape == (60000,) and data.y_test.shape == (10000,)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert sorted(set(data.y_train.tolist())) == list(range(10))
    assert np.bincount(data.y_test).tolist() == [1000] * 10


# ---------------------------------------------------------------------------------------------
# MNIST


def test_mnist_from_an_idx_directory(tmp_path):
    arrays = write_idx_dir(tmp_path / "mnist", compress=False)
    data = load_mnist(tmp_path / "mnist")
    assert data.name == "mnist" and data.class_names == [str(d) for d in range(10)]
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    assert data.input_shape == (4, 4, 1)


def test_mnist_npz_in_a_directory_or_as_a_file(tmp_path):
    (tmp_path / "dir").mkdir()
    arrays = write_npz(tmp_path / "dir" / "mnist.npz")
    for where in (tmp_path / "dir", tmp_path / "dir" / "mnist.npz"):
        data = load_mnist(where)
        assert data.source == str(tmp_path / "dir" / "mnist.npz")
        assert data.x_train.shape == (5, 4, 4, 1) and data.num_classes == 10
        np.testing.assert_allclose(data.x_train[..., 0], arrays["x_train"] / 255.0, atol=1e-6)


def test_mnist_from_the_keras_cache(isolated_places):
    cache = isolated_places["keras_home"] / "datasets"
    cache.mkdir(parents=True)
    write_npz(cache / "mnist.npz")
    data = load_mnist(limit=2)
    assert data.source == str(cache / "mnist.npz") and len(data.x_train) == 2


def test_mnist_missing_lists_places(isolated_places, tmp_path):
    cache = isolated_places["keras_home"] / "datasets"
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()
    assert str(cache / "mnist.npz") in str(info.value)
    assert "mnist.npz" in str(info.value) and "train-images-idx3-ubyte" in str(info.value)
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path / "nothing-here")
    assert info.value.searched == [
        tmp_path / "nothing-here",
        tmp_path / "nothing-here" / "mnist.npz",
    ]


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (binary version, never the pickles)


def test_cifar_binary_channel_ordering(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar_dir(folder)
    red = (np.arange(1024) % 251).reshape(32, 32)
    planes = np.stack([red, np.full((32, 32), 20), np.full((32, 32), 30)])[None]
    write_cifar_batch(folder / "data_batch_1.bin", np.array([3]), planes)

    data = load_cifar10(folder)
    assert data.name == "cifar10" and data.class_names == CIFAR10_CLASS_NAMES
    assert data.x_train.shape == (1 + 4 * 2, 32, 32, 3) and data.x_test.shape == (3, 32, 32, 3)
    first = data.x_train[0]
    assert data.y_train[0] == 3
    np.testing.assert_allclose(first[..., 0] * 255, red, atol=1e-3)  # R plane, row-major
    np.testing.assert_allclose(first[..., 1] * 255, 20, atol=1e-3)
    np.testing.assert_allclose(first[..., 2] * 255, 30, atol=1e-3)
    assert first[0, 5, 0] * 255 == pytest.approx(5, abs=1e-3)  # row 0, column 5
    assert first[2, 1, 0] * 255 == pytest.approx(65, abs=1e-3)  # row 2, column 1


def test_cifar_batches_are_concatenated_in_order_and_limited(tmp_path):
    write_cifar_dir(tmp_path / "c", per_batch=2, n_test=3)
    data = load_cifar10(tmp_path / "c")
    assert data.y_train.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    limited = load_cifar10(tmp_path / "c", limit=5)
    assert limited.y_train.tolist() == [1, 2, 2, 3, 3] and len(limited.x_test) == 3
    np.testing.assert_array_equal(limited.x_train, data.x_train[:5])


def test_cifar_nested_bin_folder_and_keras_cache(tmp_path, isolated_places):
    write_cifar_dir(tmp_path / "downloads" / "cifar-10-batches-bin")
    assert len(load_cifar10(tmp_path / "downloads").x_train) == 10
    cache = isolated_places["keras_home"] / "datasets" / "cifar-10-batches-bin"
    write_cifar_dir(cache, per_batch=1)
    data = load_cifar10()
    assert data.source == str(cache) and len(data.x_train) == 5


def test_cifar_npz(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    np.savez(
        tmp_path / "cifar10.npz",
        x_train=images,
        y_train=np.array([[0], [9], [1], [2]]),  # the Keras layout: (N, 1)
        x_test=images[:2],
        y_test=np.array([[3], [4]]),
    )
    for where in (tmp_path, tmp_path / "cifar10.npz"):
        data = load_cifar10(where)
        assert data.input_shape == (32, 32, 3) and data.y_train.tolist() == [0, 9, 1, 2]
        np.testing.assert_allclose(data.x_train * 255, images, atol=1e-3)


def test_cifar_truncated_batch_names_the_file(tmp_path):
    write_cifar_dir(tmp_path / "c")
    batch = tmp_path / "c" / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-1])
    with pytest.raises(DataError, match="3073") as info:
        load_cifar10(tmp_path / "c")
    assert str(batch) in str(info.value)


def test_cifar_label_above_nine_names_the_file(tmp_path):
    write_cifar_dir(tmp_path / "c")
    write_cifar_batch(tmp_path / "c" / "test_batch.bin", np.array([42]), np.zeros((1, 3, 32, 32)))
    with pytest.raises(DataError, match="label 42") as info:
        load_cifar10(tmp_path / "c")
    assert "test_batch.bin" in str(info.value)


def test_cifar_pickled_batches_are_refused(isolated_places):
    py_dir = isolated_places["keras_home"] / "datasets" / "cifar-10-batches-py"
    py_dir.mkdir(parents=True)
    # Not a real pickle: the loader must never open it anyway.
    (py_dir / "data_batch_1").write_bytes(b"this would be a pickle")
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10()
    message = str(info.value)
    assert str(py_dir) in message and "pickle" in message and "binary version" in message
    assert "cifar-10-batches-bin" in message and "cifar10.npz" in message


def test_cifar_missing_lists_places(isolated_places, tmp_path):
    cache = isolated_places["keras_home"] / "datasets"
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10()
    assert info.value.searched == [cache / "cifar-10-batches-bin", cache / "cifar10.npz"]
    assert "pickle" not in str(info.value)
    (tmp_path / "partial").mkdir()
    write_cifar_batch(tmp_path / "partial" / "data_batch_1.bin", np.array([1]), np.zeros((1, 3072)))
    with pytest.raises(DatasetNotFoundError, match="incomplete, has only data_batch_1.bin"):
        load_cifar10(tmp_path / "partial")


# ---------------------------------------------------------------------------------------------
# The user's own arrays


def test_npz_uint8_images_are_scaled_with_a_channel_axis(tmp_path):
    arrays = write_npz(tmp_path / "mine.npz")
    data = load_npz(tmp_path / "mine.npz")
    assert data.name == "npz" and data.source == str(tmp_path / "mine.npz")
    assert data.x_train.shape == (5, 4, 4, 1) and data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_test[..., 0], arrays["x_test"] / 255.0, atol=1e-6)
    assert data.num_classes == 3 and data.class_names is None


def test_npz_tabular_float_is_kept_as_is(tmp_path):
    x = np.linspace(-3, 3, 12).reshape(6, 2)
    write_npz(
        tmp_path / "tab.npz",
        x_train=x[:4],
        y_train=np.array([0, 4, 1, 0]),
        x_test=x[4:],
        y_test=np.array([1, 2]),
    )
    data = load_npz(tmp_path / "tab.npz", limit=3)
    assert data.input_shape == (2,) and data.num_classes == 5  # max label of both splits + 1
    np.testing.assert_allclose(data.x_train, x[:3])
    assert len(data.y_train) == 3


def test_npz_class_names(tmp_path):
    write_npz(tmp_path / "named.npz", class_names=np.array(["cat", "dog", "cow", "hen"]))
    data = load_npz(tmp_path / "named.npz")
    assert data.class_names == ["cat", "dog", "cow", "hen"] and data.num_classes == 4


def test_npz_missing_key_names_file_key_and_keys_found(tmp_path):
    write_npz(tmp_path / "partial.npz", y_test=None)
    with pytest.raises(DataError) as info:
        load_npz(tmp_path / "partial.npz")
    message = str(info.value)
    assert str(tmp_path / "partial.npz") in message
    assert "missing the key(s) y_test" in message
    assert "x_test, x_train, y_train" in message


def test_npz_mismatched_lengths_name_the_file_and_keys(tmp_path):
    write_npz(tmp_path / "bad.npz", y_train=np.array([0, 1, 2]))
    with pytest.raises(DataError, match="x_train has 5 samples but y_train has 3") as info:
        load_npz(tmp_path / "bad.npz")
    assert str(tmp_path / "bad.npz") in str(info.value)


def test_npz_negative_labels_name_the_file_and_key(tmp_path):
    write_npz(tmp_path / "neg.npz", y_test=np.array([0, -1, 1]))
    with pytest.raises(DataError, match="y_test holds negative labels") as info:
        load_npz(tmp_path / "neg.npz")
    assert str(tmp_path / "neg.npz") in str(info.value) and "-1" in str(info.value)


PICKLED = "is a pickled object; expected a numeric array (saved with allow_pickle=False)"


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    ragged = np.empty(5, dtype=object)
    ragged[:] = [np.zeros(i) for i in range(5)]
    write_npz(tmp_path / "objects.npz", x_train=ragged)
    with pytest.raises(DataError) as info:
        load_npz(tmp_path / "objects.npz")
    assert str(info.value) == f"{tmp_path / 'objects.npz'}: member 'x_train' {PICKLED}."


def _zip_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _valid_members() -> dict[str, bytes]:
    arrays = {
        "x_train": tiny_images(5),
        "y_train": np.array([0, 1, 2, 1, 0]),
        "x_test": tiny_images(3, seed=9),
        "y_test": np.array([2, 0, 1]),
    }
    return {f"{key}.npy": _npy_bytes(value) for key, value in arrays.items()}


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_npz_raw_pickle_member_is_a_data_error(tmp_path, protocol):
    # A member that is a bare pickle, not a .npy file: NumPy hands back its bytes, unpickled.
    members = _valid_members()
    members["x_train.npy"] = pickle.dumps(tiny_images(5).tolist(), protocol=protocol)
    path = tmp_path / "pickled.npz"
    _zip_members(path, members)
    with pytest.raises(DataError) as info:
        load_npz(path)
    assert str(info.value) == f"{path}: member 'x_train' {PICKLED}."


def _write_corrupt_member(path: Path) -> None:
    # A stored (uncompressed) zip whose x_train bytes no longer match their CRC.
    members = _valid_members()
    _zip_members(path, members)
    raw = bytearray(path.read_bytes())
    start = bytes(raw).index(members["x_train.npy"])
    raw[start + len(members["x_train.npy"]) - 1] ^= 0xFF
    path.write_bytes(bytes(raw))


def _write_truncated_zip(path: Path) -> None:
    np.savez(path, x_train=tiny_images(5), y_train=np.arange(5), x_test=tiny_images(3),
             y_test=np.arange(3))
    path.write_bytes(path.read_bytes()[:200])


NPZ_FILE_CASES = {
    "zero-bytes": (lambda p: p.write_bytes(b""), "is empty (0 bytes); expected an npz (zip) file"),
    "random-bytes": (
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(300)),
        "is not an npz (zip) file; expected an npz (zip) file with the arrays x_train, y_train, "
        "x_test, y_test",
    ),
    "text": (lambda p: p.write_text("x_train,y_train\n1,2\n"), "is not an npz (zip) file"),
    "gzip": (
        lambda p: p.write_bytes(gzip.compress(b"data")),
        "is not an npz (zip) file (it is gzip-compressed)",
    ),
    "empty-archive": (
        lambda p: np.savez(p),
        "is missing the key(s) x_train, y_train, x_test, y_test; it holds: no arrays. "
        "Expected: x_train, y_train, x_test, y_test",
    ),
    "truncated-zip": (_write_truncated_zip, "is not a readable npz (zip) file"),
    "corrupt-member": (_write_corrupt_member, "member 'x_train' could not be read"),
    "raw-bytes-member": (
        lambda p: _zip_members(p, {**_valid_members(), "y_test.npy": b"0,1,2"}),
        "member 'y_test' is not a NumPy array",
    ),
}


@pytest.mark.parametrize("case", list(NPZ_FILE_CASES))
def test_npz_file_that_is_not_a_good_archive(tmp_path, case):
    write, fragment = NPZ_FILE_CASES[case]
    path = tmp_path / "bad.npz"
    write(path)
    with pytest.raises(DataError) as info:
        load_npz(path)
    message = str(info.value)
    assert fragment in message and str(path) in message and "\n" not in message
    assert "allow_pickle=" not in message  # not NumPy's hint to unpickle the file


def test_npz_path_that_is_a_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory; expected an npz") as info:
        load_npz(tmp_path)
    assert str(tmp_path) in str(info.value)


NPZ_ARRAY_CASES = {
    "nan-x-train": ({"x_train": np.full((5, 3), np.nan)}, "x_train", "NaN or infinite"),
    "inf-x-test": ({"x_test": np.array([[0.0, np.inf, 1.0]] * 3)}, "x_test", "NaN or infinite"),
    "x-y-lengths": ({"y_test": np.array([0, 1])}, "y_test", "x_test has 3 samples but y_test"),
    "fractional-labels": (
        {"y_train": np.array([0.0, 1.5, 2.0, 1.0, 0.0])}, "y_train", "not integers"
    ),
    "nan-labels": ({"y_test": np.array([0.0, np.nan, 1.0])}, "y_test", "NaN or infinite labels"),
    "negative-labels": ({"y_train": np.array([0, -3, 2, 1, 0])}, "y_train", "negative labels"),
    "huge-labels": ({"y_train": np.array([0, 1, 2, 10**12, 0])}, "y_train", "1000000000000"),
    "bool-labels": ({"y_train": np.ones(5, bool)}, "y_train", "integer class labels"),
    "string-labels": ({"y_test": np.array(["a", "b", "c"])}, "y_test", "integer class labels"),
    "one-hot-labels": ({"y_train": np.eye(3)[[0, 1, 2, 1, 0]]}, "y_train", "one-hot"),
    "empty-split": (
        {"x_train": np.zeros((0, 4)), "y_train": np.zeros(0, int)}, "x_train", "is empty"
    ),
    "scalar": ({"y_test": np.array(2)}, "y_test", "scalar"),
    "rank-1-inputs": (
        {"x_train": np.zeros(5), "x_test": np.zeros(3)}, "x_train", "feature axis"
    ),
    "complex-inputs": ({"x_train": np.zeros((5, 2), complex)}, "x_train", "numeric"),
}


@pytest.mark.parametrize("case", list(NPZ_ARRAY_CASES))
def test_npz_bad_arrays_name_the_file_and_key(tmp_path, case):
    overrides, key, fragment = NPZ_ARRAY_CASES[case]
    if "x_train" in overrides and overrides["x_train"].ndim == 2:
        overrides = {"x_test": np.zeros((3, overrides["x_train"].shape[1])), **overrides}
    path = tmp_path / "arrays.npz"
    write_npz(path, **overrides)
    with pytest.raises(DataError) as info:
        load_npz(path)
    message = str(info.value)
    assert str(path) in message and key in message and fragment in message, message


@pytest.mark.parametrize(
    "loader, name, shape, fragment",
    [
        (load_mnist, "mnist.npz", (5, 4, 4, 3), "expected mnist images shaped (N, H, W)"),
        (load_mnist, "mnist.npz", (5, 16), "expected mnist images shaped (N, H, W)"),
        (load_cifar10, "cifar10.npz", (5, 3, 8, 8), "channels first?"),
        (load_cifar10, "cifar10.npz", (5, 8, 8), "expected cifar10 images shaped (N, H, W, 3)"),
    ],
)
def test_image_npz_of_the_wrong_rank_names_the_file_and_key(tmp_path, loader, name, shape,
                                                             fragment):
    path = tmp_path / name
    write_npz(path, x_train=np.zeros(shape, np.uint8), x_test=np.zeros((3, *shape[1:]), np.uint8))
    with pytest.raises(DataError) as info:
        loader(path)
    message = str(info.value)
    assert str(path) in message and f"x_train has shape {shape}" in message and fragment in message


def test_npz_not_an_archive_or_missing(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "absent.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DataError, match="single array"):
        load_npz(tmp_path / "single.npy")


# ---------------------------------------------------------------------------------------------
# load_dataset and the Keras cache location


def test_load_dataset_dispatches(tmp_path):
    assert DATASET_NAMES == ("digits", "iris", "fashion-mnist", "mnist", "cifar10", "cifar100",
                             "npz")
    assert load_dataset("iris", seed=1).name == "iris"
    assert load_dataset("Digits", limit=10).x_train.shape == (10, 8, 8, 1)
    write_idx_dir(tmp_path / "fm")
    assert load_dataset("fashion_mnist", tmp_path / "fm").name == "fashion-mnist"
    write_npz(tmp_path / "mine.npz")
    assert load_dataset("npz", tmp_path / "mine.npz", limit=2).x_train.shape[0] == 2
    write_cifar_dir(tmp_path / "c", per_batch=1)
    assert load_dataset("CIFAR-10", tmp_path / "c").name == "cifar10"


def test_load_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="Unknown data set 'imagenet'") as info:
        load_dataset("imagenet")
    for name in DATASET_NAMES:
        assert name in str(info.value)
    with pytest.raises(DataError, match="takes no directory"):
        load_dataset("digits", tmp_path)
    with pytest.raises(DataError, match="needs a path"):
        load_dataset("npz")


def test_keras_datasets_dir_honours_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert keras_datasets_dir() == tmp_path / "kh" / "datasets"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert keras_datasets_dir() == tmp_path / "home" / ".keras" / "datasets"
