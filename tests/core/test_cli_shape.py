"""The CLI's shape (issue 9, item 9): global options after the subcommand, one progress/quiet vocabulary,
`berg info` summary first with the card behind --card, `berg list` as a width-aware table."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pytest

from berg_core.cli import build_parser, encode, fetch, info, list as list_cmd, main, search, train
from berg_core.spec import EncoderSpec, RemoteFile

#: minimal valid arguments of each command that shows progress (the command itself is replaced by a spy)
PROGRESS_COMMANDS = {
    "encode": (encode, ["encode", "test-sentence_length", "x"]),
    "search": (search, ["search", "test-sentence_length", "--input", "c.txt", "--output", "r.csv"]),
    "fetch": (fetch, ["fetch", "test-sentence_length"]),
    "train": (train, ["train", "--features", "f.npy", "--responses", "r.npy", "--out", "o"]),
}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _spy(monkeypatch, module) -> list:
    seen: list = []

    def run(args):
        from berg_core.console import notice

        seen.append(args)
        notice("a notice")
        return 0

    monkeypatch.setattr(module, "run", run)
    return seen


# ------------------------------------------------------------------------------ --berg-dir anywhere


@pytest.mark.parametrize("argv", [argv for _, argv in PROGRESS_COMMANDS.values()] + [["list"], ["info", "m"], ["plugins"]])
def test_berg_dir_before_or_after_the_subcommand(argv):
    parser = build_parser()
    assert parser.parse_args(argv).berg_dir is None
    assert parser.parse_args(["--berg-dir", "A", *argv]).berg_dir == "A"
    assert parser.parse_args([*argv, "--berg-dir", "B"]).berg_dir == "B"
    assert parser.parse_args(["--berg-dir", "A", *argv, "--berg-dir", "B"]).berg_dir == "B"  # the later one wins


def test_berg_dir_after_the_subcommand_reaches_the_command(monkeypatch, capsys, tmp_path):
    from berg_core import facade

    seen = []
    monkeypatch.setattr(facade, "resolve_berg_dir", lambda value: seen.append(value) or Path(value))
    assert main(["encode", "test-sentence_length", "abc", "--berg-dir", str(tmp_path / "after")]) == 0
    assert main(["--berg-dir", str(tmp_path / "before"), "encode", "test-sentence_length", "abc"]) == 0
    assert seen == [str(tmp_path / "after"), str(tmp_path / "before")]


# ------------------------------------------------------------------------------ --progress / --quiet


@pytest.mark.parametrize("name", sorted(PROGRESS_COMMANDS))
@pytest.mark.parametrize(
    "flags, tty, bars, notices",
    [
        ([], False, False, True),  # piped stderr: no bars by default
        ([], True, True, True),  # a terminal: bars by default
        (["--no-progress"], True, False, True),
        (["--progress"], False, True, True),
        (["--quiet"], True, False, False),
        (["-q", "--progress"], False, True, False),
    ],
)
def test_one_progress_vocabulary(monkeypatch, capsys, name, flags, tty, bars, notices):
    module, argv = PROGRESS_COMMANDS[name]
    seen = _spy(monkeypatch, module)
    if tty:
        monkeypatch.setattr(sys, "stderr", _Terminal())
    assert main([*argv, *flags]) == 0
    assert seen[0].progress is bars
    err = sys.stderr.getvalue() if tty else capsys.readouterr().err
    assert ("a notice" in err) is notices


def test_quiet_silences_the_written_notice_but_not_errors(capsys, tmp_path):
    out = tmp_path / "x.npy"
    assert main(["encode", "test-sentence_length", "abc", "-o", str(out)]) == 0
    assert "wrote 1 x 3 responses" in capsys.readouterr().err
    assert main(["encode", "test-sentence_length", "abc", "-o", str(out), "--quiet"]) == 0
    assert capsys.readouterr().err == "" and out.is_file()
    assert main(["encode", "test-sentence_length", "abc", "--roi", "nope", "--quiet"]) == 1
    assert capsys.readouterr().err.startswith("berg: error: unknown ROI 'nope'")



@pytest.mark.parametrize("flags, expected", [([], False), (["--progress"], True), (["-O", "progress=true", "--no-progress"], True)])
def test_encode_passes_progress_to_a_model_with_its_own_bars(monkeypatch, capsys, flags, expected):
    """A model with a ``progress`` load option (LeBel's fetch/convert bars) follows --progress unless -O sets it."""
    from dataclasses import replace

    from berg_core.facade import BERG
    from berg_core.registry import get_registry

    seen = []
    load = BERG.get_encoding_model
    monkeypatch.setattr(BERG, "get_encoding_model", lambda self, *a, **kw: seen.append(kw) or load(self, *a, **kw))
    assert main(["encode", "test-sentence_length", "abc", *flags[-1:]]) == 0
    assert "progress" not in seen[0]  # a model without the option is not given one
    specs = get_registry().specs
    specs["test-sentence_length"] = replace(specs["test-sentence_length"], options={**specs["test-sentence_length"].options, "progress": True})
    assert main(["encode", "test-sentence_length", "abc", *flags]) == 0
    assert seen[1]["progress"] is expected


# ------------------------------------------------------------------------------ berg info


def test_info_prints_a_summary_first_and_the_card_on_request(capsys):
    assert main(["info", "test-timed_words", "--subject", "S2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = lines[: lines.index("")]
    assert summary == [
        "test-timed_words",
        "family: testplugin",
        "plugin: berg-testplugin 0.0.1",
        "stimulus: " + info.STIMULUS["timed_words"],
        "subjects: S1, S2 (2)",
        "outputs: see the description",
        "selection keys: roi, voxel_index",
        "files: none to download",
    ]
    # the subject's facts come right after the summary, before the description
    assert lines.index("metadata (subject S2):") == len(summary) + 1
    assert lines.index("Toy timed-words model: words per 2-s TR (tests only).") > lines.index("metadata (subject S2):")


def test_info_json_keeps_everything(capsys):
    assert main(["info", "test-sentence_length", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["card"] == "A toy card." and data["options"] == {"scale": 1.0, "batch_size": 8} and data["plugin"] == "berg-testplugin 0.0.1"


REMOTE = EncoderSpec(
    model_id="x-remote", family="x", factory="m:f", subjects=("A01", "A02"),
    remote_files=(RemoteFile("shared/meta.npy"), RemoteFile("w/weights_{subject}.npy", per_subject=True)),
    options={"backbone": "gpt2"}, info={"n_outputs": {"A01": 1200, "A02": 35}},
)


def test_info_files_outputs_and_fetch_lines(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "weights_A02.npy").write_bytes(b"\0" * 1500)
    lines = info.summary_lines(REMOTE, "x-remote", None, tmp_path)
    assert f"files: 3 for all subjects, 1 in {tmp_path} (1.5 kB on disk)" in lines
    assert "outputs: 35 to 1,200 voxels by subject (--subject S for one)" in lines
    assert "fetch: berg fetch x-remote [--subject S]  (its files and its backbone, ahead of use)" in lines
    trained = EncoderSpec(model_id="t", family="trained", factory="m:f", info={"feature_spaces": [{"backbone": "gpt2", "layer": 2}]})
    assert "fetch: berg fetch 'my encoder'  (its backbone, ahead of use)" in info.summary_lines(trained, "my encoder", None, tmp_path)
    assert not [line for line in info.summary_lines(EncoderSpec(model_id="n", family="f", factory="m:f"), "n", None, tmp_path)
                if line.startswith("fetch:")]
    lines = info.summary_lines(REMOTE, "x-remote", "A01", tmp_path)
    assert f"files: 2 for subject A01, none in {tmp_path} yet" in lines and "outputs: 1,200 voxels (subject A01)" in lines
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "meta.npy").write_bytes(b"12")
    assert f"files: 2 for subject A02, all in {tmp_path} (1.5 kB on disk)" in info.summary_lines(REMOTE, "x", "A02", tmp_path)


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1500, "1.5 kB"), (6_300_000_000, "6.3 GB"), (12 * 10**12, "12000.0 GB")])
def test_format_bytes(n, text):
    assert info.format_bytes(n) == text


# ------------------------------------------------------------------------------ berg list


FANCY = {"none": "—", "range": "–", "cut": "…"}


@pytest.mark.parametrize(
    "subjects, text",
    [
        (None, "—"),
        ((), "—"),
        (("S7",), "S7 (1)"),
        (tuple(f"UTS0{i}" for i in range(1, 9)), "UTS01–UTS08 (8)"),
        (("S9", "S10"), "S9, S10 (2)"),  # digits differ: not written as a range
        (("S1", "S3"), "S1, S3 (2)"),
        (("018", "199", "288", "289", "296", "343", "366", "407", "426"), "018, 199, …, 426 (9)"),
    ],
)
def test_compact_subjects(subjects, text):
    assert list_cmd.compact_subjects(subjects, FANCY) == text


def test_list_is_cut_to_the_terminal_width_only_on_a_terminal(monkeypatch, capsys):
    assert main(["list"]) == 0
    full = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("(")]  # the table, not its footer
    assert any(len(line) > 30 for line in full) and not any(line.endswith("…") for line in full)
    monkeypatch.setattr(list_cmd, "terminal_width", lambda: 30)
    assert main(["list"]) == 0
    cut = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("(")]
    assert len(cut) == len(full) and all(len(line) <= 30 for line in cut)
    for short, long in zip(cut, full):
        assert short == long or (short.endswith("…") and long.startswith(short[:-1]))


