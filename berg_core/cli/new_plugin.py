"""``berg new-plugin NAME [--kind trained|sentences|timed-words] [--encoder DIR ...] [--out PARENT]``: a pip-installable plugin.

Writes ``PARENT/berg-NAME/``, rendered from the templates shipped in ``berg_core/cli/templates/`` (package
data; plain string substitution of ``{{key}}`` markers, no template engine):

* ``--kind trained`` (the default; the layout of ``plugins/template/`` in the berg repository, rendered for
  ``mylab``): ``pyproject.toml`` (distribution ``berg-NAME``, entry point ``berg: NAME = "berg_NAME.plugin"``,
  the encoder folders as package data), ``berg_NAME/plugin.py`` (``berg_core.register_package_encoders``),
  ``README.md``, and each ``--encoder`` folder's encoder files (card, weights, arrays) under
  ``berg_NAME/encoders/<model id>/``.
* ``--kind sentences`` / ``--kind timed-words``: a coded family written only against berg's declared API
  (``from berg_core import ...``): ``plugin.py`` (the spec and its typed options), ``encoder.py`` (a Hugging
  Face backbone -> sentence or word features -> [Lanczos -> z-score -> delays] -> ``LinearReadout``),
  ``weights.py`` (the safe readout file), ``readouts/`` (where the fitted readout goes) and ``tests/`` (a tiny
  random backbone built on the spot, fixture readouts and inputs, checked against an independent computation).

Then ``pip install ./PARENT/berg-NAME`` (a folder path, never a registry name) and ``berg list`` shows the models.

Every value written into the generated TOML is a quoted, escaped TOML string; NAME is restricted to
``[a-z][a-z0-9_]*`` (so it is also a valid TOML bare key and Python identifier part), must not name one of
berg's own distributions (``RESERVED_NAMES``), and ``--version`` must be a PEP 440 version.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from berg_core.errors import InvalidParameterError

#: --kind -> the template folders rendered, in order (a later folder's file replaces an earlier one's)
KINDS: dict[str, tuple[str, ...]] = {"trained": ("trained",), "sentences": ("coded", "sentences"), "timed-words": ("coded", "timed-words")}
DESCRIPTIONS = {"trained": "Trained fMRI encoding models from {name}, as a berg plugin",
                "sentences": "A sentence fMRI encoding model from {name}, as a berg plugin",
                "timed-words": "A voxelwise story fMRI encoding model from {name}, as a berg plugin"}
TEMPLATE_SUFFIX = ".tmpl"
_MARKER = re.compile(r"\{\{(\w+)\}\}")

NAME_RE = re.compile(r"[a-z](?:[a-z0-9_]{0,38}[a-z0-9])?")
#: PEP 440 public versions (epoch, release, pre, post, dev), e.g. 0.1.0, 1.2rc1, 2!1.0.post3.dev4
VERSION_RE = re.compile(r"(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?")
#: berg's own distributions are berg, berg-core and berg-<one of these>; a plugin may not take their names
RESERVED_NAMES = frozenset({"core", "tuckute", "lebel", "brainscore", "trained"})


def _toml(value: str) -> str:
    """``value`` as a TOML basic string (JSON's escaping is valid TOML: quotes, backslashes, \\uXXXX)."""
    return json.dumps(value, ensure_ascii=True)


def check_name(name: object) -> str:
    """``name`` if it is a usable plugin namespace that does not collide with berg's own distributions."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidParameterError(f"plugin name {name!r}: use lowercase letters, digits and _ (start with a letter, end with a "
                                    "letter or digit, at most 40), e.g. 'mylab'")
    if name in RESERVED_NAMES:
        raise InvalidParameterError(f"plugin name {name!r}: berg-{name} / berg_{name} belong to berg itself; choose another name, "
                                    "e.g. your lab's")
    return name


def check_version(version: object) -> str:
    """``version`` if it is a PEP 440 version such as ``0.1.0``."""
    if not isinstance(version, str) or len(version) > 64 or not VERSION_RE.fullmatch(version):
        raise InvalidParameterError(f"--version {version!r}: use a PEP 440 version such as 0.1.0, 1.2rc1 or 2.0.post1")
    return version


def check_kind(kind: object, encoders: int = 0) -> str:
    """``kind`` if it is one of ``KINDS``; only ``trained`` packages ship ``--encoder`` folders."""
    if kind not in KINDS:
        raise InvalidParameterError(f"--kind {kind!r}: use one of {', '.join(KINDS)}")
    if encoders and kind != "trained":
        raise InvalidParameterError(f"--encoder ships trained-encoder folders, which a --kind {kind} package does not take; "
                                    "use --kind trained (the default) or leave --encoder out")
    return str(kind)


def _substitute(text: str, values: dict[str, str], where: str) -> str:
    def value(m: re.Match[str]) -> str:
        if m.group(1) not in values:  # a template bug, caught by the tests of every kind
            raise KeyError(f"template {where}: unknown marker {m.group(0)}")
        return values[m.group(1)]

    return _MARKER.sub(value, text)


def template_files(kind: str) -> dict[str, str]:
    """The templates of ``kind``: relative path (``berg_NAME/...``, suffix dropped) -> raw text."""
    out: dict[str, str] = {}
    root = resources.files("berg_core.cli").joinpath("templates")

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(TEMPLATE_SUFFIX):
                out[prefix + entry.name[: -len(TEMPLATE_SUFFIX)]] = entry.read_text(encoding="utf-8")

    for part in KINDS[check_kind(kind)]:
        walk(root.joinpath(part), "")
    return out


def render(name: str, version: str = "0.1.0", kind: str = "trained") -> dict[str, str]:
    """The package's text files, relative path -> content, for plugin namespace ``name``."""
    check_name(name)
    check_version(version)
    values = {"name": name, "q_dist": _toml(f"berg-{name}"), "q_version": _toml(version),
              "q_description": _toml(DESCRIPTIONS[check_kind(kind)].format(name=name)),
              "q_entry": _toml(f"berg_{name}.plugin"), "q_include": _toml(f"berg_{name}*")}
    return {re.sub(r"^berg_NAME/", f"berg_{name}/", rel): _substitute(text, values, rel) for rel, text in template_files(kind).items()}


def _folder_name(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)


def create_plugin(name: str, encoders: list[Path] | tuple[Path, ...] = (), *, out: Path = Path("."), version: str = "0.1.0",
                  force: bool = False, kind: str = "trained") -> Path:
    """Write the package folder ``out/berg-NAME`` (and copy the encoder folders of a ``trained`` one); returns it."""
    from berg_core.store.cache import atomic_folder
    from berg_core.trained.cards import CARD_FILE, read_card, spec_from_dir, verify_folder_files

    check_kind(kind, len(encoders))
    files = render(name, version, kind)
    specs = [spec_from_dir(Path(e)) for e in encoders]  # validates each folder's card first
    # the files each card names, confined to its folder and matching their pinned sha256
    sources = [verify_folder_files(s.info["path"], read_card(s.info["path"]), s.model_id) for s in specs]
    ids = [s.model_id for s in specs]
    if len(set(ids)) != len(ids):
        raise InvalidParameterError(f"two encoder folders share a model id: {', '.join(ids)}; set --model-id when training")
    out = Path(out)
    if "\x00" in os.fspath(out):
        raise InvalidParameterError("--out contains a NUL character; give a folder path")
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"--out {out} is not a folder; give the folder in which berg-{name}/ is created")
    root = out / f"berg-{name}"
    if root.exists() or root.is_symlink():
        if not root.is_dir() or root.is_symlink():
            raise InvalidParameterError(f"{root} exists and is not a folder; choose another --out")
        if not force:
            raise InvalidParameterError(f"{root} already exists; choose another --out or pass --force to overwrite it")
    with atomic_folder(root) as stage:  # all files, then one switch: never a half-written package
        for rel, text in files.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        enc_root = stage / f"berg_{name}" / "encoders"
        if kind == "trained":
            enc_root.mkdir(parents=True, exist_ok=True)
        for spec, paths in zip(specs, sources):
            dest = enc_root / _folder_name(spec.model_id)
            dest.mkdir()
            folder = Path(spec.info["path"])
            for path in (folder / CARD_FILE, *paths.values()):
                target = dest / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    return root


