"""Trained-encoder cards are data: malformed, oversized or path-escaping cards are one ``ModelLoadError`` line,
a bad card hides only itself, a card never shadows an installed plugin's model, the arrays' pinned sha256 and
the HDF5 shape/dtype are checked on load, and a folder is replaced as a unit. No backbone needed here: the
weights/arrays checks run before the backbone is loaded."""

import json
import os
import shutil
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from berg_core import BERG
from berg_core.cli import main
from berg_core.errors import BergError, InvalidParameterError, ModelLoadError, PluginError
from berg_core.registry import build_registry, get_registry
from berg_core.trained.cards import CARD_FILE, file_sha256, read_card, spec_from_dir
from berg_core.trained.encoder import staged_folder, write_encoder_dir

N_OUT = 3
N_FEAT = 4


def make_encoder(folder: Path, model_id: str = "lab-tiny_card", seed: int = 0) -> Path:
    """A small trained-encoder folder (2 feature rows reduced from 4, 3 outputs) written by berg's own writer."""
    rng = np.random.default_rng(seed)
    card = {"model_id": model_id, "stimulus": "sentences", "description": "a test card",
            "feature_spaces": [{"name": "f", "backbone": None, "revision": None, "layer": None, "pooling": "last",
                                "n_features": N_FEAT, "reduce": {"method": "pca", "n_components": 2}}],
            "delays": [], "delay_mode": "fir", "tr": None, "outputs": {"names": ["a", "b", "c"]},
            "rois": {"left": [0, 1]}, "scores": {"mean_cv_cc": 0.5}, "training": {"n_samples": 10}, "card": ""}
    return write_encoder_dir(folder, card=card, coef=rng.standard_normal((2, N_OUT)), intercept=rng.standard_normal(N_OUT),
                             pca=[(rng.standard_normal(N_FEAT), rng.standard_normal((2, N_FEAT)))],
                             arrays={"cv_cc": rng.uniform(size=N_OUT)})


def edit_card(folder: Path, change) -> None:
    card = json.loads((folder / CARD_FILE).read_text())
    change(card)
    (folder / CARD_FILE).write_text(json.dumps(card))


def repin(folder: Path) -> None:
    """Record the current files' sha256 in the card (what a careful forger would do)."""
    def change(card):
        card["weights"]["sha256"] = {name: file_sha256(folder / name) for name in ("weights.h5", "arrays.npz")}
    edit_card(folder, change)


