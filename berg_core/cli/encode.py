"""``berg encode MODEL [--subject S] [--roi R ...] [--voxels FILE] (TEXT... | --input FILE|-) [--output FILE]``.

Everything cheap is checked before the model is loaded: the options, where the output goes, the input
file (decoding, blank lines) and the voxel mask.
"""

from __future__ import annotations

import argparse
import sys

from berg_core.cli.common import add_progress_options, parse_options, print_json
from berg_core.console import notice
from berg_core.errors import InvalidParameterError


class _TextAnywhereParser(argparse.ArgumentParser):
    """Sentences may also follow options (``--roi X "a sentence"``): argparse gives the ``text`` positional
    only the words before the first option and calls the later ones unrecognized; they are taken as text."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        text = [e for e in extras if e == "-" or not e.startswith("-")]
        if text and isinstance(getattr(namespace, "text", None), list):
            namespace.text = [*namespace.text, *text]
            extras = [e for e in extras if not (e == "-" or not e.startswith("-"))]
        return namespace, extras


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="predict fMRI responses to text")
    p.__class__ = _TextAnywhereParser  # argparse builds subparsers from the parent's class
    p.add_argument("model", help="model id or trained-encoder folder")
    p.add_argument("text", nargs="*", help="sentences to encode (or use --input)")
    p.add_argument("--subject", default=None)
    p.add_argument("--roi", action="append", default=None, metavar="R",
                   help="ROI name(s) to keep, in this order where the model keeps order: --roi A --roi B or --roi A,B")
    p.add_argument("--voxels", default=None, help="0/1 voxel mask file (.npy or text), for voxelwise models")
    p.add_argument("--input", "-i", default=None,
                   help=".txt (one sentence a line; no blank lines), - (the same from stdin) or .json/.csv/.tsv (words + onsets)")
    p.add_argument("--output", "-o", default=None, help="write .npy, .csv or .h5 (default: print)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per forward pass (sentence models)")
    p.add_argument("-O", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model option, e.g. -O layer=20 -O backbone=/path/to/gpt2-xl -O dtype=float32 (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON (rows with column names)")
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


def selection_from_args(args: argparse.Namespace) -> dict | None:
    from berg_core.store.userfiles import read_voxel_index

    selection: dict = {}
    if args.roi is not None:
        selection["roi"] = roi_list(args.roi)
    if args.voxels:
        selection["voxel_index"] = read_voxel_index(args.voxels)
    return selection or None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from berg_core.encoder import output_names_of, validate_stimulus
    from berg_core.facade import BERG, resolve_spec
    from berg_core.store.userfiles import check_output_path, read_stimulus, write_responses

    if bool(args.text) == (args.input is not None):
        raise InvalidParameterError("give the text to encode either as arguments or with --input FILE (not both)")
    spec = resolve_spec(args.model)
    options = parse_options(args.option, spec)  # typed by the model's declared options
    check_batch_size(args.batch_size)
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    if args.output:
        check_output_path(args.output)
    selection = selection_from_args(args)
    stimulus = read_stimulus(args.input) if args.input is not None else list(args.text)
    validate_stimulus(spec, stimulus)  # before the model loads (encode checks it again)
    berg = BERG(args.berg_dir)
    if "progress" in spec.options:  # a model's own bars (e.g. LeBel's conversion) follow --progress
        options.setdefault("progress", args.progress)
    with berg.get_encoding_model(args.model, subject=args.subject, selection=selection, device=args.device, **options) as model:
        responses = model.encode(stimulus, show_progress=args.progress)
        columns = output_names_of(model)
    if args.output:
        write_responses(args.output, responses, columns, attrs={"model_id": model.model_id, "subject": model.subject or ""})
        notice(f"wrote {responses.shape[0]} x {responses.shape[1]} responses to {args.output}")
    elif args.json:
        print_json({"model_id": model.model_id, "columns": columns, "responses": responses.tolist()})
    else:
        print("\t".join(columns))
        np.savetxt(sys.stdout, responses, delimiter="\t", fmt="%.6g")
    return 0
