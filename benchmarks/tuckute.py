"""fmri-tuckute_2024-GPT2_XL: BERG's way vs berg's way of computing the same predictions, side by side.

One random-init GPT-2 of GPT2-XL's real shape (48 blocks, 1600-d, 25 heads, 50,257-token vocabulary,
1,024 positions; built from a config, nothing downloaded) serves both paths, so the numbers differ only
by how they run it:

* BERG-style: one sentence per forward pass through all 48 blocks with ``output_hidden_states=True``,
  autograd left on (no ``no_grad``/``inference_mode``), the sentence's token span found from character
  offsets, the last token of each of the 49 hidden states copied to numpy (as BERG's ANNEncoder keeps
  every layer), then layer 22 -> ``X @ coef.T + intercept``;
* berg: ``berg_core.features.backbones.sentence_features`` on a ``Backbone`` holding only the first 22 blocks (the same
  weight tensors, shared, with ``ln_f`` replaced by the identity: what ``load_backbone(layer=22)`` builds
  from a checkpoint), length-sorted padded batches, inference mode, then the plugin's ``Readout.predict``.

The paths take turns on chunks of 64 sentences (``--chunk``), so other load on a shared machine slows
both alike; CPU time is printed next to wall time for the same reason. Printed: sentences/s of each, their ratio, peak resident memory above the shared weights during each
path, the weights each path needs resident (BERG loads 48 blocks, berg 22), and the max abs difference of
the features and of the predictions. The tokenizer is a byte-level BPE trained here on the benchmark
sentences (about one token per word, like GPT-2's on plain English: ~8 tokens per six-word sentence).

    flock /tmp/berg-heavy.lock python benchmarks/tuckute.py            # 256 sentences (a few minutes on 2 cores)
    flock /tmp/berg-heavy.lock python benchmarks/tuckute.py --n 8      # smoke run

Needs ~7 GB of RAM (6.2 GB of fp32 weights, once).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

LAYER = 22
WORDS = (
    "the a one every some that this my your our their old new small large quiet loud early late bright dark "
    "cat dog bird river city garden teacher doctor child farmer singer window letter story song bridge forest "
    "road kitchen market island winter summer morning evening music picture engine ocean mountain village "
    "reads writes finds keeps paints builds carries watches follows opens closes remembers forgets sells buys "
    "visits crosses fixes draws hears near under above behind beside across through before after with "
    "slowly quickly softly gladly rarely often again today yesterday outside"
).split()


def six_word_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct random six-word sentences ("Word word word word word word.")."""
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        words = list(rng.choice(WORDS, 6))
        out[" ".join(words).capitalize() + "."] = None
    return list(out)


def train_tokenizer(sentences: list[str], folder: str) -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences * 3, vocab_size=1000, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    tok.save_pretrained(folder)
    tok = PreTrainedTokenizerFast.from_pretrained(folder)
    tok.pad_token = tok.eos_token  # as load_backbone does for GPT-2 (padding is masked out anyway)
    return tok


def build_gpt2_xl(seed: int) -> Any:
    import torch
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=48, n_embd=1600, n_head=25, vocab_size=50257, n_positions=1024)
    return GPT2Model(config).eval()


def truncated_view(full: Any, layer: int) -> Any:
    """A GPT2Model whose modules are ``full``'s embeddings and first ``layer`` blocks (shared), ln_f = identity."""
    import torch
    from transformers import GPT2Model

    config = copy.deepcopy(full.config)
    config.n_layer = layer
    with torch.device("meta"):  # no weights allocated: every module is replaced by full's below
        view = GPT2Model(config)
    view.wte, view.wpe, view.drop = full.wte, full.wpe, full.drop
    view.h = torch.nn.ModuleList(list(full.h)[:layer])
    view.ln_f = torch.nn.Identity()
    view.eval()
    meta = [n for n, t in [*view.named_parameters(), *view.named_buffers()] if t.is_meta]
    if meta:
        raise RuntimeError(f"truncated view still has meta tensors: {meta[:3]}")
    return view


# ------------------------------------------------------------------------------------------ memory


class PeakRSS:
    """Samples this process's resident memory every ``interval`` s while active; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def __enter__(self) -> PeakRSS:
        self.start = self.rss()
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def gpu_peak(device: str, fn: Callable[[], Any]) -> tuple[Any, int]:
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    out = fn()
    torch.cuda.synchronize(device)
    return out, torch.cuda.max_memory_allocated(device) - base


# ------------------------------------------------------------------------------------------- paths


def last_char_token(enc: Any, text: str) -> int:
    """BERG's token choice: the first token whose character span reaches the end of ``text``."""
    n = int(enc.input_ids.shape[-1])
    for i in range(n):
        span = enc.token_to_chars(0, i)
        if span is not None and span.end >= len(text):
            return i
    return n - 1