def one_line_error(capsys, *argv) -> str:
    """Run the CLI; it must fail with exactly one ``berg: error:`` line and no traceback."""
    assert main(list(argv)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("berg: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def encoder(tmp_path):
    return make_encoder(tmp_path / "enc")


def test_a_written_card_pins_hashes_and_reads_back(encoder):
    card = read_card(encoder)
    assert card["weights"]["shape"] == [2, N_OUT] and card["weights"]["dtype"] == "float32"
    assert card["weights"]["sha256"] == {"weights.h5": file_sha256(encoder / "weights.h5"),
                                         "arrays.npz": file_sha256(encoder / "arrays.npz")}
    spec = spec_from_dir(encoder)
    assert spec.model_id == "lab-tiny_card" and spec.info["n_outputs"] == N_OUT
    meta = BERG().get_model_metadata(str(encoder))
    assert meta["output_names"] == ["a", "b", "c"] and meta["encoding_model"]["cv_cc"].shape == (N_OUT,)


MALFORMED = {
    "invalid utf-8": lambda f: (f / CARD_FILE).write_bytes(b'{"format": "berg-trained-encoder/1", "model_id": "\xff\xfe"}'),
    "not json": lambda f: (f / CARD_FILE).write_text("{not json"),
    "deep nesting": lambda f: (f / CARD_FILE).write_text('{"format": "berg-trained-encoder/1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "moderately deep nesting": lambda f: edit_card(f, lambda c: c.update(training={"a": json.loads("[" * 60 + "]" * 60)})),
    "a 10000-digit integer": lambda f: (f / CARD_FILE).write_text('{"format": "berg-trained-encoder/1", "n": ' + "9" * 10_000 + "}"),
    "outputs is a list": lambda f: edit_card(f, lambda c: c.update(outputs=[1, 2, 3])),
    "outputs.n is text": lambda f: edit_card(f, lambda c: c["outputs"].update(n="3")),
    "outputs.n = 10**12": lambda f: edit_card(f, lambda c: c["outputs"].update(n=10**12, names=None)),
    "outputs.n is a bool": lambda f: edit_card(f, lambda c: c["outputs"].update(n=True)),
    "names of the wrong length": lambda f: edit_card(f, lambda c: c["outputs"].update(names=["a"])),
    "a name that is a number": lambda f: edit_card(f, lambda c: c["outputs"].update(names=["a", 2, "c"])),
    "feature_spaces is an object": lambda f: edit_card(f, lambda c: c.update(feature_spaces={"name": "f"})),
    "n_features huge": lambda f: edit_card(f, lambda c: c["feature_spaces"][0].update(n_features=10**15)),
    "n_components above n_features": lambda f: edit_card(f, lambda c: c["feature_spaces"][0]["reduce"].update(n_components=99)),
    "layer is text": lambda f: edit_card(f, lambda c: c["feature_spaces"][0].update(layer="2", backbone="gpt2")),
    "ROI column out of range": lambda f: edit_card(f, lambda c: c.update(rois={"left": [0, 7]})),
    "ROI columns as text": lambda f: edit_card(f, lambda c: c.update(rois={"left": "0,1"})),
    "delays of text": lambda f: edit_card(f, lambda c: c.update(delays=["1"])),
    "tr negative": lambda f: edit_card(f, lambda c: c.update(tr=-2.0)),
    "tr infinite": lambda f: (f / CARD_FILE).write_text((f / CARD_FILE).read_text().replace('"tr": null', '"tr": 1e999')),
    "unknown context option": lambda f: edit_card(f, lambda c: c.update(context={"batch_size": 3})),
    "model id with a slash": lambda f: edit_card(f, lambda c: c.update(model_id="../../etc")),
    "scores is a list": lambda f: edit_card(f, lambda c: c.update(scores=[1])),
    "description is a number": lambda f: edit_card(f, lambda c: c.update(description=3)),
    "card text with a terminal escape": lambda f: edit_card(f, lambda c: c.update(card="ok\x1b]0;pwned\x07")),
    "weights shape disagrees with the spaces": lambda f: edit_card(f, lambda c: c["weights"].update(shape=[5, N_OUT])),
    "weights dtype float16": lambda f: edit_card(f, lambda c: c["weights"].update(dtype="float16")),
    "no pinned hashes": lambda f: edit_card(f, lambda c: c["weights"].pop("sha256")),
    "hash not hex": lambda f: edit_card(f, lambda c: c["weights"]["sha256"].update({"weights.h5": "zz"})),
    "weights file outside the folder": lambda f: edit_card(f, lambda c: c["weights"].update(file="../weights.h5")),
    "weights file absolute": lambda f: edit_card(f, lambda c: c["weights"].update(file="/etc/passwd")),
    "arrays file with a NUL": lambda f: edit_card(f, lambda c: c["weights"].update(arrays="arrays\x00.npz")),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_card_is_one_line(case, encoder, capsys):
    if case == "weights file outside the folder":
        shutil.copy(encoder / "weights.h5", encoder.parent / "weights.h5")  # a real file there: only the guard refuses it
    MALFORMED[case](encoder)
    with pytest.raises(ModelLoadError):
        read_card(encoder)
    with pytest.raises(ModelLoadError):
        spec_from_dir(encoder)
    err = one_line_error(capsys, "info", str(encoder))
    assert str(encoder) in err


def test_a_huge_output_count_is_refused_before_allocating(encoder):
    edit_card(encoder, lambda c: c["outputs"].update(n=10**12, names=None))
    tracemalloc.start()
    try:
        with pytest.raises(ModelLoadError, match="outputs.n"):
            spec_from_dir(encoder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_an_oversized_card_is_refused_unread(encoder, monkeypatch):
    import berg_core.trained.cards as cards

    monkeypatch.setattr(cards, "MAX_CARD_BYTES", 1000)
    with pytest.raises(ModelLoadError, match="limit 1000"):
        read_card(encoder)


@pytest.mark.parametrize("name", ["weights.h5", "arrays.npz", CARD_FILE])
def test_a_symlink_out_of_the_folder_is_refused(name, encoder, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(encoder / name, outside / name)
    os.symlink(outside / name, encoder / name)
    with pytest.raises(ModelLoadError, match="outside the encoder folder"):
        read_card(encoder)


def test_a_symlink_inside_the_folder_is_fine(encoder):
    (encoder / "data").mkdir()
    shutil.move(encoder / "weights.h5", encoder / "data" / "w.h5")
    os.symlink(encoder / "data" / "w.h5", encoder / "weights.h5")
    assert read_card(encoder)["weights"]["file"] == "weights.h5"


@pytest.mark.parametrize("name", ["weights.h5", "arrays.npz"])
def test_a_flipped_byte_is_detected_on_load(name, encoder):
    data = bytearray((encoder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (encoder / name).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=rf"{name} is corrupt \(sha256"):
        BERG().get_encoding_model(str(encoder), device="cpu")
    if name == "arrays.npz":
        with pytest.raises(ModelLoadError, match=rf"{name} is corrupt"):
            BERG().get_model_metadata(str(encoder))


def test_weights_must_have_the_recorded_shape_and_dtype(encoder):
    from berg_core.store.h5matrix import write_matrix

    with pytest.raises(ModelLoadError, match="names no backbone"):  # intact: every weight check passes first
        BERG().get_encoding_model(str(encoder), device="cpu")
    coef = np.random.default_rng(0).standard_normal((2, N_OUT))
    write_matrix(encoder / "weights.h5", coef, dtype=">f4")  # same values, big-endian datatype header
    repin(encoder)
    with pytest.raises(ModelLoadError, match=r"weights.h5 holds a .*>f4.* matrix but"):
        BERG().get_encoding_model(str(encoder), device="cpu")
    write_matrix(encoder / "weights.h5", np.zeros((2, N_OUT + 1)), dtype="float32")
    repin(encoder)
    with pytest.raises(ModelLoadError, match=r"weights.h5 holds a .*\(2, 4\).* matrix but"):
        BERG().get_encoding_model(str(encoder), device="cpu")


@pytest.mark.parametrize("bad", ["int intercept", "wrong shape", "compressed", "missing"])
def test_arrays_are_checked_before_they_are_read(bad, encoder):
    with np.load(encoder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    if bad == "int intercept":
        arrays["intercept"] = np.arange(N_OUT)
    elif bad == "wrong shape":
        arrays["intercept"] = np.zeros(10**6, dtype=np.float32)
    elif bad == "missing":
        del arrays["pca_mean_0"]
    (np.savez_compressed if bad == "compressed" else np.savez)(encoder / "arrays.npz", **arrays)
    repin(encoder)
    with pytest.raises(ModelLoadError, match="arrays.npz is damaged"):
        BERG().get_encoding_model(str(encoder), device="cpu")


# ------------------------------------------------------------------------------------------------
# registration: one bad card hides only itself; a card never shadows an installed model
# ------------------------------------------------------------------------------------------------
def test_one_bad_card_hides_only_itself(tmp_path, monkeypatch, capsys):
    root = tmp_path / "encoders"
    make_encoder(root / "good", model_id="lab-good")
    bad = make_encoder(root / "bad", model_id="lab-bad")
    edit_card(bad, lambda c: c["outputs"].update(n="many"))
    monkeypatch.setenv("BERG_ENCODER_PATH", str(root))
    reg = get_registry()
    assert "lab-good" in reg.specs and "lab-bad" not in reg.specs
    trained = {p.name: p for p in reg.plugins}["trained"]
    assert trained.error is None and trained.models == ["lab-good"]
    assert len(trained.problems) == 1 and str(bad) in trained.problems[0] and "outputs.n" in trained.problems[0]
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert f"skipped {bad}" in out and "outputs.n must be an integer" in out
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plugins"][0]["problems"] == trained.problems
    assert main(["list"]) == 0
    assert "1 item(s) skipped: see `berg plugins`" in capsys.readouterr().out


def test_a_bad_card_fails_strict_mode(tmp_path, monkeypatch):
    bad = make_encoder(tmp_path / "bad")
    (bad / CARD_FILE).write_bytes(b"\xff")
    monkeypatch.setenv("BERG_ENCODER_PATH", str(bad))
    monkeypatch.setenv("BERG_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="not valid UTF-8"):
        build_registry()


def test_a_card_cannot_shadow_an_installed_model(tmp_path, monkeypatch, capsys):
    folder = make_encoder(tmp_path / "shadow", model_id="test-sentence_length")  # the test plugin's model
    monkeypatch.setenv("BERG_ENCODER_PATH", str(folder))
    reg = get_registry()
    assert reg.specs["test-sentence_length"].family == "testplugin"
    assert "test-sentence_length" not in reg.duplicates
    assert reg.shadowed["test-sentence_length"] == [f"trained folder {folder.resolve()}"]
    trained = {p.name: p for p in reg.plugins}["trained"]
    assert trained.models == [] and "installed plugin testplugin" in trained.problems[0]
    assert main(["plugins"]) == 0
    assert "claims model id 'test-sentence_length' of installed plugin testplugin" in capsys.readouterr().out
    with BERG().get_encoding_model("test-sentence_length") as model:
        assert model.spec.family == "testplugin"


def test_two_cards_with_one_id_are_both_kept_out(tmp_path, monkeypatch):
    make_encoder(tmp_path / "a" / "x", model_id="lab-same")
    make_encoder(tmp_path / "b" / "x", model_id="lab-same")
    monkeypatch.setenv("BERG_ENCODER_PATH", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    reg = build_registry()
    assert "lab-same" not in reg.specs
    assert len(reg.duplicates["lab-same"]) == 2 and all("trained folder" in c for c in reg.duplicates["lab-same"])


# ------------------------------------------------------------------------------------------------
# a folder written as a unit
# ------------------------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_staged_folder_replaces_or_keeps_the_old_one(exchange, encoder, monkeypatch):
    import berg_core.store.cache as trained

    real_exchange, swaps = trained._exchange, []
    monkeypatch.setattr(trained, "_exchange", lambda a, b: swaps.append(exchange and real_exchange(a, b)) or swaps[-1])
    old = snapshot(encoder)
    with pytest.raises(RuntimeError, match="killed"):
        with staged_folder(encoder, overwrite=True) as stage:
            make_encoder(stage, seed=1)
            assert snapshot(encoder) == old
            raise RuntimeError("killed")
    assert snapshot(encoder) == old and [p.name for p in encoder.parent.iterdir()] == ["enc"]
    with staged_folder(encoder, overwrite=True) as stage:
        make_encoder(stage, seed=1)
    assert snapshot(encoder) != old and read_card(encoder)["model_id"] == "lab-tiny_card"
    assert [p.name for p in encoder.parent.iterdir()] == ["enc"]
    assert swaps == [exchange] or not sys.platform.startswith("linux")  # Linux: one atomic exchange


def test_a_switch_cut_between_its_two_renames_is_undone(encoder, monkeypatch):
    """Fallback switch (no renameat2), killed after moving the old folder away: the next writer puts it back."""
    import berg_core.store.cache as trained

    old = snapshot(encoder)
    monkeypatch.setattr(trained, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def rename(src, dst):
        real_rename(src, dst)
        if ".old-" in str(dst):
            raise KeyboardInterrupt  # killed right after the first rename

    monkeypatch.setattr(trained.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(encoder, overwrite=True) as stage:
            make_encoder(stage, seed=1)
    monkeypatch.setattr(trained.os, "rename", real_rename)
    assert not encoder.exists()
    left = next(encoder.parent.glob(".enc.old-*"))
    pid = int(left.name.split("-")[-2])
    left.rename(left.with_name(left.name.replace(f"-{pid}-", "-999999999-")))  # its writer is gone
    with pytest.raises(RuntimeError):
        with staged_folder(encoder, overwrite=True):
            assert snapshot(encoder) == old  # restored before anything else happens
            raise RuntimeError
    assert snapshot(encoder) == old


def test_stale_stages_of_dead_writers_are_removed(encoder):
    import socket

    stale = encoder.parent / f".enc.tmp-{socket.gethostname()}-999999999-0123abcd"
    mine = encoder.parent / f".enc.tmp-{socket.gethostname()}-{os.getpid()}-0123abcd"  # this process, no writer running
    live = encoder.parent / f".enc.tmp-{socket.gethostname()}-1-0123abcd"  # pid 1 is alive
    for folder in (stale, mine, live):
        folder.mkdir()
    with staged_folder(encoder, overwrite=True) as stage:
        make_encoder(stage, seed=2)
        with staged_folder(encoder, overwrite=True):  # a second writer in this process keeps the first one's stage
            assert stage.exists()
    assert not stale.exists() and not mine.exists() and live.exists()


def test_out_folder_rules(tmp_path):
    from berg_core.trained.encoder import check_out_folder

    (tmp_path / "empty").mkdir()
    assert check_out_folder(tmp_path / "empty", overwrite=False) == tmp_path / "empty"
    enc = make_encoder(tmp_path / "enc")
    with pytest.raises(InvalidParameterError, match="already exists; pass --overwrite"):
        check_out_folder(enc, overwrite=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(InvalidParameterError, match="did not write"):
        check_out_folder(tmp_path / "mine", overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidParameterError, match="not a folder"):
        check_out_folder(tmp_path / "file", overwrite=True)


# ------------------------------------------------------------------------------------------------
# berg new-plugin
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ['1.0"\ndependencies = ["evil"]\nx = "', "1.0\\", "latest", "", "1.0 ; rm -rf"])
def test_new_plugin_refuses_a_version_that_is_not_pep440(version, capsys, tmp_path):
    from berg_core.cli.new_plugin import render

    with pytest.raises(InvalidParameterError, match="PEP 440"):
        render("mylab", version)
    one_line_error(capsys, "new-plugin", "mylab", "--version", version, "--out", str(tmp_path))
    assert not (tmp_path / "berg-mylab").exists()


def test_new_plugin_writes_valid_toml_with_the_values_asked_for(tmp_path):
    import tomllib

    from berg_core.cli.new_plugin import render

    data = tomllib.loads(render("my_lab2", "2!1.0rc1.post3.dev4")["pyproject.toml"])
    assert data["project"]["name"] == "berg-my_lab2" and data["project"]["version"] == "2!1.0rc1.post3.dev4"
    assert data["project"]["entry-points"]["berg"] == {"my_lab2": "berg_my_lab2.plugin"}


@pytest.mark.parametrize("name", ["core", "tuckute", "lebel", "brainscore", "trained", "mylab_", "berg-x", "A"])
def test_new_plugin_refuses_names_of_berg_itself_and_invalid_ones(name, capsys, tmp_path):
    from berg_core.cli.new_plugin import render

    with pytest.raises(InvalidParameterError, match="plugin name"):
        render(name)
    one_line_error(capsys, "new-plugin", name, "--out", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_prints_a_path_install(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["new-plugin", "abc"]) == 0
    assert "install it with: pip install ./berg-abc" in capsys.readouterr().err
    assert main(["new-plugin", "abd", "--out", str(tmp_path / "my pkgs")]) == 0
    assert f"pip install '{tmp_path / 'my pkgs' / 'berg-abd'}'" in capsys.readouterr().err


def test_new_plugin_copies_only_verified_files_of_the_folder(encoder, tmp_path):
    from berg_core.cli.new_plugin import create_plugin

    root = create_plugin("abc", [encoder], out=tmp_path / "pkgs")
    shipped = root / "berg_abc" / "encoders" / "lab-tiny_card"
    assert snapshot(shipped) == snapshot(encoder)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not publish")
    (encoder / "arrays.npz").unlink()
    os.symlink(secret, encoder / "arrays.npz")
    with pytest.raises(ModelLoadError, match="outside the encoder folder"):
        create_plugin("abd", [encoder], out=tmp_path / "pkgs")
    (encoder / "arrays.npz").unlink()
    (encoder / "arrays.npz").write_bytes(b"PK")
    with pytest.raises(BergError, match="corrupt"):
        create_plugin("abd", [encoder], out=tmp_path / "pkgs")
    assert not (tmp_path / "pkgs" / "berg-abd").exists()


@pytest.mark.parametrize("out", ["file", "nul"])
def test_new_plugin_out_that_is_not_a_folder_is_one_line(out, capsys, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    one_line_error(capsys, "new-plugin", "mylab", "--out", str(target) if out == "file" else "a\x00b")
    assert target.read_text() == "x"


def test_new_plugin_killed_while_copying_leaves_no_package(encoder, tmp_path, monkeypatch):
    """The package appears at once: a failure while copying the encoder leaves no half-written berg-NAME/."""
    from berg_core.cli import new_plugin

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(new_plugin.shutil, "copyfile", killed)
    with pytest.raises(KeyboardInterrupt):
        new_plugin.create_plugin("abc", [encoder], out=tmp_path / "pkgs")
    assert list((tmp_path / "pkgs").iterdir()) == []
