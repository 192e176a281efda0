"""BERG's Text2fMRI pipeline written out independently (tests/text2fmri is on sys.path under pytest):
HF's ``mean(hidden_states[-4:])``, BERG's per-token loop over TR spans, BERG's head on x-transformers 2.3.0."""

from __future__ import annotations

import numpy as np

#: a 12-TR transcript: silent TRs, merged newlines, digits, punctuation
TRS = ["", "So the", "", "quokka juggled 1999", "", "", "fox jumps", "over the lazy dog.", "", "We listened",
       "to stories while", ""]


def berg_tokens_by_tr(offsets, trs):
    """BERG's ``feature_extractor`` loop: spans [start, start + len + 1); skip tokens ending at <= 0; each token to
    the FIRST span it overlaps (tok_start < span_end and tok_end > span_start). -1: none."""
    spans, pos = [], 0
    for t in trs:
        spans.append((pos, pos + len(t) + 1))
        pos += len(t) + 1
    out = []
    for a, b in offsets:
        owner = -1
        if b > 0:
            for i, (s, e) in enumerate(spans):
                if a < e and b > s:
                    owner = i
                    break
        out.append(owner)
    return np.array(out)


def reference_tr_features(model_dir, trs):
    """(n_TR, d) float64: the full Qwen2Model's mean(hidden_states[-4:]) per token, averaged per TR by BERG's loop."""
    import torch
    from transformers import AutoTokenizer, Qwen2Model

    text = "".join(t + "\n" for t in trs)
    enc = AutoTokenizer.from_pretrained(str(model_dir))(text, add_special_tokens=True, return_offsets_mapping=True)
    model = Qwen2Model.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        hs = model(torch.tensor([enc["input_ids"]]), output_hidden_states=True).hidden_states
    h = torch.stack(hs[-4:]).double().mean(0)[0].numpy()
    owners = berg_tokens_by_tr([tuple(o) for o in enc["offset_mapping"]], trs)
    out = np.zeros((len(trs), h.shape[1]))
    for i in range(len(trs)):
        rows = [h[t] for t in range(len(h)) if owners[t] == i]
        if rows:
            out[i] = np.mean(rows, axis=0)
    return out


def bergs_model(config):
    """BERG's ``Text2fMRIModel`` (text2fmri_utils/model.py) rebuilt with its exact x-transformers arguments."""
    import torch
    from x_transformers import Encoder

    class Text2fMRIModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            dim, heads = config["transformer_dim"], config["num_transformer_heads"]
            self.subj_emb = torch.nn.Embedding(config["num_subjects"], config["subject_embedding_dim"])
            self.inp = torch.nn.Linear(config["extractor_LLM_feature_size"] + config["subject_embedding_dim"], dim)
            self.encoder = Encoder(dim=dim, depth=config["num_transformer_layers"], heads=heads, rotary_pos_emb=True,
                                   rotary_emb_dim=dim // heads, layer_dropout=0.1, attn_dropout=0.1, ff_dropout=0.1,
                                   attn_dim_head=dim // heads, attn_flash=False, use_scalenorm=True)
            self.out = torch.nn.Linear(dim, config["num_rois"], bias=False)
            self.out_bias = torch.nn.Embedding(config["num_subjects"], config["num_rois"])

        def forward(self, x, subject_ids, roi_indices=None):  # BERG's forward, written out
            b, t, _ = x.shape
            s = self.subj_emb(subject_ids).unsqueeze(1).expand(b, t, -1)
            h = self.encoder(self.inp(torch.cat([x, s], dim=-1)))
            idx = torch.as_tensor(roi_indices)
            return torch.nn.functional.linear(h, self.out.weight[idx]) + self.out_bias.weight[subject_ids][:, idx].unsqueeze(1)

    return Text2fMRIModel().eval()


def reference_encode(model_dir, head_dir, trs, subject_row, rois=None):
    """BERG's whole pipeline (float32 LM): (n_TR, n_rois) float64."""
    import torch

    from berg_text2fmri.weights import read_config

    config = read_config(head_dir)
    model = bergs_model(config)
    model.load_state_dict(torch.load(head_dir / "model.pt", weights_only=True), strict=True)
    feats = torch.as_tensor(reference_tr_features(model_dir, trs), dtype=torch.float32)
    rois = np.arange(config["num_rois"]) if rois is None else rois
    with torch.no_grad():
        return model(feats[None], torch.tensor([subject_row]), rois)[0].double().numpy()


def raw_labels():
    """The 1000 names of the shipped Schaefer table, read straight from its lines (label order)."""
    from berg_text2fmri import labels

    lines = labels.TABLE_PATH.read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[1] for line in lines if not line.startswith("#")]
