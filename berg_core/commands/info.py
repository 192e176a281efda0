"""``berg info MODEL [--subject S] [--json]``: a model's card, options and metadata summary."""

from __future__ import annotations

import argparse
from typing import Any

from berg_core.commands import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a model (no backbone is loaded)")
    p.add_argument("model", help="model id or trained-encoder folder")
    p.add_argument("--subject", default=None, help="also summarise this subject's metadata (needs its metadata file)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def summarise(value: Any) -> Any:
    """Metadata made printable: arrays become shape/dtype summaries, dicts recurse."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): summarise(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return value.tolist()
        return f"array{tuple(value.shape)} {value.dtype}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"list of {len(value)}: {', '.join(map(str, value[:6]))}, ..."
    if isinstance(value, np.generic):
        return value.item()
    return value


def run(args: argparse.Namespace) -> int:
    from berg_core.facade import BERG, resolve_spec

    berg = BERG(args.berg_dir)
    spec = resolve_spec(args.model)
    meta = summarise(berg.get_model_metadata(args.model, subject=args.subject)) if args.subject is not None else None
    if args.json:
        out = spec.to_dict()
        out["card"] = spec.card
        if meta is not None:
            out["metadata"] = meta
        print_json(out)
        return 0
    print(berg.describe(args.model), end="")
    if meta is not None:
        print(f"\nmetadata (subject {args.subject}):")
        for key, value in meta.items():
            print(f"  {key}: {value}")
    return 0
