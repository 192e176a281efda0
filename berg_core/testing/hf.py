"""Tiny random Hugging Face backbones for offline tests (no hub access).

``tiny_gpt2(folder)`` / ``tiny_opt(folder)`` save a randomly initialised model of the real
architecture together with a byte-level BPE tokenizer trained on the spot, so encoders can be
loaded with ``backbone=str(folder)`` exactly as they load ``gpt2-xl`` or ``facebook/opt-1.3b``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "I reached over and slowly undid my seatbelt.",
    "Taste that fowl and those fish.",
    "I'm progressive and you fall right.",
    "The audience erupted into laughter and applause.",
    "She walked off the stage quietly, holding her notes.",
    "Language models predict the next word from context.",
    "We listened to stories while lying in the scanner for hours.",
    "Numbers like 42, 1999 and 3.14 appear in text too!",
    "What's the weather like in Boston today? It's sunny.",
]


def train_tokenizer(folder: Path | str, *, vocab_size: int = 400, opt_style: bool = False) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``CORPUS`` and save it as a fast HF tokenizer in ``folder``.

    ``opt_style``: special tokens ``<s> <pad> </s> <unk>`` (ids 0-3, BOS = ``</s>`` id 2, as OPT);
    else GPT-2 style: ``<|endoftext|>`` (id 0) as BOS/EOS, no pad token.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"] if opt_style else ["<|endoftext|>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=specials)
    if opt_style:
        tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    else:
        tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.save_pretrained(str(folder))
    return tok


def tiny_gpt2(folder: Path | str, *, n_layer: int = 4, n_embd: int = 32, n_head: int = 4, seed: int = 0) -> Path:
    """Save a random GPT-2 (``GPT2Model``) with a trained tokenizer in ``folder``; return the folder."""
    import torch
    from transformers import GPT2Config, GPT2Model

    folder = Path(folder)
    tok = train_tokenizer(folder)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    GPT2Model(config).eval().save_pretrained(str(folder))
    return folder


def tiny_opt(folder: Path | str, *, n_layer: int = 4, hidden: int = 32, n_head: int = 4, max_positions: int = 1024, seed: int = 0) -> Path:
    """Save a random OPT (``OPTModel``) with an OPT-style trained tokenizer in ``folder``; return it."""
    import torch
    from transformers import OPTConfig, OPTModel

    folder = Path(folder)
    tok = train_tokenizer(folder, opt_style=True)
    torch.manual_seed(seed)
    config = OPTConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=n_layer, num_attention_heads=n_head,
                       ffn_dim=4 * hidden, max_position_embeddings=max_positions, word_embed_proj_dim=hidden,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    OPTModel(config).eval().save_pretrained(str(folder))
    return folder


def fake_hub_cache(hub: Path | str, repo_id: str, model_dir: Path | str, *, commit: str = "0" * 40) -> Path:
    """Lay ``model_dir`` out as the Hugging Face cache entry of ``repo_id`` under ``hub`` (= ``HF_HUB_CACHE``),
    as a past download of branch ``main`` at ``commit`` leaves it; return the snapshot folder."""
    import shutil

    entry = Path(hub) / f"models--{repo_id.replace('/', '--')}"
    snapshot = entry / "snapshots" / commit
    shutil.copytree(model_dir, snapshot)
    (entry / "refs").mkdir(parents=True, exist_ok=True)
    (entry / "refs" / "main").write_text(commit)
    return snapshot


#: a backbone folder's own module: importing it writes ``marker`` (proof that berg ran the folder's code)
_CUSTOM_MODULE = """
from pathlib import Path

Path({marker!r}).write_text("the folder's code ran")

from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model


class EvilConfig(GPT2Config):
    model_type = {model_type!r}


class EvilModel(GPT2Model):
    config_class = EvilConfig


class EvilLMHeadModel(GPT2LMHeadModel):
    config_class = EvilConfig
