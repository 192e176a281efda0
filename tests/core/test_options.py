"""Typed load options (issue 10 item 2): ``Option`` declarations, one check before the factory, CLI coercion, ``berg info``."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from berg_core import facade
from berg_core.cli import main
from berg_core.errors import InvalidParameterError, PluginError
from berg_core.facade import BERG
from berg_core.options import CliText, Option, Options
from berg_core.registry import get_registry
from berg_core.spec import EncoderSpec

SENTENCE = "test-sentence_length"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"batch_size": "abc"}, "option batch_size of test-sentence_length must be an integer >= 1, got 'abc'"),
    ({"batch_size": 0}, "option batch_size of test-sentence_length must be an integer >= 1, got 0"),
    ({"batch_size": 3.5}, "option batch_size of test-sentence_length must be an integer >= 1, got 3.5"),
    ({"batch_size": True}, "option batch_size of test-sentence_length must be an integer >= 1, got True"),
    ({"scale": "2"}, "option scale of test-sentence_length must be a number, got '2'"),
])
def test_bad_value_is_one_line_before_the_factory_is_imported(monkeypatch, kwargs, expected):
    calls = []
    monkeypatch.setattr(facade, "import_object", lambda path: calls.append(path))
    with pytest.raises(InvalidParameterError) as info:
        BERG().get_encoding_model(SENTENCE, **kwargs)
    assert str(info.value) == expected and "\n" not in str(info.value)
    assert calls == []


def test_choices_and_required_are_checked():
    spec = EncoderSpec("m", "f", "x:y", options=(Option("context", str, "independent", choices=("independent", "running")),
                                                 Option("key", str, required=True)))
    with pytest.raises(InvalidParameterError, match=r"^m needs option\(s\) key"):
        spec.options.check({}, "m")
    with pytest.raises(InvalidParameterError, match=r"^option context of m must be one of 'independent', 'running', got 'sliding'$"):
        spec.options.check({"key": "k", "context": "sliding"}, "m")
    assert spec.options.check({"key": "k"}, "m") == {"context": "independent", "key": "k"}


def test_integral_float_is_an_int_and_values_are_coerced():
    opts = Options(Option("n", int, 2), Option("x", float, 1.0), Option("path", str, None))
    checked = opts.check({"n": 3.0, "x": 2, "path": Path("/a/b")}, "m")
    assert checked == {"n": 3, "x": 2.0, "path": "/a/b"}
    assert type(checked["n"]) is int and type(checked["x"]) is float
    assert opts.check({"path": None}, "m")["path"] is None  # a None default: None is "unset"


def test_bool_text_only_from_the_cli():
    opts = Options(Option("flag", bool, False))
    with pytest.raises(InvalidParameterError, match="must be true or false, got 'yes'"):
        opts.check({"flag": "yes"}, "m")  # Python callers give True/False
    for word, value in (("true", True), ("YES", True), ("1", True), ("false", False), ("no", False), ("0", False)):
        assert opts.check({"flag": CliText(word)}, "m")["flag"] is value
    with pytest.raises(InvalidParameterError, match="^option flag of m must be true or false, got 'maybe'$"):
        opts.check({"flag": CliText("maybe")}, "m")


def test_old_dict_form_still_works():
    """Third-party plugins may still pass ``{name: default}``: types are inferred from the defaults (None: any value)."""
    spec = EncoderSpec("m", "f", "x:y", options={"n": 4, "scale": 1.0, "on": True, "name": "a", "extra": None})
    assert dict(spec.options) == {"n": 4, "scale": 1.0, "on": True, "name": "a", "extra": None}
    assert [o.type for o in spec.options.declared] == [int, float, bool, str, object]
    assert spec.options.check({"n": 2.0, "extra": [1, 2]}, "m")["n"] == 2
    with pytest.raises(InvalidParameterError, match="option n of m must be an integer, got 'x'"):
        spec.options.check({"n": "x"}, "m")
    assert spec.options.check({"extra": CliText("[1, 2]")}, "m")["extra"] == [1, 2]  # undeclared type: JSON from the CLI


def test_bad_declarations_are_plugin_errors():
    with pytest.raises(PluginError, match="type"):
        Option("n", list, [])
    with pytest.raises(PluginError, match="default"):
        Option("n", int, "eight")
    with pytest.raises(PluginError, match="declared twice"):
        Options(Option("n", int, 1), Option("n", int, 2))


def test_cli_option_is_coerced_by_the_declared_type(monkeypatch, capsys):
    seen = []
    load = BERG.get_encoding_model
    monkeypatch.setattr(BERG, "get_encoding_model", lambda self, *a, **kw: seen.append(kw) or load(self, *a, **kw))
    assert main(["encode", SENTENCE, "ab", "-O", "scale=2", "-O", "batch_size=3.0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["responses"] == [[4.0, 8.0, 12.0]]
    specs = get_registry().specs  # a str option keeps digits as text (the old parser made "22" an int)
    specs[SENTENCE] = replace(specs[SENTENCE], options=(*specs[SENTENCE].options.declared, Option("label", str, "x")))
    with BERG().get_encoding_model(SENTENCE, label=CliText("22")) as model:
        assert model.options["label"] == "22" and model.options["scale"] == 1.0


def test_cli_bad_option_is_one_line(capsys):
    assert main(["encode", SENTENCE, "ab", "-O", "batch_size=abc"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "batch_size" in err and "'abc'" in err and "an integer >= 1" in err


def test_info_shows_type_default_choices_and_help(capsys):
    specs = get_registry().specs
    specs[SENTENCE] = replace(specs[SENTENCE], options=(*specs[SENTENCE].options.declared,
                                                        Option("mode", str, "a", choices=("a", "b"), help="how")))
    assert main(["info", SENTENCE]) == 0
    out = capsys.readouterr().out
    assert "option batch_size = 8  (int >= 1; sentences per batch (unused))" in out
    assert "option mode = 'a'  (str, one of 'a', 'b'; how)" in out
    assert main(["info", SENTENCE, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["options"]["batch_size"] == 8  # name -> default, as before
    assert {"name": "mode", "type": "str", "default": "a", "choices": ["a", "b"], "required": False, "minimum": None,
            "help": "how"} in data["option_types"]
    assert "option scale = 1.0  (float; multiplies every response)" in BERG().describe(SENTENCE)
