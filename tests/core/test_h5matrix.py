"""berg_core.store.h5matrix: column-chunked HDF5 matrices (numpy + h5py only; reference = slicing the array)."""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from berg_core.errors import InvalidParameterError, ModelLoadError  # noqa: E402
from berg_core.store import h5matrix  # noqa: E402
from berg_core.store.h5matrix import (  # noqa: E402
    ArrayColumns,
    MatrixWriter,
    RawColumns,
    build_matrix,
    is_complete,
    matrix_info,
    read_columns,
    write_matrix,
)


@pytest.fixture
def matrix() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((24, 1000))


def test_roundtrip_and_column_subsets_equal_slicing(tmp_path, matrix):
    path = write_matrix(tmp_path / "m.h5", matrix, chunk_columns=16, block_bytes=24 * 8 * 40, attrs={"source": "x", "n": [1, 2]})
    info = matrix_info(path)
    assert info.shape == (24, 1000) and info.dtype == np.float32 and info.chunk_columns == 16
    assert info.attrs == {"source": "x", "n": [1, 2]}
    full = read_columns(path)
    np.testing.assert_array_equal(full, matrix.astype(np.float32))
    rng = np.random.default_rng(1)
    for cols in ([0], [999], [5, 3, 3, 900, 17], rng.choice(1000, 200, replace=False), np.sort(rng.choice(1000, 300, replace=False))):
        np.testing.assert_array_equal(read_columns(path, cols), matrix.astype(np.float32)[:, cols])
    assert read_columns(path, []).shape == (24, 0)
    with pytest.raises(InvalidParameterError, match="column indices"):
        read_columns(path, [1000])


def test_reads_in_bounded_spans(tmp_path, matrix, monkeypatch):
    path = write_matrix(tmp_path / "m.h5", matrix, chunk_columns=10)
    monkeypatch.setattr(h5matrix, "READ_SPAN_BYTES", 24 * 4 * 10 * 3)  # at most 3 chunks per read
    cols = np.arange(0, 1000, 7)
    np.testing.assert_array_equal(read_columns(path, cols), matrix.astype(np.float32)[:, cols])
    assert list(h5matrix._spans(np.array([0, 1, 2, 3, 5, 6, 9]), 3)) == [(0, 2), (3, 3), (5, 6), (9, 9)]


class RecordingSource(ArrayColumns):
    """Records the column blocks asked for (to check conversion never asks for the whole matrix)."""

    def __init__(self, array):
        super().__init__(array)
        self.requests = []

    def read_columns(self, start, stop):
        self.requests.append((start, stop))
        return super().read_columns(start, stop)


def test_conversion_is_block_by_block(tmp_path, matrix):
    src = RecordingSource(matrix)
    write_matrix(tmp_path / "m.h5", src, chunk_columns=8, block_bytes=24 * 8 * 8 * 5)  # 5 chunks of float64 per block
    assert max(stop - start for start, stop in src.requests) == 40
    assert src.requests[0] == (0, 40) and src.requests[-1][1] == 1000
    np.testing.assert_array_equal(read_columns(tmp_path / "m.h5"), matrix.astype(np.float32))


@pytest.mark.parametrize("fortran", [False, True])
def test_raw_columns_from_a_file(tmp_path, matrix, fortran):
    arr = np.asfortranarray(matrix) if fortran else matrix
    path = tmp_path / "raw.bin"
    with open(path, "wb") as fh:
        fh.write(b"HEADER--")
        fh.write(arr.tobytes(order="F" if fortran else "C"))
    src = RawColumns(path, 8, matrix.shape, np.float64, fortran)
    np.testing.assert_array_equal(src.read_columns(13, 77), matrix[:, 13:77])
    write_matrix(tmp_path / "m.h5", src, chunk_columns=32, block_bytes=24 * 8 * 64)
    np.testing.assert_array_equal(read_columns(tmp_path / "m.h5", [3, 500, 999]), matrix.astype(np.float32)[:, [3, 500, 999]])
    cut = tmp_path / "cut.bin"
    cut.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ModelLoadError, match="truncated"):
        RawColumns(cut, 8, matrix.shape, np.float64, fortran)


