"""``berg fetch MODEL [--subject S]``: download (or verify) a model's files and its backbone ahead of use.

For every subject (or the one given): BERG's files into berg_dir, then the Hugging Face backbone the model
loads (``backbone``/``revision`` options, overridable with ``-O``) into the HF cache, so compute nodes can run
with ``HF_HUB_OFFLINE=1``, then the plugin's ``prepare`` hook (conversions, caches). Each backbone's config
is checked first (exists, no custom code, supported architecture), before anything large is downloaded.
"""

from __future__ import annotations

import argparse
from typing import Any

from berg_core.commands import add_progress_options
from berg_core.errors import InvalidParameterError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch", help="download a model's files into berg_dir and its backbone into the Hugging Face cache "
                                     "(all subjects unless --subject)")
    p.add_argument("model", help="model id")
    p.add_argument("--subject", default=None, help="only this subject's files (default: every subject)")
    p.add_argument("-O", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a load option naming the backbone to fetch, e.g. -O backbone=/path/to/gpt2-xl -O revision=COMMIT (repeatable)")
    p.add_argument("--no-backbone", action="store_true", help="only BERG's files: leave the Hugging Face backbone alone")
    add_progress_options(p)
    p.set_defaults(func=run)


def backbones_of(spec: Any, options: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The (backbone, revision) pairs a model loads: its ``backbone`` option, else each feature space's (trained encoders)."""
    merged = {**spec.options, **options}
    revision = merged.get("revision") if isinstance(merged.get("revision"), str) else None
    name = merged.get("backbone")
    if isinstance(name, str) and name:
        return [(name, revision)]
    spaces = spec.info.get("feature_spaces") if isinstance(spec.info, dict) else None
    pairs = [(s["backbone"], s.get("revision") if isinstance(s.get("revision"), str) else revision)
             for s in spaces or () if isinstance(s, dict) and isinstance(s.get("backbone"), str) and s["backbone"]]
    return list(dict.fromkeys(pairs))


def run(args: argparse.Namespace) -> int:
    from berg_core.commands import parse_options
    from berg_core.encoder import check_subject
    from berg_core.facade import BERG, resolve_spec
    from berg_core.spec import import_object

    berg = BERG(args.berg_dir)
    spec = resolve_spec(args.model)
    options = parse_options(args.option)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise InvalidParameterError(f"unknown option(s) {', '.join(map(repr, unknown))} for {spec.model_id}; "
                                    f"valid: {', '.join(spec.options) or 'none'}")
    if args.subject is not None or spec.subjects is None:
        subjects = [check_subject(spec, args.subject)]
    else:
        subjects = list(spec.subjects)
    show = args.progress
    backbones = [] if args.no_backbone else backbones_of(spec, options)
    if backbones:
        from berg_core.hf import backbone_config, fetch_backbone

        for name, revision in backbones:  # cheap check (config.json only) before any large download
            backbone_config(name, revision)
    paths: list[str] = []
    for subject in subjects:
        paths += [str(p) for p in berg.fetch(args.model, subject=subject, show_progress=show)]
    for name, revision in backbones:
        paths.append(str(fetch_backbone(name, revision=revision, show_progress=show)))
    if spec.prepare:
        prepare = import_object(spec.prepare)
        for subject in subjects:
            prepare(spec, subject, berg.berg_dir, show)
    for path in dict.fromkeys(paths):
        print(path)
    return 0
