"""``berg fetch MODEL [--subject S]``: download (or verify) a model's files ahead of use."""

from __future__ import annotations

import argparse

from berg_core.commands import add_progress_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch", help="download a model's files into berg_dir (all subjects unless --subject)")
    p.add_argument("model", help="model id")
    p.add_argument("--subject", default=None, help="only this subject's files")
    add_progress_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from berg_core.facade import BERG, resolve_spec
    from berg_core.spec import import_object

    berg = BERG(args.berg_dir)
    paths = berg.fetch(args.model, subject=args.subject, show_progress=args.progress)
    spec = resolve_spec(args.model)
    if spec.prepare:
        subjects = [args.subject] if args.subject is not None else list(spec.subjects or [None])
        for subject in subjects:
            import_object(spec.prepare)(spec, subject, berg.berg_dir, args.progress)
    for path in paths:
        print(path)
    return 0
