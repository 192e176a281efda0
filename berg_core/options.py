"""Typed load options: ``Option`` (one declared option) and ``Options`` (a model's declared set).

A model declares its options in ``EncoderSpec.options``; berg checks a user's values once, before the
factory is imported (one-line ``InvalidParameterError`` naming the option, the value and what is allowed),
and parses ``berg encode -O name=value`` text by the declared type.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from berg_core.errors import InvalidParameterError, PluginError

#: the types an ``Option`` may declare; ``object`` takes any value (no check)
OPTION_TYPES: tuple[type, ...] = (bool, int, float, str, object)
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "text", object: "any value"}
_CLI_TRUE = ("true", "1", "yes")
_CLI_FALSE = ("false", "0", "no")


class CliText(str):
    """An option value typed on the command line (``-O key=value``): the declared type parses it."""


def _is_bool(value: Any) -> bool:
    # numpy's bool without importing numpy (this module stays import-light)
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(str(value) if isinstance(value, CliText) else value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Option:
    """One load option a model declares (``get_encoding_model(..., name=value)``, ``berg encode -O name=value``).

    Attributes:
        name: the keyword, a Python identifier (e.g. ``"batch_size"``).
        type: ``bool``, ``int``, ``float``, ``str`` or ``object`` (any value, unchecked).
        default: the value when the user leaves the option out; ``None`` means "unset" (the family decides)
            and is then also accepted as a value.
        choices: the only values allowed (after coercion), or ``None``.
        required: the user must give it (``default`` is then ignored).
        help: one line for ``berg info``.
        minimum: the smallest value an ``int``/``float`` option takes (e.g. 1 for a batch size), or ``None``.

    Coercion (``check``): an ``int`` option takes integers and integral floats (``3.0`` -> 3, not ``3.5``);
    a ``float`` option takes finite real numbers; a ``str`` option takes text or a path (kept as ``str``);
    a ``bool`` option takes only ``True``/``False`` from Python and ``true/false/1/0/yes/no`` from the CLI.
    """

    name: str
    type: type
    default: Any = None
    choices: tuple[Any, ...] | None = None
    required: bool = False
    help: str = ""
    minimum: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise PluginError(f"option name {self.name!r} is not a Python identifier")
        if self.type not in OPTION_TYPES:
            raise PluginError(f"option {self.name}: type {self.type!r} is not one of bool, int, float, str, object")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
            if not self.choices:
                raise PluginError(f"option {self.name}: choices is empty")
        if self.default is not None and not self.required:
            try:
                object.__setattr__(self, "default", self._coerce(self.default, "a plugin"))
            except InvalidParameterError as exc:
                raise PluginError(f"option {self.name}: its default does not fit its own declaration ({exc})") from exc

    @classmethod
    def infer(cls, name: str, default: Any) -> Option:
        """The option an old-style ``{name: default}`` entry declares: the type of the default (``object`` for ``None``)."""
        if _is_bool(default):
            kind: type = bool
        elif isinstance(default, numbers.Integral):
            kind = int
        elif isinstance(default, numbers.Real):
            kind = float
        elif isinstance(default, (str, os.PathLike)):
            kind = str
        else:
            kind = object
        return cls(name, kind, default)

    def allowed(self) -> str:
        """What the option takes, in words: ``"an integer >= 1"``, ``"one of 'a', 'b'"``."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = _TYPE_WORDS[self.type]
            if self.minimum is not None:
                text += f" >= {self.minimum:g}"
        return text + (" or None" if self.default is None and not self.required and self.type is not object else "")

    def summary(self) -> str:
        """One line for ``berg info``: ``"int >= 1; sentences per forward pass"``."""
        kind = "any" if self.type is object else self.type.__name__
        if self.minimum is not None:
            kind += f" >= {self.minimum:g}"
        if self.choices is not None:
            kind += ", one of " + ", ".join(repr(c) for c in self.choices)
        if self.required:
            kind += ", required"
        return kind + (f"; {self.help}" if self.help else "")

    def check(self, value: Any, model_id: str) -> Any:
        """``value`` coerced to the declared type, or a one-line ``InvalidParameterError`` naming option, value and what is allowed."""
        return self._coerce(value, model_id)

    def _coerce(self, value: Any, who: str) -> Any:
        if value is None and self.default is None and not self.required:
            return None
        out = self._parse_cli(value) if isinstance(value, CliText) else self._cast(value)
        if out is _BAD or (self.choices is not None and out not in self.choices) or (
                self.minimum is not None and self.type in (int, float) and out < self.minimum):
            raise InvalidParameterError(f"option {self.name} of {who} must be {self.allowed()}, got {_short(value)}")
        return out

    def _cast(self, value: Any) -> Any:
        kind = self.type
        if kind is object:
            return value
        if kind is bool:
            return bool(value) if _is_bool(value) else _BAD
        if _is_bool(value):
            return _BAD
        if kind is int:
            if isinstance(value, numbers.Integral):
                return int(value)
            if isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
                return int(float(value))
            return _BAD
        if kind is float:
            if isinstance(value, numbers.Real) and math.isfinite(float(value)):
                return float(value)
            return _BAD
        return os.fspath(value) if isinstance(value, (str, os.PathLike)) and isinstance(os.fspath(value), str) else _BAD

    def _parse_cli(self, text: str) -> Any:
        text = str(text)
        if self.type is bool:
            word = text.strip().lower()
            return True if word in _CLI_TRUE else False if word in _CLI_FALSE else _BAD
        if self.type is int:
            try:
                return int(text.strip())
            except ValueError:
                return self._cast(_float_or_bad(text))
        if self.type is float:
            return self._cast(_float_or_bad(text))
        if self.type is object:  # undeclared type: JSON if it parses, else the text
            import json

            try:
                return json.loads(text)
            except ValueError:
                return text
        return text


