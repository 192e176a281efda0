"""berg_core.h5matrix: column-chunked HDF5 matrices (numpy + h5py only; reference = slicing the array)."""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from berg_core import h5matrix  # noqa: E402
from berg_core.errors import InvalidParameterError, ModelLoadError  # noqa: E402
from berg_core.h5matrix import (  # noqa: E402
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
