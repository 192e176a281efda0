"""``berg fetch MODEL [--subject S]``: download (or verify) a model's files and its backbone ahead of use.

For every subject (or the one given): BERG's files into berg_dir, then the Hugging Face backbone the model
loads (``backbone``/``revision`` options, overridable with ``-O``) into the HF cache, so compute nodes can run
with ``HF_HUB_OFFLINE=1``, then the plugin's ``prepare`` hook (conversions, caches). Each backbone's config
is checked first (exists, no custom code, supported architecture), before anything large is downloaded.
"""

from __future__ import annotations

import argparse

from berg_core.cli.common import add_progress_options


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


def run(args: argparse.Namespace) -> int:
    from berg_core.cli.common import parse_options
    from berg_core.facade import BERG

    paths = BERG(args.berg_dir).fetch(args.model, subject=args.subject, show_progress=args.progress,
                                      include_backbone=not args.no_backbone, options=parse_options(args.option))
    for path in paths:
        print(path)
    return 0