def test_format_table_aligns_columns():
    lines = list_cmd.format_table([("id", "family"), ("a-long-id", "f"), ("b", "family2")])
    assert lines == ["id         family", "a-long-id  f", "b          family2"]
    assert list_cmd.format_table([("abcdef", "ghij")], width=5, cut="...") == ["ab..."]


def test_list_falls_back_to_ascii_when_stdout_cannot_encode(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    sym = list_cmd.symbols()
    assert sym == {"none": "-", "range": "-", "cut": "..."}
    assert list_cmd.compact_subjects(None, sym) == "-" and list_cmd.compact_subjects(("S1", "S2"), sym) == "S1-S2 (2)"


def test_list_shows_a_status_that_is_not_usable():
    spec = EncoderSpec(model_id="y", family="f", factory="m:f", info={"status": "unsuitable"})
    assert list_cmd.table_rows([spec], FANCY)[1] == ("y", "f", "—", "sentences [unsuitable]")


# ------------------------------------------------------------------------------ the README's commands

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", *sorted((ROOT / "plugins").glob("*/README.md"))]


def readme_commands(text: str) -> list[list[str]]:
    """Every ``berg ...`` command in the shell code blocks (```bash, ```sh or indented) of a README, as argv lists."""
    import shlex

    blocks, fence = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
        elif fence in ("bash", "sh", "") or (fence is None and line.startswith("    ")):
            blocks.append(line.strip())
    joined = "\n".join(blocks).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            cut = [i for i, w in enumerate(words) if w in ("|", ">", ">>", "<")]  # the shell's, not berg's
            if words[:1] == ["berg"]:
                commands.append(words[1 : cut[0] if cut else None])
    return commands


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_commands_parse(readme):
    commands = readme_commands(readme.read_text(encoding="utf-8"))
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{readme.name}: `berg {' '.join(argv)}` is not accepted by the CLI")


def test_readme_quickstart_names_the_cpu_build_and_stays_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = text[text.index("## Quickstart"):text.index("## Commands")]
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in quickstart
    block = quickstart[quickstart.index("```bash"):].split("```")[1]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    assert [line.split()[:2] for line in lines] == [["pip", "install"], ["berg", "encode"]]
    assert readme_commands(quickstart)[0][:2] == ["encode", "fmri-tuckute_2024-GPT2_XL"]


def test_readme_inline_commands_name_real_options():
    """Each inline `berg COMMAND ... --flag` in the README names a command and options the CLI has."""
    import re

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    spans = re.findall(r"`(berg [^`]+)`", (ROOT / "README.md").read_text(encoding="utf-8"))
    checked = 0
    for span in spans:
        words = span.split()
        if len(words) < 2 or words[1] not in commands:
            continue
        known = commands[words[1]]._option_string_actions
        for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", span):
            assert flag in known or flag in parser._option_string_actions, f"`{span}`: berg {words[1]} has no {flag}"
        checked += 1
    assert checked >= 8
