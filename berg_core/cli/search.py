"""``berg search MODEL --input CORPUS.txt --top-k K [--output RESULTS.csv] [--roi R ...] [...]``.

Streams a corpus (one candidate sentence per line, any size) through a sentence model and writes the
``K`` sentences with the highest ("drive") and lowest ("suppress") predicted response per ROI, as CSV
to ``--output`` or to stdout. Options, the output place and the corpus file are checked before the
model is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berg_core.cli.common import add_progress_options, parse_options
from berg_core.console import notice
from berg_core.errors import InvalidParameterError
from berg_core.scale.executor import add_executor_options, executor_config

if TYPE_CHECKING:
    from berg_core.search import SearchResult


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("search", help="find the corpus sentences predicted to drive / suppress each ROI most",
                       description="Score every line of a corpus with a sentence model and keep, per ROI, the top-k "
                                   "(drive) and bottom-k (suppress) sentences. Ties: the earlier line ranks higher; "
                                   "a repeated sentence is kept once.")
    p.add_argument("model", help="model id of a sentence model (e.g. fmri-tuckute_2024-GPT2_XL)")
    p.add_argument("--input", "-i", required=True, help="corpus: UTF-8 text, one sentence a line (blank lines skipped; - = stdin)")
    p.add_argument("--output", "-o", default=None,
                   help="results .csv: roi, direction, rank, sentence, one column per ROI, line (default: CSV to stdout)")
    p.add_argument("--top-k", "-k", type=int, default=10, help="sentences kept per ROI and direction (default 10)")
    p.add_argument("--roi", action="append", default=None, metavar="R",
                   help="ROI name(s) to rank: --roi A --roi B or --roi A,B (default: all of the model's outputs)")
    p.add_argument("--subject", default=None)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per forward pass (the model's batch_size option)")
    p.add_argument("--chunk-size", type=int, default=1024, help="sentences read and encoded at once (default 1024)")
    p.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE",
                   help="a load option of the model, e.g. -O backbone=/path/to/gpt2-xl -O dtype=float32 (JSON values parsed)")
    g = p.add_argument_group("shards (see the README's scale-out recipe)")
    g.add_argument("--shards", type=int, default=1, metavar="N",
                   help="cut the corpus into N byte ranges, one task each, merged exactly (default 1: one pass here)")
    g.add_argument("--work-dir", default=None, metavar="DIR",
                   help="shard results, histogram and logs (default: OUTPUT.shards beside --output); a rerun skips finished shards")
    g.add_argument("--bin-width", type=float, default=0.01, metavar="W",
                   help="width of the response histogram's fixed bins (default 0.01; OUTPUT_histogram.csv, or histogram.csv with shards)")
    p.add_argument("--no-plots", dest="plots", action="store_false",
                   help="skip the default figures and report (OUTPUT_*.png, OUTPUT_report.html beside --output)")
    add_executor_options(p)
    add_progress_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from berg_core.cli.encode import check_batch_size, roi_list
    from berg_core.facade import BERG
    from berg_core.search import search, write_hits, write_hits_csv
    from berg_core.store.userfiles import STDIN, check_input_path, check_output_path, write_sidecar

    if args.output is not None:
        if not str(args.output).lower().endswith(".csv"):
            raise InvalidParameterError(f"berg search writes CSV; give an --output ending in .csv, not {args.output!r}")
        check_output_path(args.output, (".csv",), "berg search output")
    for flag, value in (("--top-k", args.top_k), ("--chunk-size", args.chunk_size)):
        if value < 1:
            raise InvalidParameterError(f"{flag} must be 1 or more, got {value}")
    check_batch_size(args.batch_size)
    executor_config(args, None, "berg-search")  # the executor flags, before anything runs
    if args.shards < 1:
        raise InvalidParameterError(f"--shards must be an int >= 1, got {args.shards}")
    options = parse_options(args.option)
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    rois = roi_list(args.roi)
    selection = {"roi": rois} if rois else None
    if args.input != STDIN:
        check_input_path(args.input, "corpus file")
    if args.shards != 1 or args.executor != "local":
        result = _sharded(args, options, selection)
        hist_path = work_dir(args, "berg search") / "histogram.csv"
    else:
        from berg_core.encoder import output_names_of
        from berg_core.facade import output_attrs
        from berg_core.search.shard import Histogram

        if not (args.bin_width > 0 and args.bin_width < float("inf")):
            raise InvalidParameterError(f"--bin-width must be a number > 0, got {args.bin_width}")
        berg = BERG(args.berg_dir)
        with berg.get_encoding_model(args.model, subject=args.subject, selection=selection, device=args.device, **options) as model:
            hist = Histogram(output_names_of(model), args.bin_width)  # kept while searching: no second pass for figures
            result = search(model, args.input, top_k=args.top_k, chunk_size=args.chunk_size, show_progress=args.progress,
                            on_chunk=hist.add)
            attrs = output_attrs(model)
    if args.output is None:
        write_hits(sys.stdout, result)
        sys.stdout.flush()
        return 0
    write_hits_csv(args.output, result)
    if args.shards != 1 or args.executor != "local":
        from berg_core.facade import resolve_spec, spec_attrs

        attrs = spec_attrs(resolve_spec(args.model), args.subject, options)
    write_sidecar(args.output, {**attrs, "rows": "kept sentence (roi, direction, rank; line = its line in the corpus)",
                                "columns": list(result.columns), "n_sentences_scored": result.n_sentences})
    if args.shards == 1 and args.executor == "local":
        hist_path = Path(args.output).with_name(Path(args.output).stem + "_histogram.csv")
        hist.write_csv(hist_path)
    notice(f"scored {result.n_sentences} sentences; wrote the top and bottom {args.top_k} per ROI "
           f"({len(result.hits)} rows) to {args.output}")
    if args.plots:
        from berg_core.figures import write_defaults

        params = {"model": args.model, "subject": args.subject, "corpus": args.input, "sentences scored": result.n_sentences,
                  "top-k": args.top_k, "bin width": args.bin_width, "options": options}
        if written := write_defaults(args.output, params=params, histogram=hist_path):
            notice(f"figures and report: {', '.join(str(p) for p in written)}")
    return 0


def work_dir(args: argparse.Namespace, what: str) -> Path:
    """``--work-dir``, else ``OUTPUT.shards`` beside ``--output`` (a sharded run keeps its shards and logs there)."""
    if args.work_dir:
        return Path(args.work_dir)
    if args.output is None:
        raise InvalidParameterError(f"{what} with --shards or --executor needs --output (or --work-dir) for its shards and logs")
    out = Path(args.output)
    return out.with_name(out.name + ".shards")


def _sharded(args: argparse.Namespace, options: dict[str, Any], selection: dict[str, Any] | None) -> SearchResult:
    """Search in shards (see berg_core.scale.corpus); the merged result equals the one-pass search's."""
    from berg_core.facade import resolve_spec
    from berg_core.scale.corpus import ModelRequest, merge_search, plan, run_sharded
    from berg_core.store.userfiles import STDIN

    if args.input == STDIN:
        raise InvalidParameterError("--shards/--executor read the corpus file in byte ranges; give a file, not - (stdin)")
    if not (args.bin_width > 0 and args.bin_width < float("inf")):
        raise InvalidParameterError(f"--bin-width must be a number > 0, got {args.bin_width}")
    work = work_dir(args, "berg search")
    config = executor_config(args, work, "berg-search")
    request = ModelRequest(args.model, args.berg_dir, args.subject, selection, args.device, options)
    spec = resolve_spec(args.model)  # checked here, before any task starts (no model is loaded in this process)
    if spec.stimulus != "sentences":
        raise InvalidParameterError(f"berg search needs a model whose stimulus is sentences; {spec.model_id} takes {spec.stimulus}")
    spec.options.check(options, spec.model_id)
    model_id = spec.model_id
    tasks = plan("search", args.input, args.shards, request, work, top_k=args.top_k, chunk_size=args.chunk_size,
                 bin_width=args.bin_width)
    run_sharded(tasks, config)
    result, hist = merge_search(tasks, model_id)
    hist.write_csv(work / "histogram.csv")
    notice(f"merged {len(tasks)} shards; response histogram (bin width {args.bin_width}) in {work / 'histogram.csv'}")
    return result
