"""Tests for the IDX reader and writer (sequential_learning.data.idx)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from sequential_learning.data.formats.idx import DataError, read_idx, write_idx

pytestmark = pytest.mark.all_backends

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: np.dtype(dtype).name)
def test_round_trip_images_and_labels(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 100, size=(5, 4, 3)) - (0 if dtype == np.uint8 else 50)).astype(dtype)
    labels = np.arange(5).astype(dtype)
    write_idx(tmp_path / "images", images, gzip=compress)
    write_idx(tmp_path / "labels", labels, gzip=compress)

    images_back = read_idx(tmp_path / "images")
    labels_back = read_idx(tmp_path / "labels")

    assert images_back.shape == (5, 4, 3) and images_back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(images_back, images)
    assert labels_back.shape == (5,)
    np.testing.assert_array_equal(labels_back, labels)
    assert images_back.dtype.isnative and images_back.flags.writeable


def test_header_bytes_match_the_format(tmp_path):
    path = write_idx(tmp_path / "x-idx2-short", np.array([[1, -2, 3]], dtype=np.int16))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2])
    assert struct.unpack(">II", raw[4:12]) == (1, 3)
    assert struct.unpack(">hhh", raw[12:]) == (1, -2, 3)


def test_hand_written_file_is_read(tmp_path):
    # Written byte by byte, not with write_idx: two 2x2 images of uint8.
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 2, 2) + bytes(range(8))
    (tmp_path / "hand").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "hand"), np.arange(8).reshape(2, 2, 2))


def test_gzip_is_detected_by_content_not_name(tmp_path):
    labels = np.array([7, 8, 9], dtype=np.uint8)
    write_idx(tmp_path / "compressed-without-suffix", labels, gzip=True)
    write_idx(tmp_path / "plain-with-suffix.gz", labels, gzip=False)
    assert (tmp_path / "compressed-without-suffix").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed-without-suffix"), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-with-suffix.gz"), labels)


def test_gzip_output_is_deterministic(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    first = write_idx(tmp_path / "a", array, gzip=True).read_bytes()
    second = write_idx(tmp_path / "b", array, gzip=True).read_bytes()
    assert first == second


def _valid_bytes() -> bytes:
    return bytes([0, 0, 0x08, 2]) + struct.pack(">II", 2, 3) + bytes(6)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (
            b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00",
            r"not an IDX file: magic number 0x01000801 \(expected 0x0000TTDD",
        ),
        (
            b"\x00\x07\x08\x01" + struct.pack(">I", 1) + b"\x00",
            r"not an IDX file: magic number 0x00070801 \(expected 0x0000TTDD",
        ),
        (b"\x00\x00\x0a\x01" + struct.pack(">I", 1) + b"\x00", "unknown type code 0x0A"),
        (b"\x00\x00\x08\x00", "magic number 0x00000800 declares 0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "truncated inside its header"),
    ],
    ids=["empty", "two-bytes", "magic-byte-0", "magic-byte-1", "type", "ndim-0", "header"],
)
def test_bad_header_names_the_file(tmp_path, raw, fragment):
    path = tmp_path / "broken-idx-file"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=fragment) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_truncated_payload_reports_byte_counts(tmp_path, compress):
    raw = _valid_bytes()[:-2]
    path = tmp_path / "short-idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "6 bytes of data are expected" in message and "but 4 bytes were found" in message


def test_over_long_payload_reports_byte_counts(tmp_path):
    path = tmp_path / "long-idx"
    path.write_bytes(_valid_bytes() + b"\x00\x00\x00")
    with pytest.raises(DataError, match="over-long") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "6 bytes" in str(info.value) and "9 bytes" in str(info.value)


def test_multi_byte_type_length_counts_item_size(tmp_path):
    # 3 int32 items need 12 bytes; 11 is one short.
    raw = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + bytes(11)
    path = tmp_path / "ints"
    path.write_bytes(raw)
    with pytest.raises(DataError, match="12 bytes of data are expected"):
        read_idx(path)


def test_corrupt_gzip_stream_names_the_file(tmp_path):
    compressed = gzip.compress(_valid_bytes() * 50)
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        read_idx(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_write_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(TypeError, match="uint16"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))
    with pytest.raises(TypeError):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "x", np.array(5, dtype=np.uint8))


def test_big_endian_input_is_written_correctly(tmp_path):
    array = np.array([1.5, -2.25], dtype=">f8")
    write_idx(tmp_path / "x", array)
    back = read_idx(tmp_path / "x")
    assert back.dtype == np.float64 and back.dtype.isnative
    np.testing.assert_array_equal(back, [1.5, -2.25])


def test_garbage_after_two_zero_bytes_is_not_reported_as_truncated(tmp_path):
    # 0x00000841 reads as 65 dimensions of uint8; the "dimensions" are random bytes whose
    # product is astronomically large: that is not an IDX file, not a truncated one.
    path = tmp_path / "garbage"
    path.write_bytes(b"\x00\x00\x08\x41" + np.random.default_rng(0).bytes(500))
    with pytest.raises(DataError, match=r"not an IDX file: magic number 0x00000841") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "truncated" not in message and "over-long" not in message
    assert "65 dimensions" in message and "\n" not in message


@pytest.mark.parametrize(
    "array, kwargs, magic, expected",
    [
        (np.zeros(4, np.uint8), {"expect_ndim": 3}, "0x00000801", "0x0000TT03"),
        (np.zeros((2, 2, 2), np.float32), {"expect_type": 0x08}, "0x00000D03", "0x000008DD"),
        (
            np.zeros((2, 2), np.uint8),
            {"expect_type": 0x08, "expect_ndim": 3},
            "0x00000802",
            "0x00000803",
        ),
    ],
    ids=["labels-for-images", "float-for-uint8", "2d-for-3d"],
)
def test_unexpected_magic_number_names_both_numbers(tmp_path, array, kwargs, magic, expected):
    path = write_idx(tmp_path / "wrong-kind", array)
    with pytest.raises(DataError) as info:
        read_idx(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    assert f"magic number {magic}" in message and f"(expected {expected}:" in message


def test_expected_magic_number_reads_normally(tmp_path):
    images = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    path = write_idx(tmp_path / "images", images, gzip=True)
    np.testing.assert_array_equal(read_idx(path, expect_type=0x08, expect_ndim=3), images)


def test_unreadable_path_names_the_file(tmp_path):
    with pytest.raises(DataError, match="could not be read") as info:
        read_idx(tmp_path)  # a directory
    assert str(tmp_path) in str(info.value)