def install_command(root: Path) -> str:
    """``pip install ./root``: always a path (with ``./`` when relative), so pip never looks the name up in a registry."""
    text = str(root)
    if not os.path.isabs(text) and not text.startswith(("./", "../")):
        text = "./" + text
    return f"pip install {shlex.quote(text)}"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("new-plugin", help="make a pip-installable plugin package: trained encoder folders or a coded family",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="plugin namespace, e.g. mylab (distribution berg-mylab, package berg_mylab)")
    p.add_argument("--kind", default="trained", choices=list(KINDS),
                   help="trained: ship `berg train` encoder folders (default); sentences / timed-words: a coded family "
                        "(backbone features -> linear readout) with its tests, to fill in")
    p.add_argument("--encoder", nargs="+", default=[], metavar="DIR", help="trained-encoder folder(s) from `berg train` to ship")
    p.add_argument("--out", default=".", metavar="PARENT", help="folder in which berg-NAME/ is created (default: here)")
    p.add_argument("--version", dest="pkg_version", default="0.1.0", help="package version")
    p.add_argument("--force", action="store_true", help="overwrite an existing berg-NAME folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = create_plugin(args.name, [Path(e) for e in args.encoder], out=Path(args.out), version=args.pkg_version, force=args.force,
                         kind=args.kind)
    what = f"{len(args.encoder)} encoder(s)" if args.kind == "trained" else f"a {args.kind} model, its tests and readouts/ to fill in"
    print(f"wrote {root} with {what}; install it with: {install_command(root)}", file=sys.stderr)
    return 0
