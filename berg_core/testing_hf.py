"""Tiny random Hugging Face backbones for offline tests (no hub access).

``tiny_gpt2(folder)`` / ``tiny_opt(folder)`` save a randomly initialised model of the real
architecture together with a byte-level BPE tokenizer trained on the spot, so encoders can be
loaded with ``backbone=str(folder)`` exactly as they load ``gpt2-xl`` or ``facebook/opt-1.3b``.
"""

from __future__ import annotations

from pathlib import Path

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


def train_tokenizer(folder: Path | str, *, vocab_size: int = 400, opt_style: bool = False):
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