_BAD: Any = object()


def _float_or_bad(text: str) -> Any:
    try:
        return float(text.strip())
    except ValueError:
        return _BAD


class Options(Mapping[str, Any]):
    """A model's declared options, read as a mapping ``name -> default`` (``{**spec.options}`` gives the defaults).

    ``declared`` holds the ``Option`` objects in the plugin's order; ``option(name)`` gets one.
    Built from ``Option`` objects, or (the old form, still accepted) a ``{name: default}`` dict whose types
    are inferred from the defaults (``Option.infer``).
    """

    def __init__(self, *declared: Option) -> None:
        names = [o.name for o in declared]
        for o in declared:
            if not isinstance(o, Option):
                raise PluginError(f"options must be Option(...) objects or a {{name: default}} dict, got {type(o).__name__}")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PluginError(f"option(s) {', '.join(dup)} declared twice")
        self.declared: tuple[Option, ...] = tuple(declared)
        self._by_name = {o.name: o for o in declared}

    @classmethod
    def of(cls, value: Options | Mapping[str, Any] | Iterable[Option] | None) -> Options:
        """``Options`` from any accepted form: ``Options``, ``{name: default}``, ``{name: Option}`` or ``Option`` objects."""
        if isinstance(value, Options):
            return value
        if value is None:
            return cls()
        if isinstance(value, Mapping):
            return cls(*(v if isinstance(v, Option) and v.name == k else Option.infer(str(k), v) for k, v in value.items()))
        return cls(*value)

    def option(self, name: str) -> Option:
        return self._by_name[name]

    def __getitem__(self, name: str) -> Any:
        return self._by_name[name].default

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Options):
            return self.declared == other.declared
        return Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Options{self.declared!r}"

    def check(self, values: Mapping[str, Any], model_id: str) -> dict[str, Any]:
        """The defaults updated with ``values``, each coerced by its declaration (one-line errors).

        Unknown names and missing required options are ``InvalidParameterError``; so is a value of the wrong type.
        """
        unknown = sorted(repr(k) for k in values if k not in self._by_name)
        if unknown:
            raise InvalidParameterError(f"unknown option(s) {', '.join(unknown)} for {model_id}; valid options: {', '.join(self) or 'none'}")
        missing = [o.name for o in self.declared if o.required and o.name not in values]
        if missing:
            raise InvalidParameterError(f"{model_id} needs option(s) {', '.join(missing)}; give them as name=value "
                                        f"(see `berg info {model_id}`)")
        return {**dict(self.items()), **{k: self._by_name[k].check(v, model_id) for k, v in values.items()}}

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able declarations: name, type, default, choices, required, minimum, help."""
        return [{"name": o.name, "type": o.type.__name__ if o.type is not object else "any", "default": o.default,
                 "choices": list(o.choices) if o.choices is not None else None, "required": o.required,
                 "minimum": o.minimum, "help": o.help} for o in self.declared]