def test_incremental_writer_and_incomplete_files(tmp_path, matrix):
    with MatrixWriter(tmp_path / "w.h5", matrix.shape, chunk_columns=50, attrs={"k": 1}) as w:
        for start in range(0, 1000, 300):
            w.write_columns(start, matrix[:, start:start + 300])
    np.testing.assert_array_equal(read_columns(tmp_path / "w.h5", [0, 999]), matrix.astype(np.float32)[:, [0, 999]])
    with pytest.raises(RuntimeError), MatrixWriter(tmp_path / "broken.h5", matrix.shape) as w:
        w.write_columns(0, matrix[:, :10])
        raise RuntimeError("interrupted")
    assert not is_complete(tmp_path / "broken.h5")
    with pytest.raises(ModelLoadError, match="incomplete"):
        read_columns(tmp_path / "broken.h5", [0])
    with pytest.raises(InvalidParameterError, match="never written"), MatrixWriter(tmp_path / "half.h5", matrix.shape) as w:
        w.write_columns(0, matrix[:, :10])
    with pytest.raises(InvalidParameterError, match="does not fit"), MatrixWriter(tmp_path / "bad.h5", matrix.shape) as w:
        w.write_columns(995, matrix[:, :10])


def test_corrupt_chunk_is_detected(tmp_path, matrix):
    path = write_matrix(tmp_path / "m.h5", matrix, chunk_columns=100)
    with h5py.File(path, "r") as fh:
        chunk = fh["matrix"].id.get_chunk_info(3)  # columns 300..399
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset + 1000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert is_complete(path)  # the header is intact ...
    np.testing.assert_array_equal(read_columns(path, [5, 950]), matrix.astype(np.float32)[:, [5, 950]])  # ... other chunks read
    with pytest.raises(ModelLoadError, match="corrupt"):
        read_columns(path, [350])


def test_truncated_or_garbage_file_is_detected(tmp_path, matrix):
    path = write_matrix(tmp_path / "m.h5", matrix)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert not is_complete(cut)
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        read_columns(cut, [0])
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        matrix_info(tmp_path / "junk.h5")
    with pytest.raises(ModelLoadError, match="missing"):
        matrix_info(tmp_path / "absent.h5")


def test_build_matrix_builds_once_and_rebuilds_on_new_attrs(tmp_path, matrix, monkeypatch):
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def make():
        calls.append(1)
        return matrix

    dest = tmp_path / "cache" / "m.h5"
    build_matrix(dest, make, attrs={"source_id": "a"})
    build_matrix(dest, make, attrs={"source_id": "a"})
    assert len(calls) == 1
    assert is_complete(dest, {"source_id": "a"}) and not is_complete(dest, {"source_id": "b"})
    build_matrix(dest, lambda: matrix * 2, attrs={"source_id": "b"})
    np.testing.assert_array_equal(read_columns(dest, [7]), (matrix * 2).astype(np.float32)[:, [7]])
    assert not list(dest.parent.glob("*.tmp"))


# ------------------------------------------------------------------- headers checked on open (issue 9 item 6)

#: HDF5's datatype message of an IEEE little-endian float32: class 1 version 1, bit fields (LE, implied
#: mantissa bit, sign at bit 31), size 4, offset 0, precision 32, exponent at 23 (8 bits), mantissa at 0
#: (23 bits), exponent bias 127
F32_LE = bytes([0x11, 0x20, 0x1F, 0x00, 4, 0, 0, 0, 0, 0, 32, 0, 23, 8, 0, 23, 127, 0, 0, 0])
#: (offset in the message, new byte): each turns the float32 into another type that HDF5 converts silently
DATATYPE_FLIPS = {"big endian": (1, 0x21), "exponent bias 126": (16, 126), "mantissa 22 bits": (15, 22), "precision 31": (10, 31)}


def legacy_matrix(path, matrix, *, record_dtype=True):
    """A matrix file in HDF5's earliest format (no metadata checksums), as h5matrix wrote before issue 9."""
    with h5py.File(path, "w") as fh:
        fh.create_dataset("matrix", data=matrix.astype(np.float32), chunks=(matrix.shape[0], 4), fletcher32=True)
        fh.attrs["berg_shape"] = np.asarray(matrix.shape, dtype=np.int64)
        if record_dtype:
            fh.attrs["berg_dtype"] = "<f4"
        fh.attrs["berg_complete"] = True
    return path


def flip_datatype(path, offset, value):
    data = path.read_bytes()
    assert data.count(F32_LE) == 1  # the dataset's datatype message, nothing else is a float32 type
    at = data.index(F32_LE) + offset
    path.write_bytes(data[:at] + bytes([value]) + data[at + 1:])