def berg_style(model: Any, tokenizer: Any, sentences: list[str], device: str) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence, full depth, all hidden states kept, autograd on. Returns (all-layer features, layer-22 features)."""
    per_sentence = []
    for text in sentences:
        enc = tokenizer(text, return_tensors="pt")
        out = model(enc.input_ids.to(device), output_hidden_states=True, return_dict=True)
        token = last_char_token(enc, text)
        layers = [h[0, token, :].detach().float().cpu().numpy() for h in out.hidden_states]  # 49 x (1600,)
        per_sentence.append(np.stack(layers))
    everything = np.stack(per_sentence)  # (n, 49, 1600)
    return everything, everything[:, LAYER, :]


def berg_path(backbone: Any, sentences: list[str], batch_size: int) -> np.ndarray:
    from berg_core.features.backbones import sentence_features

    return sentence_features(backbone, sentences, batch_size=batch_size, pooling="last")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256, help="number of six-word sentences (default 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="berg's batch size (default 32)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", default="float32", help="berg path precision on GPU (float32 or float16; CPU: float32)")
    parser.add_argument("--chunk", type=int, default=64, help="sentences per turn when the two paths alternate (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from berg_core.device import resolve_device
    from berg_core.features.backbones import Backbone
    from berg_tuckute.plugin import ROIS
    from berg_tuckute.weights import Readout

    device = resolve_device(args.device)
    sentences = six_word_sentences(args.n, args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(sentences, tmp)
    full = build_gpt2_xl(args.seed).to(device)
    view = truncated_view(full, LAYER)
    berg_model = view if args.dtype == "float32" else copy.deepcopy(view).to(dtype=getattr(torch, args.dtype))
    backbone = Backbone(name="gpt2-xl-shaped-random", layer=LAYER, device=device, dtype=args.dtype, tokenizer=tokenizer,
                        model=berg_model, revision="random", hidden_size=1600, max_tokens=1024)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    readout = Readout(rng.standard_normal((len(ROIS), 1600)) / 40.0, rng.standard_normal(len(ROIS)), ROIS, np.ones(len(ROIS)))
    n_tokens = [len(tokenizer(s)["input_ids"]) for s in sentences]

    def params(module: Any) -> int:
        return sum(p.numel() * p.element_size() for p in module.parameters())

    # warm-up (first-call allocations, kernel selection), not timed
    berg_style(full, tokenizer, sentences[:2], device)
    berg_path(backbone, sentences[:2], args.batch_size)

    # The two paths alternate chunk by chunk, so load from other processes on a shared machine slows both alike.
    paths: dict[str, Callable[[list[str]], np.ndarray]] = {
        "BERG-style": lambda chunk: berg_style(full, tokenizer, chunk, device)[1],
        "berg": lambda chunk: berg_path(backbone, chunk, args.batch_size),
    }
    feats: dict[str, list[np.ndarray]] = {name: [] for name in paths}
    wall = dict.fromkeys(paths, 0.0)
    cpu = dict.fromkeys(paths, 0.0)
    extra = dict.fromkeys(paths, 0)
    step = args.chunk
    for start in range(0, len(sentences), step):
        chunk = sentences[start:start + step]
        for name, run in paths.items():
            c0, t0 = time.process_time(), time.perf_counter()
            if device.startswith("cuda"):
                out, peak = gpu_peak(device, lambda run=run, chunk=chunk: run(chunk))
            else:
                with PeakRSS() as mem:
                    out = run(chunk)
                peak = mem.peak - mem.start
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
            extra[name] = max(extra[name], peak)
            feats[name].append(out)
    results = {name: (np.concatenate(feats[name]), wall[name], extra[name]) for name in paths}

    (ref, ref_s, ref_mem), (got, got_s, got_mem) = results["BERG-style"], results["berg"]
    feat_diff = float(np.abs(ref - got).max())
    pred_diff = float(np.abs(readout.predict(ref).astype(np.float32) - readout.predict(got).astype(np.float32)).max())
    gib = 2**30
    where = f"{device} ({platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads)"
    print(f"\nfmri-tuckute_2024-GPT2_XL pipeline, random GPT2-XL-shaped backbone, {args.n} six-word sentences "
          f"({np.mean(n_tokens):.1f} tokens on average), {where}; model built in {build_s:.0f} s\n")
    print("| path | how | sentences/s | wall time (s) | CPU time (s) | peak memory above the weights | weights resident |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print(f"| BERG-style | 1 sentence/pass, 48 blocks, 49 hidden states kept, autograd on | {args.n / ref_s:.2f} | {ref_s:.1f} | "
          f"{cpu['BERG-style']:.1f} | {ref_mem / gib:.2f} GiB | {params(full) / gib:.2f} GiB (48 blocks) |")
    print(f"| berg | batches of {args.batch_size}, 22 blocks, inference mode ({args.dtype}) | {args.n / got_s:.2f} | {got_s:.1f} | "
          f"{cpu['berg']:.1f} | {got_mem / gib:.2f} GiB | {params(berg_model) / gib:.2f} GiB (22 blocks) |")
    print(f"\nspeed-up (berg / BERG-style sentences/s): {ref_s / got_s:.1f}x (CPU time: {cpu['BERG-style'] / cpu['berg']:.1f}x); "
          f"load average 1/5/15 min at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"max |difference|: features (block-22 residual, 1600-d) {feat_diff:.2e}; predictions (6 ROIs) {pred_diff:.2e} "
          f"(for scale: features' std across sentences {float(ref.std(axis=0).mean()):.2e}, predictions' "
          f"{float(readout.predict(ref).std(axis=0).mean()):.2e})")


if __name__ == "__main__":
    main()
