"""Hostile pickles for tests: small files that crashed berg or made it allocate or loop without end.

Each builder returns a pickle's bytes; ``object_npy`` wraps a pickle in an object ``.npy`` header (what
``np.save(path, some_dict)`` writes). ``run_guarded`` runs a statement in a fresh interpreter under a
memory cap, so a crash (SIGSEGV), a runaway allocation or a hang fails the calling test instead of
killing or stalling pytest. Everything here is built from berg's allow-listed globals only: these are
the files the allow-list alone did not stop.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

_SCALAR = np.float64(0).__reduce__()[0]  # numpy's scalar(dtype, data)
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct(ndarray, (0,), b"b")
_FROMBUFFER = np.zeros(2).__reduce_ex__(5)[0]  # numpy's _frombuffer(buf, dtype, shape, order)


class Reduce:
    """Pickles as ``func(*args)``, then BUILD with ``state`` when given (what a crafted file contains)."""

    def __init__(self, func: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _object_field_state(flags: int = 0) -> tuple[Any, ...]:
    """numpy's dtype state for an 8-byte record whose one field is an object, with ``flags`` (0 = "no objects")."""
    return (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, flags)


#: crafted dtypes, each restored by numpy.dtype + BUILD; all but the last lie about themselves
BAD_DTYPES: dict[str, Reduce] = {
    "void-object-field": Reduce(np.dtype, ("V8", False, True), _object_field_state()),  # the crash
    "float-given-fields": Reduce(np.dtype, ("f8", False, True), _object_field_state()),
    "object-without-object-flags": Reduce(np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0)),
    "subarray": Reduce(np.dtype, ("V16", False, True), (3, "|", (np.dtype("O"), (2,)), None, None, 16, 8, 0)),
    "str-bigger-than-the-file": Reduce(np.dtype, ("U1", False, True), (3, "<", None, None, None, 4 << 30, 4, 8)),
    "datetime": Reduce(np.dtype, ("M8", False, True), (4, "<", None, None, None, -1, -1, 0, (None, (b"s", 1, 1, 1)))),
}


def lying_array(dtype_name: str, shape: tuple[int, ...] = ()) -> Reduce:
    """An array of ``BAD_DTYPES[dtype_name]`` (8 bytes an item) whose data is 0x41 bytes: numpy reads them as pointers."""
    data = b"A" * (8 * int(np.prod(shape, dtype=np.int64)))
    return Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, shape, BAD_DTYPES[dtype_name], False, data))


def object_pointer_pickle(dtype_name: str = "void-object-field", via: str = "array") -> bytes:
    """A pickle that makes numpy read 8 file bytes (0x41...) as an object pointer through ``BAD_DTYPES[dtype_name]``.

    ``via``: ``"array"`` (a 0-d ``_reconstruct`` array of that dtype, what an object ``.npy`` holds) or
    ``"scalar"`` (``scalar(dtype, data)`` inside a dict, wrapped in a 0-d object array).
    """
    if via == "array":
        return pickle.dumps(lying_array(dtype_name), protocol=4)
    return holder_pickle({"fmri": Reduce(_SCALAR, (BAD_DTYPES[dtype_name], b"A" * 8))})


def holder_pickle(obj: Any, protocol: int = 4) -> bytes:
    """``obj`` in a 0-d object array, pickled as ``np.save`` does (protocol 4)."""
    holder = np.empty((), dtype=object)
    holder[()] = obj
    return pickle.dumps(holder, protocol=protocol)


def shared_lists(levels: int = 30, width: int = 4) -> list[Any]:
    """``levels`` lists, each holding the one below ``width`` times: width**levels leaves, a few hundred bytes pickled."""
    node: list[Any] = [0]
    for _ in range(levels):
        node = [node] * width
    return node


def self_holding_list() -> list[Any]:
    """A list that holds itself."""
    loop: list[Any] = []
    loop.append(loop)
    return loop