"""


def custom_code_backbone(root: Path | str, source: Path | str, *, model_type: str = "evil_gpt", in_tokenizer: bool = False) -> tuple[Path, Path]:
    """A copy of the saved GPT-2 ``source`` whose ``config.json`` (or, ``in_tokenizer``, ``tokenizer_config.json``)
    has an ``auto_map`` naming its own ``evil.py``, which writes a marker file when imported.

    Returns (folder, marker); the marker must never exist after berg touched the folder.
    """
    import json
    import shutil

    root = Path(root)
    folder, marker = root / f"custom-{model_type}-{in_tokenizer}", root / f"marker-{model_type}-{in_tokenizer}"
    shutil.copytree(source, folder)
    name = "tokenizer_config.json" if in_tokenizer else "config.json"
    cfg = json.loads((folder / name).read_text())
    if in_tokenizer:
        cfg["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    else:
        cfg["model_type"] = model_type
        cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel", "AutoModelForCausalLM": "evil.EvilLMHeadModel"}
    (folder / name).write_text(json.dumps(cfg))
    (folder / "evil.py").write_text(_CUSTOM_MODULE.format(marker=str(marker), model_type=model_type))
    return folder, marker


@contextmanager
def serve_hub(repo_id: str, folder: Path | str, *, commit: str = "c" * 40, branch: str = "main",
              extra: dict[str, bytes] | None = None) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A loopback stand-in for the Hugging Face hub serving one model repo: the files of ``folder`` (+ ``extra``).

    Answers what ``huggingface_hub``/``transformers`` ask (``/api/models/{repo}/revision/{rev}``,
    ``/api/models/{repo}/tree/{rev}``, ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``) for revision ``branch`` or
    ``commit``; anything else is a 404 with the hub's ``X-Error-Code``. Yields (endpoint URL for ``HF_ENDPOINT``,
    the request log as (method, path) pairs).
    """
    import hashlib
    import json
    import threading
    import urllib.parse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
    files.update(extra or {})
    log: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, obj: object) -> None:
            self._reply(200, json.dumps(obj).encode(), {"Content-Type": "application/json", "X-Repo-Commit": commit})

        def _missing(self, code: str) -> None:
            self._reply(404, json.dumps({"error": code}).encode(), {"X-Error-Code": code, "Content-Type": "application/json"})

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            log.append((self.command, path))
            api, resolve = f"/api/models/{repo_id}/", f"/{repo_id}/resolve/"
            if path.startswith(api):
                kind, _, rest = path[len(api):].partition("/")
                rev = rest.split("/", 1)[0]
                if rev not in (branch, commit):
                    return self._missing("RevisionNotFound")
                if kind == "revision":
                    return self._json({"id": repo_id, "sha": commit, "siblings": [{"rfilename": f} for f in sorted(files)]})
                if kind == "tree" and rest == rev:
                    return self._json([{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                       for f, b in sorted(files.items())])
                return self._missing("EntryNotFound")
            if path.startswith(resolve):
                rev, _, name = path[len(resolve):].partition("/")
                if rev not in (branch, commit):
                    return self._missing("RevisionNotFound")
                if name not in files:
                    return self._missing("EntryNotFound")
                body = files[name]
                return self._reply(200, body, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(body).hexdigest()}"',
                                               "Content-Type": "application/octet-stream"})
            return self._missing("RepoNotFound")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()


#: Qwen2's pre-tokenizer split (digits one by one, runs of newlines kept together: ``"\n\n"`` is one piece)
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_qwen2_tokenizer(folder: Path | str, *, vocab_size: int = 500) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with Qwen2's pre-tokenizer (``QWEN2_SPLIT`` then byte-level, no prefix space,
    no special tokens added around the text), trained on ``CORPUS`` (plus newline runs) and saved in ``folder``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    words = " ".join(CORPUS).replace(".", "").split()
    runs = ["".join(w + "\n" * (1 + i % 3) for i, w in enumerate(words[k:k + 6])) for k in range(0, len(words), 6)]
    corpus = [*CORPUS, *runs]  # newline runs after words, so "\n\n" becomes one token (as in Qwen's vocabulary)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(str(folder))
    return tok


def tiny_qwen2(folder: Path | str, *, hidden: int = 32, n_layer: int = 4, n_head: int = 4, n_kv_head: int = 2,
               max_positions: int = 512, seed: int = 0) -> Path:
    """Save a random Qwen2 (``Qwen2Model``: ``hidden``-d, ``n_layer`` layers, ``n_head`` query and ``n_kv_head``
    key/value heads, final RMSNorm) with a Qwen-like trained tokenizer (``train_qwen2_tokenizer``) in ``folder``."""
    import torch
    from transformers import Qwen2Config, Qwen2Model

    folder = Path(folder)
    tok = train_qwen2_tokenizer(folder)
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=n_layer,
                         num_attention_heads=n_head, num_key_value_heads=n_kv_head, max_position_embeddings=max_positions,
                         eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    model = Qwen2Model(config).eval()
    with torch.no_grad():  # a non-trivial final norm, so a test can tell normed from raw hidden states
        model.norm.weight.copy_(torch.linspace(0.5, 1.5, hidden))
    model.save_pretrained(str(folder))
    return folder
