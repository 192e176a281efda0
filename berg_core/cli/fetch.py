"""``berg fetch MODEL [--subject S]``: download (or verify) a model's files and its backbone ahead of use.

For every subject (or the one given): BERG's files into berg_dir, then the Hugging Face backbone the model
loads (``backbone``/``revision`` options, overridable with ``-O``) into the HF cache, so compute nodes can run
with ``HF_HUB_OFFLINE=1``, then the plugin's ``prepare`` hook (conversions, caches; it gets the ``-O`` options when it
takes an ``options`` keyword). Each backbone's config
is checked first (exists, no custom code, supported architecture), before anything large is downloaded.
"""

from __future__ import annotations

import argparse
from typing import Any

from berg_core.cli.common import add_progress_options
from berg_core.scale.executor import add_executor_options, executor_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fetch", help="download a model's files into berg_dir and its backbone into the Hugging Face cache "
                                     "(all subjects unless --subject)")
    p.add_argument("model", help="model id, or a pattern of ids in quotes ('brainscore_language-*'): one task per model")
    p.add_argument("--subject", default=None, help="only this subject's files (default or 'all': every subject)")
    p.add_argument("-O", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a load option (repeatable, checked like berg encode's): the backbone to fetch (-O backbone=/path/to/gpt2-xl "
                        "-O revision=COMMIT) or what the model's prepare step fetches (e.g. Text2fMRI's -O model_variant=REPO)")
    p.add_argument("--no-backbone", action="store_true", help="only BERG's files: leave the Hugging Face backbone alone")
    add_executor_options(p)
    add_progress_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from berg_core.cli.common import parse_options
    from berg_core.facade import BERG
    from berg_core.scale.fetch import is_pattern

    executor_config(args, None, "berg-fetch")  # the executor flags, before anything runs
    subject = None if args.subject == "all" else args.subject
    if is_pattern(args.model) or args.executor != "local":
        return _many(args, subject, parse_options(args.option))
    paths = BERG(args.berg_dir).fetch(args.model, subject=subject, show_progress=args.progress,
                                      include_backbone=not args.no_backbone, options=parse_options(args.option))
    for path in paths:
        print(path)
    return 0


def _many(args: argparse.Namespace, subject: str | None, options: dict[str, Any]) -> int:
    """Every model matching the pattern as one task each (berg_core.scale.fetch); a failed model does not stop the rest."""
    from berg_core.config import resolve_berg_dir
    from berg_core.console import notice
    from berg_core.scale.executor import TasksFailedError, run_tasks
    from berg_core.scale.fetch import FetchTask, is_pattern, matching_models, run_fetch

    models = matching_models(args.model) if is_pattern(args.model) else [args.model]
    tasks = [FetchTask(m, args.berg_dir, subject, not args.no_backbone, options) for m in models]
    work = resolve_berg_dir(args.berg_dir) / "logs" / "fetch"  # submitit's logs and pickles under work/logs
    notice(f"fetching {len(models)} model(s): {', '.join(models[:5])}{' ...' if len(models) > 5 else ''}")
    try:
        results = run_tasks(run_fetch, tasks, [f"model {m}" for m in models], executor_config(args, work, "berg-fetch"))
    except TasksFailedError as exc:
        failed = {f.index for f in exc.failures}
        notice(f"{len(models) - len(failed)} of {len(models)} models fetched")
        raise
    for paths in results:
        for path in paths:
            print(path)
    notice(f"{len(models)} of {len(models)} models fetched")
    return 0