def deep_lists_pickle(depth: int = 100_000, key: str = "roi") -> bytes:
    """``{"fmri": {...}, key: [[[...]]]}`` (lists ``depth`` deep) in a 0-d object array; opcodes written by hand."""
    marker = "@@DEEP@@"
    blob = holder_pickle({"fmri": {"n_voxels": 3}, key: marker}, protocol=2)  # protocol 2: no frames to re-count
    spelled = pickle.BINUNICODE + struct.pack("<I", len(marker)) + marker.encode()
    assert blob.count(spelled) == 1
    return blob.replace(spelled, pickle.EMPTY_LIST * depth + pickle.APPEND * (depth - 1))


def deep_tuple_set_pickle(depth: int = 1_000_000) -> bytes:
    """A frozenset holding a tuple nested ``depth`` deep: hashing it overflows CPython's C stack."""
    return pickle.PROTO + b"\x04" + pickle.MARK + pickle.EMPTY_TUPLE + pickle.TUPLE1 * depth + pickle.FROZENSET + pickle.STOP


#: pickles that ask for far more memory than their few bytes could hold
HUGE_ALLOCATIONS: dict[str, bytes] = {
    "bytearray(2e9)": pickle.dumps(Reduce(bytearray, (2 * 10**9,)), protocol=4),
    "BYTEARRAY8 of 2e9": pickle.PROTO + b"\x05" + pickle.BYTEARRAY8 + struct.pack("<Q", 2 * 10**9) + pickle.STOP,
    "BINBYTES8 of 2e9": pickle.PROTO + b"\x04" + pickle.BINBYTES8 + struct.pack("<Q", 2 * 10**9) + pickle.STOP,
    "object array of 1e9": pickle.dumps(Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("O"), False, [None])),
                                        protocol=4),
    "ndarray((1e9,))": pickle.dumps(Reduce(np.ndarray, ((10**9,), np.dtype("f8"))), protocol=4),
    "_reconstruct of 1e9": pickle.dumps(Reduce(_RECONSTRUCT, (np.ndarray, (10**9,), b"b")), protocol=4),
    "_frombuffer of 1e9": pickle.dumps(Reduce(_FROMBUFFER, (b"A" * 8, np.dtype("f8"), (10**9,), "C")), protocol=4),
    "scalar of a 4 GB str dtype": pickle.dumps(Reduce(_SCALAR, (BAD_DTYPES["str-bigger-than-the-file"], b"A" * 16)), protocol=4),
}


def _body(obj: Any) -> bytes:
    """Opcodes (protocol 3) that push ``obj``: no PROTO, no STOP, memo indices only where ``obj`` shares parts."""
    return pickletools.optimize(pickle.dumps(obj, protocol=3))[2:-1]


def _put(i: int) -> bytes:
    return pickle.LONG_BINPUT + struct.pack("<I", i)


def _get(i: int) -> bytes:
    return pickle.LONG_BINGET + struct.pack("<I", i)


_MINE = 10**6  # memo indices for the builders below (pickletools numbers a body's own from 0)


def reusing_call_pickle(func: Any, arg: Any, n: int) -> bytes:
    """A list of ``n`` separate ``func(arg)`` calls, ``func`` and ``arg`` pickled once and fetched from the memo."""
    return (pickle.PROTO + b"\x03" + _body(func) + _put(_MINE) + pickle.POP + _body(arg) + _put(_MINE + 1) + pickle.POP
            + pickle.EMPTY_LIST + (_get(_MINE) + _get(_MINE + 1) + pickle.TUPLE1 + pickle.REDUCE + pickle.APPEND) * n
            + pickle.STOP)


def repeated_key_pickle(key: Any, n: int) -> bytes:
    """A dict given the same ``key`` ``n`` times (SETITEM): every insertion hashes it again."""
    return (pickle.PROTO + b"\x03" + _body(key) + _put(_MINE) + pickle.POP + pickle.EMPTY_DICT
            + (_get(_MINE) + pickle.NONE + pickle.SETITEM) * n + pickle.STOP)


