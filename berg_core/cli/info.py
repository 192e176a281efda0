"""``berg info MODEL [--subject S] [--card] [--json]``: a short summary of a model, its card on request.

The text output starts with a summary (id, aliases, family, plugin, stimulus, subjects, outputs, selection keys,
files in berg_dir and their size on disk, how to fetch them), then the subject's metadata (with
``--subject``), the description, load options and further facts; the full model card only with
``--card``. ``--json`` prints everything, card included. No backbone is loaded.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

from berg_core.cli.common import print_json
from berg_core.spec import EncoderSpec

STIMULUS = {
    "sentences": "sentences (a list of str; one response row per sentence)",
    "timed_words": "words + onsets in s (a dict with 'words' and 'word_onsets'; one response row per TR)",
    "words": "words (a list of str in order, each read after the preceding ones; one response row per word)",
    "tr_texts": "text per fMRI TR (a list of str, one per TR, '' for a silent TR; one response row per TR)",
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("info", help="describe a model: a short summary, the card with --card (no backbone is loaded)",
                       description="Summarise a model (id, family, plugin, stimulus, subjects, outputs, selection keys, "
                                   "files and how to fetch them), then its options and facts. --card adds the full "
                                   "model card; --json prints everything.")
    p.add_argument("model", help="model id or trained-encoder folder")
    p.add_argument("--subject", default=None, help="also summarise this subject's metadata (needs its metadata file)")
    p.add_argument("--card", action="store_true", help="also print the full model card")
    p.add_argument("--json", action="store_true", help="print JSON (every field, card included)")
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


def format_bytes(n: int) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - the loop always returns


def remote_paths(spec: EncoderSpec, subject: str | None) -> list[str]:
    """Relative paths of the files ``berg fetch`` gets for ``subject`` (every subject when None), each once."""
    if subject is None and spec.subjects:
        files = [f for s in spec.subjects for f in spec.files_for(s)]
    else:
        files = spec.files_for(subject)
    return list(dict.fromkeys(f.path for f in files))


def files_line(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> str:
    """``"16 for all subjects, 2 in DIR (1.2 GB on disk)"``: counted from the disk, nothing hashed or downloaded."""
    paths = remote_paths(spec, subject)
    if not paths:
        folder = spec.info.get("path")
        return f"none to download (encoder folder {folder})" if folder else "none to download"
    sizes = []
    for rel in paths:
        try:
            sizes.append(os.stat(berg_dir / rel).st_size)
        except (OSError, ValueError):  # missing, unreadable, or a path the OS cannot take: not present
            pass
    scope = f" for subject {subject}" if subject is not None else (" for all subjects" if spec.subjects else "")
    if not sizes:
        return f"{len(paths)}{scope}, none in {berg_dir} yet"
    held = "all" if len(sizes) == len(paths) else f"{len(sizes)}"
    return f"{len(paths)}{scope}, {held} in {berg_dir} ({format_bytes(sum(sizes))} on disk)"


def outputs_line(spec: EncoderSpec, subject: str | None) -> str:
    """The number of output columns: fixed ROIs, the card's ``n_outputs`` (an int or a count per subject)."""
    if spec.rois:
        return f"{len(spec.rois)} ROIs ({', '.join(spec.rois)})"
    n = spec.info.get("n_outputs")
    if isinstance(n, int):
        return f"{n:,}"
    if isinstance(n, dict) and n:
        if subject is not None and subject in n:
            return f"{n[subject]:,} voxels (subject {subject})"
        counts = sorted(int(v) for v in n.values())
        return f"{counts[0]:,} to {counts[-1]:,} voxels by subject (--subject S for one)"
    return "see the description"


def summary_lines(spec: EncoderSpec, model: str, subject: str | None, berg_dir: Path) -> list[str]:
    """The short summary ``berg info`` prints first (``model`` as the user typed it, for the fetch hint)."""
    subjects = spec.subjects
    lines = [
        spec.model_id,
        *([f"aliases: {', '.join(spec.aliases)} (older ids, accepted with a notice)"] if spec.aliases else []),
        f"family: {spec.family}",
        f"plugin: {spec.plugin or 'built in'}",
        f"stimulus: {STIMULUS.get(spec.stimulus, spec.stimulus)}",
        f"subjects: {', '.join(subjects)} ({len(subjects)})" if subjects else "subjects: none (leave --subject out)",
        f"outputs: {outputs_line(spec, subject)}",
        f"selection keys: {', '.join(spec.selection) or 'none'}",
        f"files: {files_line(spec, subject, berg_dir)}",
    ]
    spaces = spec.info.get("feature_spaces")
    has_backbone = bool(spec.options.get("backbone")) or (isinstance(spaces, list) and any(isinstance(s, dict) and s.get("backbone") for s in spaces))
    what = [w for w, present in (("its files", spec.remote_files), ("its backbone", has_backbone)) if present]
    if what:
        per_subject = " [--subject S]" if any("{subject}" in f.path for f in spec.remote_files) else ""
        lines.append(f"fetch: berg fetch {shlex.quote(model)}{per_subject}  ({' and '.join(what)}, ahead of use)")
    return lines


def detail_lines(spec: EncoderSpec) -> list[str]:
    """Description, selection details, load options and the plugin's further facts."""
    lines = ["", spec.description.strip()] if spec.description.strip() else []
    lines.append("")
    for key, text in spec.selection.items():
        lines.append(f"selection[{key!r}]: {text}")
    for opt in spec.options.declared:  # name = default  (type, minimum, choices; help)
        lines.append(f"option {opt.name} = {opt.default!r}  ({opt.summary()})")
    for key, value in spec.info.items():
        if key != "n_outputs":
            lines.append(f"{key}: {value}")
    return lines


def run(args: argparse.Namespace) -> int:
    from berg_core.facade import BERG, resolve_spec

    berg = BERG(args.berg_dir)
    spec = resolve_spec(args.model)
    model = spec.model_id if args.model in spec.aliases else args.model  # hints name the current id
    meta = summarise(berg.get_model_metadata(args.model, subject=args.subject)) if args.subject is not None else None
    if args.json:
        out = spec.to_dict()
        out["card"] = spec.card
        if meta is not None:
            out["metadata"] = meta
        print_json(out)
        return 0
    subject = None if args.subject is None else str(args.subject)
    lines = summary_lines(spec, model, subject, berg.berg_dir)
    if meta is not None:
        lines += ["", f"metadata (subject {args.subject}):"] + [f"  {key}: {value}" for key, value in meta.items()]
    lines += detail_lines(spec)
    card = spec.card.strip()
    if card and args.card:
        lines += ["", card]
    elif card:
        lines += ["", f"model card: {len(card.splitlines())} lines; `berg info {shlex.quote(model)} --card` prints it"]
    print("\n".join(lines))
    return 0
