"""``berg encode MODEL [--subject S] [--roi R ...] [--voxels FILE] (TEXT... | --input FILE|-) [--output FILE]``.

Everything cheap is checked before the model is loaded: the options, where the output goes, the input
file (decoding, blank lines: refused for sentences, silent TRs for a ``tr_texts`` model) and the voxel mask.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from berg_core.cli.common import add_progress_options, parse_options, print_json
from berg_core.console import notice
from berg_core.errors import InvalidParameterError, StimulusError
from berg_core.scale.executor import add_executor_options, executor_config

if TYPE_CHECKING:
    from berg_core.spec import EncoderSpec


class _TextAnywhereParser(argparse.ArgumentParser):
    """Sentences may also follow options (``--roi X "a sentence"``): argparse gives the ``text`` positional
    only the words before the first option and calls the later ones unrecognized; they are taken as text."""

    def parse_known_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        text = [e for e in extras if e == "-" or not e.startswith("-")]
        if text and isinstance(getattr(namespace, "text", None), list):
            namespace.text = [*namespace.text, *text]
            extras = [e for e in extras if not (e == "-" or not e.startswith("-"))]
        return namespace, extras


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("encode", help="predict fMRI responses to text")
    p.__class__ = _TextAnywhereParser  # argparse builds subparsers from the parent's class
    p.add_argument("model", help="model id or trained-encoder folder")
    p.add_argument("text", nargs="*", help="sentences to encode (or use --input)")
    p.add_argument("--subject", default=None)
    p.add_argument("--roi", action="append", default=None, metavar="R",
                   help="ROI name(s) to keep, in this order where the model keeps order: --roi A --roi B or --roi A,B")
    p.add_argument("--voxels", default=None, help="0/1 voxel mask file (.npy or text), for voxelwise models")
    p.add_argument("--mask", action="append", default=[], metavar="KEY=FILE",
                   help="a 0/1 mask file over one output axis of an N-D model, e.g. --mask electrode_index=e.txt --mask lags=l.npy")
    p.add_argument("--input", "-i", default=None,
                   help=".txt (one sentence a line, no blank lines; for a tr_texts model one TR a line, an empty line = a silent TR, "
                        "and the newline ending the last line adds no TR), - (the same from stdin) or .json/.csv/.tsv (words + onsets)")
    p.add_argument("--output", "-o", default=None,
                   help="write .npy, .csv, .tsv, .h5 or .nc (labelled; .nc needs berg-core[nc]); voxelwise models in a "
                        "subject space also .nii.gz (needs berg-core[maps]) (default: print)")
    p.add_argument("--summary", default=None, choices=("mean", "max", "std"),
                   help="with a .nii.gz output: one 3-D map of this statistic over the TRs instead of the 4-D series")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per forward pass (sentence models)")
    p.add_argument("-O", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model option, e.g. -O layer=20 -O backbone=/path/to/gpt2-xl -O dtype=float32 (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON (rows with column names)")
    g = p.add_argument_group("shards (a large .txt input; see the README's scale-out recipe)")
    g.add_argument("--shards", type=int, default=1, metavar="N",
                   help="cut the --input .txt into N byte ranges, one task each; the rows come back in line order (default 1)")
    g.add_argument("--work-dir", default=None, metavar="DIR",
                   help="shard outputs and logs (default: OUTPUT.shards beside --output); a rerun skips finished shards")
    add_executor_options(p)
    add_progress_options(p)
    p.set_defaults(func=run)


def roi_list(values: list[str] | None) -> list[str] | None:
    """``--roi`` values (repeated flags, each a name or a comma list) as one list of names, in order."""
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise InvalidParameterError("--roi needs ROI names, e.g. --roi lang_LH_IFG --roi lang_LH_AntTemp (or a comma list)")
    return names


def check_batch_size(value: int | None) -> None:
    if value is not None and value < 1:
        raise InvalidParameterError(f"--batch-size must be 1 or more, got {value}")


def selection_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    from berg_core.selection import MASK_KEYS
    from berg_core.store.userfiles import read_voxel_index

    selection: dict[str, Any] = {}
    for item in args.mask:
        key, sep, path = item.partition("=")
        if not sep or key not in MASK_KEYS or key == "voxel_index" or not path:
            raise InvalidParameterError(f"--mask takes KEY=FILE with KEY one of {', '.join(k for k in MASK_KEYS if k != 'voxel_index')}, "
                                        f"got {item!r} (voxels: --voxels FILE)")
        selection[key] = read_voxel_index(path, MASK_KEYS[key])
    if args.roi is not None:
        selection["roi"] = roi_list(args.roi)
    if args.voxels:
        selection["voxel_index"] = read_voxel_index(args.voxels)
    return selection or None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from berg_core.encoder import validate_stimulus
    from berg_core.facade import BERG, output_labels, resolve_spec
    from berg_core.store.userfiles import (
        OUTPUT_TYPES,
        VOLUME_TYPES,
        check_output_extras,
        check_output_path,
        output_ext,
        read_stimulus,
        write_responses,
    )

    if bool(args.text) == (args.input is not None):
        raise InvalidParameterError("give the text to encode either as arguments or with --input FILE (not both)")
    spec = resolve_spec(args.model)
    options = parse_options(args.option, spec)  # typed by the model's declared options
    check_batch_size(args.batch_size)
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    volume = bool(args.output) and output_ext(args.output) in VOLUME_TYPES
    if args.output:
        check_output_path(args.output, OUTPUT_TYPES + VOLUME_TYPES if spec.info.get("volume") else OUTPUT_TYPES)
        check_output_extras(args.output)  # xarray / nibabel present before the model loads
    if args.summary is not None and not volume:
        raise InvalidParameterError("--summary makes a 3-D brain map: give an --output ending in .nii.gz (voxelwise models)")
    executor_config(args, None, "berg-encode")  # the executor flags, before anything runs
    selection = selection_from_args(args)
    if args.shards != 1 or args.executor != "local":
        return _sharded(args, spec, options, selection)
    stimulus = read_stimulus(args.input, spec.stimulus) if args.input is not None else list(args.text)
    validate_stimulus(spec, stimulus)  # before the model loads (encode checks it again)
    berg = BERG(args.berg_dir)
    if "progress" in spec.options:  # a model's own bars (e.g. LeBel's conversion) follow --progress
        options.setdefault("progress", args.progress)
    with berg.get_encoding_model(args.model, subject=args.subject, selection=selection, device=args.device, **options) as model:
        responses = model.encode(stimulus, show_progress=args.progress)
        labels = output_labels(model, stimulus, len(responses))
        if volume:  # the model maps its voxels into its subject's space (mask + reference fetched on first use)
            from berg_core.store.volumes import write_model_volume

            write_model_volume(model, args.output, responses, labels, summary=args.summary)
            notice(f"wrote a {'3-D ' + args.summary if args.summary else '4-D'} map of {responses.shape[1]} voxels to {args.output}")
            return 0
    columns, axes = labels.columns, labels.axes
    if args.output:
        write_responses(args.output, responses, columns, attrs=labels.attrs, axes=axes, rows=labels.rows, row_name=labels.row_name,
                        column_groups=labels.column_groups)
        notice(f"wrote {' x '.join(map(str, responses.shape))} responses to {args.output}")
        return 0
    responses = responses.reshape(len(responses), -1)  # N-D outputs print flattened, one column per name
    if args.json:
        groups = {} if labels.column_groups is None else {"column_groups": {k: v.tolist() for k, v in labels.column_groups.items()}}
        print_json({"model_id": model.model_id, "columns": columns, **groups, "responses": responses.tolist()})
    else:
        print("\t".join(columns))
        np.savetxt(sys.stdout, responses, delimiter="\t", fmt="%.6g")
    return 0


def _check_sentence_file(path: str) -> int:
    """Stream a .txt input once with ``berg encode``'s rules (UTF-8, no blank line but at the end); its sentence count."""
    from berg_core.search import iter_corpus

    n, last = 0, 0
    for number, _ in iter_corpus(path):
        if number != last + 1:
            raise StimulusError(f"{path}: line {last + 1} is blank; every line is one sentence and row i of the output is "
                                        "line i, so remove the blank line (or put text on it)")
        n, last = n + 1, number
    if n == 0:
        raise StimulusError(f"{path} has no sentences; give one sentence per line")
    return n


