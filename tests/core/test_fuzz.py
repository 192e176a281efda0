"""Fuzz: no user input reaches the user as anything but a ``BergError`` (Python API) or one line (CLI).

Hypothesis drives the BERG facade (and ``berg_core.search.search``) and ``berg_core.cli.main`` with random
model ids (of any type), subjects, selections, options, devices, stimuli, argv and files (``--input``,
``--voxels``, ``--output``, ``--berg-dir``, trained-encoder cards) against the light test plugin
(tests/plugins/berg_testplugin), so no backbone is loaded. Bounded and seeded (``derandomize=True``): the
same examples run on every machine, in about 25 s.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from berg_core.cli import main
from berg_core.errors import BergError
from berg_core.facade import BERG
from berg_core.search import search

SETTINGS = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
MODELS = ["test-sentence_length", "test-timed_words", "test-duplicate"]

# ------------------------------------------------------------------------------------------ values

# printable and awkward text: control characters, NUL, surrogate-free unicode, very long tokens
text = st.text(max_size=12) | st.sampled_from(["", " ", "\x00", "a\x00b", "roi_a", "roi_b", "S1", "S2", "..", "/", "-", "*", "[",
                                                "\u00e9t\u00e9", "x" * 300])
scalars = st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=True, allow_infinity=True) | text | st.binary(max_size=6)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=3), max_leaves=8)
arrays = st.sampled_from([np.zeros(4), np.ones(4, dtype=int), np.array([1, 0, 1, 0]), np.array(["a", "b"]), np.zeros((2, 2)),
                          np.array([np.nan] * 4), np.array([], dtype=float), np.array([object(), 1], dtype=object), np.float64(2.0)])
model_ids = st.sampled_from(MODELS) | text | st.integers() | st.none() | st.binary(max_size=4) | st.lists(text, max_size=2) | st.floats()
# mostly valid values, so most examples get past one check and reach the next
subjects = st.none() | st.sampled_from(["S1", "S2", 1, "s1"]) | values
roi_values = st.sampled_from(["roi_a", "roi_c", ["roi_b", "roi_a"], ("roi_c",), [], "bad", np.array(["roi_b"])]) | values | arrays
voxel_values = st.sampled_from([[1, 0, 1, 0], np.ones(4), np.array([True, False, True, True]), [1, 0]]) | values | arrays
selections = (st.none() | st.fixed_dictionaries({}, optional={"roi": roi_values, "voxel_index": voxel_values})
              | values | st.dictionaries(text | st.integers(), values, max_size=2))
option_values = st.sampled_from([0.5, 2, 1, -1.0, 0, True, None, "2", float("nan"), 10**30]) | values | arrays
options = (st.fixed_dictionaries({}, optional={"scale": option_values, "batch_size": option_values})
           | st.dictionaries(st.sampled_from(["berg_dir", "spec"]) | st.text(min_size=1, max_size=6), values, max_size=2))
devices = st.sampled_from(["auto", "cpu", "CPU", "cuda", "cuda:7", "mps", "tpu"]) | values
words = st.lists(text, min_size=1, max_size=5)
word_containers = st.lists(values, max_size=3) | values | arrays
onsets = st.lists(st.floats(0, 600) | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 10**6) | text, max_size=5)
stimuli = (st.sampled_from(["The cat sat.", ["a b c", "de"], {"words": ["I", "ran"], "word_onsets": [0.0, 0.5]}])
           | values | arrays | words
           | st.fixed_dictionaries({"words": words | word_containers, "word_onsets": onsets | values | arrays}))


def _mostly(valid: st.SearchStrategy, anything: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` about 4 times in 5, else ``anything``: most examples pass one check and reach the next."""
    return st.integers(0, 4).flatmap(lambda i: anything if i == 0 else valid)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn``; a ``BergError`` is an allowed outcome (returned), anything else propagates.

    A message "a plugin bug" means an exception escaped the (light, trusting) test plugin: the core let
    through an input it should have refused, so that fails too.
    """
    try:
        return fn(*args, **kwargs)
    except BergError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message.strip(), f"{type(exc).__name__} without a one-line message: {message!r}"
        assert "a plugin bug" not in message, message
        return exc


@settings(max_examples=150, **SETTINGS)
@given(model_id=model_ids, subject=subjects, pattern=st.none() | text | values,
       berg_dir=_mostly(st.none(), st.sampled_from(["a_file", "a\x00b", "x" * 5000]) | st.integers() | st.binary(max_size=3)))
def test_python_api_model_ids_of_any_type(model_id, subject, pattern, berg_dir):
    if berg_dir == "a_file":
        berg_dir = Path(os.environ["BERG_CACHE_DIR"]) / "a_file"
        berg_dir.parent.mkdir(parents=True, exist_ok=True)
        berg_dir.write_text("not a folder")
    berg = _call(BERG, berg_dir)
    if isinstance(berg, BergError):
        return
    _call(berg.list_models, pattern)
    _call(berg.describe, model_id)
    _call(berg.get_model_metadata, model_id, subject)
    _call(berg.get_encoding_model, model_id, subject=subject, device="cpu")
    _call(berg.fetch, model_id, subject=subject, show_progress=False)


@st.composite
def loads(draw: st.DrawFn) -> tuple[str, Any, Any, dict, Any]:
    """(model id, subject, selection, options, device) for ``get_encoding_model``, mostly valid."""
    model_id = draw(st.sampled_from(MODELS[:2]))
    good_subject = st.none() if model_id == MODELS[0] else st.sampled_from(["S1", "S2"])
    good_options = st.fixed_dictionaries({}, optional={"scale": st.floats(-10, 10), "batch_size": st.integers(1, 64)})
    return (model_id, draw(_mostly(good_subject, subjects)), draw(_mostly(st.none(), selections)),
            draw(_mostly(good_options if model_id == MODELS[0] else st.just({}), options)),
            draw(_mostly(st.sampled_from(["cpu", "auto"]), devices)))


@settings(max_examples=300, **SETTINGS)
@given(load=loads(), stimulus=stimuli, metadata=st.booleans(), top_k=_mostly(st.integers(1, 3), values))
def test_python_api_load_and_encode(load, stimulus, metadata, top_k):
    model_id, subject, selection, opts, device = load
    berg = BERG()
    model = _call(berg.get_encoding_model, model_id, subject=subject, selection=selection, device=device, **opts)
    if isinstance(model, BergError):
        return
    with model:
        _call(berg.encode, model, stimulus, return_metadata=metadata)
        _call(model.encode, stimulus)
        _call(lambda: model.metadata)
        _call(search, model, stimulus, top_k=top_k)
    assert isinstance(_call(model.encode, ["after close"]), BergError)


# ------------------------------------------------------------------------------------------- CLI

EXTENSIONS = [".txt", ".json", ".csv", ".tsv", ".npy", ".h5", ".xlsx", ""]
good_files = {
    ".txt": b"one sentence\nanother one\n",
    ".json": b'{"words": ["I", "ran", "home"], "word_onsets": [0.0, 0.5, 2.5]}',
    ".csv": b"word,onset\nI,0.0\nran,0.5\n",
    ".tsv": b"word\tonset\nI\t0.0\nran\t0.5\n",
}
awkward_bytes = st.sampled_from([
    b"", b"\n\n", b"\xef\xbb\xbfone\ntwo\n", b"\xff\xfe\x00bad", b"abc\n\ndef\n", b"[1, 2", b'{"words": "x"}', b"[[[[[[[[[[" * 2000,
    b"word,onset\n", b"word,onset\nI\n", b"word,onset,x\na,1,2,3\n", b"a\x00b\n", b"1 0 1 0", b"1,0,x", b"nan nan",
    b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}    \n", b"\x93NUMPY\x09\x00", b"word,onset\n\"unterminated,1\n",
    b'"' + b"x" * 200_000 + b'"\n', b'{"words": ["a"], "word_onsets": ["x"]}', b'{"a": 1e999}', b"\x00" * 64,
])


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


good_files[".npy"] = _npy_bytes(np.array([1, 0, 1, 1]))
npy_files = st.sampled_from([np.array([1, 0, 1, 0]), np.zeros(4), np.array(["a"]), np.array([{"a": 1}], dtype=object),
                             np.zeros((2, 2)), np.array([np.nan, 1.0]), np.array(3.0), np.array([1, 0, 1, 0], dtype=np.complex64)]).map(_npy_bytes)
file_contents = awkward_bytes | npy_files | st.sampled_from(sorted(good_files.values())) | st.binary(max_size=40)


@st.composite
def input_files(draw: st.DrawFn, root: Path, name: str) -> str:
    """A path to give on the command line: a random file, a folder, a missing file, or ``-`` (stdin)."""
    kind = draw(st.sampled_from(["file", "file", "file", "dir", "missing", "stdin"]))
    if kind == "stdin":
        return "-"
    path = root / f"{name}{len(list(root.iterdir()))}{draw(st.sampled_from(EXTENSIONS))}"
    if kind == "dir":
        path.mkdir(exist_ok=True)
    elif kind == "file":
        path.write_bytes(draw(file_contents))
    return str(path)


@st.composite
def output_paths(draw: st.DrawFn, root: Path) -> str:
    """Where to write: good, unknown extension, an existing folder, inside a file, in a missing folder."""
    ext = draw(st.sampled_from([".npy", ".csv", ".h5", ".hdf5", ".txt", ""]))
    kind = draw(st.sampled_from(["plain", "plain", "dir", "under_file", "missing_parent"]))
    if kind == "dir":
        (root / f"outdir{ext}").mkdir(exist_ok=True)
        return str(root / f"outdir{ext}")
    if kind == "under_file":
        (root / "afile").write_text("x")
        return str(root / "afile" / f"out{ext}")
    if kind == "missing_parent":
        return str(root / "new" / "deeper" / f"out{ext}")
    return str(root / f"out{ext}")


flag_values = st.sampled_from(["roi_a", "roi_b,roi_c", "bad", "", "S1", "S2", "0", "-1", "2", "cpu", "gpu", "scale=2", "scale=x",
                               "batch_size=0", "novalue", "=1", "a sentence"]) | st.text(max_size=6)
ints = _mostly(st.integers(1, 5).map(str), st.sampled_from(["0", "-3", "x", "1e3", "99999999999"]))
FLAG_VALUES = {
    "--subject": _mostly(st.sampled_from(["S1", "S2"]), flag_values),
    "--roi": _mostly(st.sampled_from(["roi_a", "roi_c", "roi_b,roi_a", "all"]), flag_values),
    "--device": _mostly(st.just("cpu"), flag_values),
    "--batch-size": ints, "--top-k": ints, "--chunk-size": ints,
    "-O": _mostly(st.sampled_from(["scale=2", "scale=0.5", "batch_size=3"]), flag_values),
}
GOOD_INPUT = {"test-sentence_length": ".txt", "test-timed_words": st.sampled_from([".json", ".csv", ".tsv"])}


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**7) | st.floats(allow_nan=False) | text,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=3), max_leaves=8)
json_stimuli = (json_values | st.fixed_dictionaries({"words": json_values, "word_onsets": json_values})
                | st.fixed_dictionaries({"words": st.lists(text, min_size=1, max_size=4),
                                         "word_onsets": st.lists(st.floats(0, 100) | json_values, min_size=1, max_size=4)})
                ).map(lambda obj: json.dumps(obj).encode())


@st.composite
def good_or_awkward_file(draw: st.DrawFn, root: Path, name: str, ext: str | None) -> str:
    """Mostly a well-formed file of the expected type, sometimes anything ``input_files`` makes."""
    if ext is None or draw(st.integers(0, 2)) == 0:
        return draw(input_files(root, name))
    path = root / f"{name}{len(list(root.iterdir()))}{ext}"
    awkward = json_stimuli | file_contents if ext == ".json" else file_contents
    path.write_bytes(draw(_mostly(st.just(good_files[ext]), awkward)))
    return str(path)


@st.composite
def berg_dirs(draw: st.DrawFn, root: Path) -> list[str]:
    """``--berg-dir`` pointing at a file, a folder, a missing folder or an invalid path."""
    kind = draw(st.sampled_from(["file", "dir", "missing", "nul"]))
    path = root / f"bergdir{len(list(root.iterdir()))}"
    if kind == "file":
        path.write_text("not a folder")
    elif kind == "dir":
        path.mkdir()
    return ["--berg-dir", "a\x00b" if kind == "nul" else str(path)]


card_bytes = st.sampled_from([b"", b"{}", b"[]", b"\xff\xfe{", b'{"format": "berg-trained-encoder/1"}', b"[" * 5000, b'{"model_id": 5}',
                              b'{"format": "berg-trained-encoder/1", "model_id": "x", "outputs": {"n": 1e30}}']) | st.binary(max_size=30)


@st.composite
def card_folders(draw: st.DrawFn, root: Path) -> str:
    """A folder holding a (mostly malformed) trained-encoder card, given as the model."""
    from berg_core.trained.cards import CARD_FILE

    folder = root / f"encoder{len(list(root.iterdir()))}"
    folder.mkdir()
    (folder / CARD_FILE).write_bytes(draw(card_bytes))
    return str(folder)


@st.composite
def argvs(draw: st.DrawFn, root: Path) -> list[str]:
    """A ``berg`` command line: mostly well-formed, so most examples reach the model and the files."""
    command = draw(st.sampled_from(["encode", "encode", "encode", "search", "search", "info", "list", "fetch"]))
    model = draw(_mostly(st.sampled_from(MODELS[:2]), st.sampled_from(MODELS) | st.text(max_size=8) | card_folders(root)))
    argv = [command, model]
    if draw(st.integers(0, 5)) == 0:
        argv = [*draw(berg_dirs(root)), *argv]
    flags = {
        "encode": ["--subject", "--roi", "--voxels", "--device", "--batch-size", "-O", "--json", "--output"],
        "search": ["--top-k", "--roi", "--subject", "--device", "--batch-size", "--chunk-size", "-O", "--quiet", "--output"],
        "info": ["--subject", "--json"],
        "list": ["--json"],
        "fetch": ["--subject"],
    }[command]
    if model == "test-timed_words" and draw(st.integers(0, 3)):
        argv += ["--subject", draw(st.sampled_from(["S1", "S2"]))]
    if command == "encode":
        if model == "test-sentence_length" and draw(st.booleans()):
            argv += draw(st.lists(_mostly(st.sampled_from(["abc", "a sentence"]), st.sampled_from(["", "   ", "x\x00y", "-"])
                                          | st.text(max_size=8)), min_size=1, max_size=3))
        else:
            ext = GOOD_INPUT.get(model)
            ext = draw(ext) if isinstance(ext, st.SearchStrategy) else ext
            argv += ["--input", draw(_mostly(good_or_awkward_file(root, "in", ext), st.just("-")))]
    if command == "search":
        argv += ["--input", draw(_mostly(good_or_awkward_file(root, "corpus", ".txt"), st.just("-")))]
    for flag in draw(st.lists(st.sampled_from(flags), max_size=4)):
        if flag in {"--json", "--quiet"}:
            argv.append(flag)
        elif flag == "--voxels":
            argv += [flag, draw(good_or_awkward_file(root, "vox", ".npy"))]
        elif flag == "--output":
            argv += [flag, draw(output_paths(root))]
        else:
            argv += [flag, draw(FLAG_VALUES.get(flag, flag_values))]
    return argv


@contextlib.contextmanager
def _stdio(stdin: bytes) -> Any:
    """Swap in a stdin holding ``stdin`` (as a real text stream with a byte buffer) and capture stdout/stderr."""
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    try:
        yield sys.stdout, sys.stderr
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


@settings(max_examples=300, **SETTINGS)
@given(data=st.data(), stdin=_mostly(st.just(b"one sentence\nand another\n"), file_contents))
def test_cli_exits_cleanly(data, stdin):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        argv = data.draw(argvs(root), label="argv")
        cwd = os.getcwd()
        os.chdir(root)
        try:
            with _stdio(stdin) as (out, err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse: usage errors exit 2, --help 0
                    code = exc.code
        finally:
            os.chdir(cwd)
        stderr = err.getvalue()
        assert code in (0, 1, 2), (argv, code, stderr)
        assert "Traceback" not in stderr, (argv, stderr)
        if code == 1:
            assert stderr.startswith("berg: error: ") and stderr.count("\n") == 1, (argv, stderr)
        if code != 0 and "--output" in argv:
            target = Path(argv[argv.index("--output") + 1])
            assert not target.is_file(), f"{argv}: failed but wrote {target}"
        leftovers = [p for p in root.rglob("*.tmp")]
        assert not leftovers, leftovers