def shared_data_arrays_pickle(n_items: int, n: int) -> bytes:
    """``n`` object arrays, each BUILT from one memoised list of ``n_items`` (numpy copies it every time)."""
    state = (1, (n_items,), np.dtype("O"), False, [None] * n_items)
    return (pickle.PROTO + b"\x03" + _body(_RECONSTRUCT) + _put(_MINE) + pickle.POP + _body((np.ndarray, (0,), b"b"))
            + _put(_MINE + 1) + pickle.POP + _body(state) + _put(_MINE + 2) + pickle.POP + pickle.EMPTY_LIST
            + (_get(_MINE) + _get(_MINE + 1) + pickle.REDUCE + _get(_MINE + 2) + pickle.BUILD + pickle.APPEND) * n + pickle.STOP)


def array_setitem_pickle() -> bytes:
    """``object_array[:] = <lists that share each other>`` (SETITEM on an array): numpy would expand the lists."""
    return pickle.PROTO + b"\x03" + _body(np.empty(1, dtype=object)) + _body(slice(None)) + _body(shared_lists(30, 4)) + \
        pickle.SETITEM + pickle.STOP


def shared_tuples(levels: int = 60) -> tuple[Any, ...]:
    """``levels`` tuples, each holding the one below twice: hashing the top one walks 2**levels tuples."""
    node: tuple[Any, ...] = (0,)
    for _ in range(levels):
        node = (node, node)
    return node


#: small pickles that reuse one memoised part until copying or hashing it takes gigabytes or hours
AMPLIFIERS: dict[str, bytes] = {
    "bytearray(one 100 kB bytes) x 20000": reusing_call_pickle(bytearray, b"A" * 100_000, 20_000),
    "set(one 100k list) x 20000": reusing_call_pickle(set, list(range(100_000)), 20_000),
    "dict key: one 100k tuple x 50000": repeated_key_pickle(tuple(range(100_000)), 50_000),
    "dict key: tuples sharing each other 60 deep": repeated_key_pickle(shared_tuples(60), 1),
    "object arrays from one 100k list x 20000": shared_data_arrays_pickle(100_000, 20_000),
    "SETITEM on an array": array_setitem_pickle(),
}


def object_npy(path: Path | str, payload: bytes) -> Path:
    """Write ``payload`` after an object ``.npy`` header (``|O``, shape ``()``) at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
        fh.write(payload)
    return path


def run_guarded(statement: str, *args: str, memory_bytes: int = 1 << 30, timeout: float = 120) -> str:
    """Run ``statement`` (Python; ``sys.argv[1:]`` = ``args``) in a fresh interpreter; return what it raised.

    The child's address space is capped at ``memory_bytes`` (Linux), so a runaway allocation becomes a
    ``MemoryError`` there. Returns ``"BergError <class>: <message>"`` for a ``BergError``,
    ``"other <class>: <message>"`` for any other exception and ``"no error"`` otherwise; a crash
    (SIGSEGV: exit -11) or a hang fails with an ``AssertionError`` / ``TimeoutExpired``.
    """
    code = textwrap.dedent("""\
        import sys
        try:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        except (ImportError, ValueError, OSError):
            pass
        from berg_core.errors import BergError
        try:
        {body}
        except BergError as exc:
            print("BergError", type(exc).__name__ + ":", " ".join(str(exc).split()))
        except BaseException as exc:
            print("other", type(exc).__name__ + ":", " ".join(str(exc).split())[:300])
        else:
            print("no error")
        """).format(limit=int(memory_bytes), body=textwrap.indent(textwrap.dedent(statement), "    "))
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                         env=os.environ.copy())
    assert out.returncode == 0, f"the child died with exit code {out.returncode} (SIGSEGV is -11): {out.stderr[-3000:]}"
    lines = out.stdout.strip().splitlines()
    assert lines, f"the child printed nothing: {out.stderr[-3000:]}"
    return lines[-1]