def _sharded(args: argparse.Namespace, spec: EncoderSpec, options: dict[str, Any], selection: dict[str, Any] | None) -> int:
    """Encode a large .txt in byte-range shards (berg_core.scale.corpus); one output, rows in line order."""
    from pathlib import Path

    from berg_core.cli.search import work_dir
    from berg_core.scale.corpus import ModelRequest, merge_encode, plan, run_sharded
    from berg_core.store.userfiles import check_input_path, write_responses

    if args.shards < 1:
        raise InvalidParameterError(f"--shards must be an int >= 1, got {args.shards}")
    if args.input is None or args.input == "-" or Path(args.input).suffix.lower() != ".txt":
        raise InvalidParameterError("--shards/--executor encode a .txt file given with --input (one sentence a line)")
    if not args.output:
        raise InvalidParameterError("berg encode with --shards writes one file: give --output (.npy, .csv or .h5)")
    if spec.stimulus != "sentences":
        raise InvalidParameterError(f"--shards cuts a file of sentences; {spec.model_id} takes {spec.stimulus}")
    check_input_path(args.input, "input file")
    n = _check_sentence_file(args.input)
    work = work_dir(args, "berg encode")
    config = executor_config(args, work, "berg-encode")
    request = ModelRequest(args.model, args.berg_dir, args.subject, selection, args.device, options)
    tasks = plan("encode", args.input, args.shards, request, work)
    run_sharded(tasks, config)
    responses, columns = merge_encode(tasks)
    if responses.shape[0] != n:
        raise InvalidParameterError(f"the shards hold {responses.shape[0]} rows for {n} sentences; delete {work} and run again")
    from berg_core.facade import spec_attrs
    from berg_core.store.userfiles import read_sentences

    rows = read_sentences(args.input) if Path(args.output).suffix.lower() != ".npy" else None  # the one-pass file's labels
    write_responses(args.output, responses, columns, attrs=spec_attrs(spec, args.subject, options), rows=rows)
    notice(f"wrote {responses.shape[0]} x {responses.shape[1]} responses to {args.output} (from {len(tasks)} shards)")
    return 0