@pytest.mark.parametrize("flip", DATATYPE_FLIPS, ids=str)
@pytest.mark.parametrize("fmt", ["current", "legacy"])
def test_flipped_datatype_header_is_refused(tmp_path, flip, fmt):
    """Before issue 9 these read without error: big endian scrambled every value, bias 126 doubled them."""
    small = np.arange(1, 61, dtype=np.float32).reshape(6, 10) / 3
    path = tmp_path / "m.h5"
    write_matrix(path, small, chunk_columns=4) if fmt == "current" else legacy_matrix(path, small)
    np.testing.assert_array_equal(read_columns(path), small)
    flip_datatype(path, *DATATYPE_FLIPS[flip])
    for read in (lambda: read_columns(path), lambda: matrix_info(path), lambda: h5matrix.check_matrix(path, "float32", (6, 10))):
        with pytest.raises(ModelLoadError, match=r"m\.h5 is corrupt .*delete it"):
            read()
    assert not is_complete(path)


def test_legacy_file_without_a_dtype_record_still_checks_its_datatype(tmp_path):
    small = np.arange(1, 61, dtype=np.float32).reshape(6, 10)
    path = legacy_matrix(tmp_path / "m.h5", small, record_dtype=False)
    info = matrix_info(path)
    assert not info.current_format and info.dtype == np.float32
    np.testing.assert_array_equal(read_columns(path, [9, 0]), small[:, [9, 0]])
    assert not is_complete(path)  # build_matrix converts it again, into the checksummed format
    flip_datatype(path, 16, 126)  # exponent bias: the values would read doubled, as float64
    with pytest.raises(ModelLoadError, match="not a standard IEEE float"):
        read_columns(path)


def test_build_matrix_rebuilds_a_legacy_file(tmp_path, matrix):
    dest = legacy_matrix(tmp_path / "m.h5", matrix * 0)
    build_matrix(dest, lambda: matrix)
    assert matrix_info(dest).current_format
    np.testing.assert_array_equal(read_columns(dest, [3]), matrix.astype(np.float32)[:, [3]])


def test_check_matrix_compares_with_the_recorded_dtype_and_shape(tmp_path, matrix):
    path = write_matrix(tmp_path / "w.h5", matrix, dtype="float32")
    info = h5matrix.check_matrix(path, "float32", (24, 1000))
    assert info.shape == (24, 1000) and info.current_format
    assert h5matrix.check_matrix(path, np.float32).dtype == np.float32  # shape unchecked
    with pytest.raises(ModelLoadError, match=r"w\.h5 holds a float32 \(24, 1000\) matrix but a float64 \(24, 1000\) one was recorded"):
        h5matrix.check_matrix(path, "float64", (24, 1000))
    with pytest.raises(ModelLoadError, match=r"but a float32 \(24, 999\) one .*; re-train it"):
        h5matrix.check_matrix(path, "float32", [24, 999], fix="re-train it")
    with pytest.raises(ModelLoadError, match="one was recorded"):
        read_columns(path, [0], expect_shape=(1000, 24))
    np.testing.assert_array_equal(read_columns(path, [0], expect_dtype="float32", expect_shape=(24, 1000)),
                                  matrix.astype(np.float32)[:, [0]])
    with pytest.raises(ModelLoadError, match="missing"):
        h5matrix.check_matrix(tmp_path / "absent.h5", "float32")


@pytest.mark.parametrize("mask", [0xFF, 0x01])
def test_every_single_byte_flip_is_harmless_or_refused(tmp_path, mask):
    """The whole file, byte by byte: the current format's metadata checksums (and the chunks' Fletcher-32)
    leave no flip that changes values or escapes as another exception. In the earliest format ~60 flips
    of B-tree keys swapped chunks silently, and others crashed or hung libhdf5."""
    small = np.arange(1, 61, dtype=np.float32).reshape(6, 10) / 3
    good = write_matrix(tmp_path / "m.h5", small, chunk_columns=4, attrs={"source": "x"}).read_bytes()
    bad = tmp_path / "bad.h5"
    refused = 0
    for i in range(len(good)):
        data = bytearray(good)
        data[i] ^= mask
        bad.write_bytes(bytes(data))
        try:
            values = read_columns(bad)
        except ModelLoadError:
            refused += 1
            continue
        np.testing.assert_array_equal(values, small, err_msg=f"byte {i}")
        assert values.dtype == np.float32
    assert refused > len(good) // 4
