"""brainscore_language-{name}: listing cost, first load (training) vs cached load, and BERG's running
context vs berg's independent sentences, side by side.

Offline: brainscore's ``Pereira2018.language`` loader returns a synthetic assembly of the real shape
(627 presentations x 13,553 neuroids of 10 subjects; 384 x 12,155 after berg's selection, subject 018 =
1,358 voxels; ``tests/brainscore/synthetic.py``), and the models are brainscore's own
``randomembedding-100`` and a small random GPT-2 (``--layers`` 4 blocks, ``--hidden`` 256, 1,024
positions, a byte-level BPE tokenizer trained here) registered as a brainscore ``HuggingfaceSubject``
reading ``transformer.h.{layers-2}``.

1. ``berg list brainscore`` (a fresh process, best of 3) and the registry build in-process.
2. Subject 018: first load (brainscore model + data + 384 passage features + PLS fit on 1,358 voxels,
   written to the cache) vs a second load (cache read); the GPT-2 object is built once in memory, so its
   "cached load" excludes reading weights from disk (which dominates for real hub models).
3. The 384 synthetic sentences (7-18 words) encoded by the GPT-2 model:
   a) ``context="independent"`` (berg's default: each sentence alone, length-sorted batches);
   b) ``context="running"`` (BERG's behaviour: sentence i is read after sentences 0..i-1, the whole
      context run again, left-truncated to 1,024 tokens) through berg's batched route;
   c) the same running text through brainscore's ``digest_text`` of the list (what BERG calls),
   printing wall and CPU seconds, tokens run through the model, ratios, the max |b - c| difference of the
   features, and b at 96/192/384 sentences (the quadratic growth until the 1,024-token window is full).

    flock /tmp/berg-heavy.lock python benchmarks/brainscore.py              # ~3-5 minutes on 2 busy cores
    flock /tmp/berg-heavy.lock python benchmarks/brainscore.py --n 64       # smoke run

Runs in the brainscore environment (brainscore-language 2.3.0: numpy<2, transformers<5).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "bench-gpt2"
REAL_COUNTS_215 = 13553 - 12155  # subject 215 did only the 243-sentence experiment


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def setup_env(tmp: Path, threads: int) -> None:
    os.environ.update({"BS_INSTALL_DEPENDENCIES": "no", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                       "BERG_CACHE_DIR": str(tmp / "cache"), "BERG_DIR": str(tmp / "berg"), "BRAINIO_HOME": str(tmp / "brainio"),
                       "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"})
    import torch

    torch.set_num_threads(threads)


def listing() -> None:
    env = dict(os.environ)
    script = Path(sys.executable).parent / "berg"
    berg = [str(script)] if script.exists() else [sys.executable, "-m", "berg_core.cli"]
    walls = []
    for _ in range(3):
        w = time.perf_counter()
        out = subprocess.run([*berg, "list", "brainscore"], capture_output=True, text=True, env=env, check=True)
        walls.append(time.perf_counter() - w)
    base = []
    for _ in range(3):
        w = time.perf_counter()
        subprocess.run([*berg, "list"], capture_output=True, text=True, check=True,
                       env={**env, "BERG_LOAD_PLUGINS": "none"})
        base.append(time.perf_counter() - w)
    from berg_core.registry import build_registry

    os.environ["BERG_LOAD_PLUGINS"] = "brainscore"
    _, wall, _ = timed(build_registry)
    del os.environ["BERG_LOAD_PLUGINS"]
    n = sum(line.startswith("brainscore_language-") for line in out.stdout.splitlines())
    print(f"1. `berg list brainscore`: {n} models in {min(walls):.2f} s (process start to exit, best of 3); "
          f"`berg list` with no plugin: {min(base):.2f} s; brainscore plugin registry build in-process: {wall * 1000:.0f} ms")


def build_gpt2(sentences: list[str], folder: Path, layers: int, hidden: int) -> tuple[Any, Any]:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences * 3, vocab_size=2000, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", model_max_length=1024, truncation_side="left",
                                  model_input_names=["input_ids", "attention_mask"])
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=hidden, n_layer=layers, n_head=4)
    return GPT2LMHeadModel(config).eval(), tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=384, help="sentences encoded in part 3 (<= 384)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared 2-core machine)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="berg-bench-brainscore-"))
    setup_env(tmp, args.threads)
    import sklearn
    import torch
    import transformers

    print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}, "
          f"sklearn {sklearn.__version__}, brainscore-language {_version()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    listing()

    sys.path.insert(0, str(ROOT / "tests" / "brainscore"))
    import synthetic

    from berg_brainscore.activations import digest
    from berg_brainscore.encoder import BrainscoreEncoder
    from berg_brainscore.enumerate import USABLE, BrainscoreModel
    from berg_brainscore.pereira import VOXELS
    from berg_brainscore.plugin import make_spec
    from berg_core.registry import get_spec

    _, wall, _ = timed(lambda: synthetic.install(counts={**VOXELS, "215": REAL_COUNTS_215}))
    sentences = synthetic.the_384()[0]
    print(f"(synthetic Pereira assembly of the real shape built in {wall:.1f} s)")

    model, tok = build_gpt2(sentences, tmp / "gpt2", args.layers, args.hidden)
    layer = f"transformer.h.{args.layers - 2}"
    from brainscore_language import ArtificialSubject, model_registry
    from brainscore_language.model_helpers.huggingface import HuggingfaceSubject

    model_registry[MODEL_NAME] = lambda: HuggingfaceSubject(model_id=MODEL_NAME, model=model, tokenizer=tok,
                                                            region_layer_mapping={ArtificialSubject.RecordingTarget.language_system: layer})
    gpt_spec = make_spec(BrainscoreModel(name=MODEL_NAME, folder="benchmark", subject_class="HuggingfaceSubject", hub_id=None,
                                         layer=layer, status=USABLE, reason="random GPT-2 built by the benchmark"))
    emb_spec = get_spec("brainscore_language-randomembedding-100")

    print(f"\n2. load for subject 018 (PLS on 384 x {VOXELS['018']}; cache under {tmp / 'cache'})")
    print(f"   {'model':<40} {'first load (train)':>19} {'cached load':>12} {'ratio':>7}")
    encoders = {}
    for label, spec in ((f"random GPT-2 {args.layers}x{args.hidden}, {layer}", gpt_spec), ("brainscore randomembedding-100", emb_spec)):
        _, first, _ = timed(lambda spec=spec: BrainscoreEncoder(spec, subject="018", device="cpu"))
        enc, cached, _ = timed(lambda spec=spec: BrainscoreEncoder(spec, subject="018", device="cpu", batch_size=args.batch_size))
        encoders[spec.model_id] = enc
        print(f"   {label:<40} {first:>17.2f} s {cached:>10.3f} s {first / cached:>6.0f}x")

    from brainscore_language.model_helpers.preprocessing import prepare_context

    text = sentences[: args.n]
    independent = encoders[gpt_spec.model_id]
    running = BrainscoreEncoder(gpt_spec, subject="018", device="cpu", context="running", batch_size=args.batch_size)
    tokens_ind = sum(len(tok(prepare_context([s]))["input_ids"]) for s in text)
    tokens_run = sum(min(1024, len(tok(prepare_context(text[: i + 1]), truncation=True)["input_ids"])) for i in range(len(text)))
    out_a, wall_a, cpu_a = timed(lambda: independent.encode(text))
    out_b, wall_b, cpu_b = timed(lambda: running.encode(text))
    feats_c, wall_c, cpu_c = timed(lambda: digest(running._subject, text))
    out_c = running._map.predict(feats_c).astype(np.float32)
    diff = float(np.abs(running.features(text) - feats_c).max())
    print(f"\n3. {len(text)} sentences through the random GPT-2 ({args.layers} blocks, {args.hidden}-d), subject 018")
    print(f"   {'route':<62} {'wall s':>8} {'CPU s':>8} {'tokens run':>11} {'wall vs a':>10}")
    rows = (("a) independent (berg default, batched)", wall_a, cpu_a, tokens_ind),
            ("b) running, berg's batched route (same numbers as c)", wall_b, cpu_b, tokens_run),
            ("c) running, brainscore digest_text of the list (BERG)", wall_c, cpu_c, tokens_run))
    for name, wall, cpu, tokens in rows:
        print(f"   {name:<62} {wall:>8.2f} {cpu:>8.2f} {tokens:>11,} {wall / wall_a:>9.1f}x")
    print(f"   max |b - c| feature difference: {diff:.2e}; max |b - c| prediction difference: {float(np.abs(out_b - out_c).max()):.2e}; "
          f"max |a - b| prediction difference (the context effect): {float(np.abs(out_a - out_b).max()):.2f}")
    growth = []
    for n in sorted({max(1, len(text) // 4), max(1, len(text) // 2), len(text)}):
        part = text[:n]
        _, wall, _ = timed(lambda part=part: running.features(part))
        toks = sum(min(1024, len(tok(prepare_context(part[: i + 1]), truncation=True)["input_ids"])) for i in range(len(part)))
        growth.append(f"{n}: {wall:.2f} s / {toks:,} tokens")
    print(f"   running (route b) cost by length: {'; '.join(growth)}")


def _version() -> str:
    from importlib.metadata import version

    return version("brainscore-language")


if __name__ == "__main__":
    main()
