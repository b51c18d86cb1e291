"""The text track's model references and backbones, and the layout of training pairs.

A *model reference* is a ``model.json`` file in a model folder: ``{"kind": "small"|"llada",
"path": <weights dir>, "fingerprint": <str>}`` (a relative path is relative to the json's
folder). The paper's base is the published checkpoint, referenced where it lies."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...io import write_json



def file_digest(path: str | Path, full_limit: int = 2**30) -> str:
    """sha256 of a file's bytes, or of its name and size when larger than ``full_limit``."""
    path = Path(path)
    h = hashlib.sha256()
    size = path.stat().st_size
    if size > full_limit:
        h.update(f"{path.name}:{size}".encode())
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def dir_digest(path: str | Path) -> str:
    """Digest of a checkpoint folder: config, index, tokenizer and weight files."""
    path = Path(path)
    names = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors"))
    h = hashlib.sha256()
    for name in names:
        if name in ("model.json", "run.json", "trainer_state.json"):
            continue
        h.update(f"{name}={file_digest(path / name)};".encode())
    return h.hexdigest()[:16]


def write_model_ref(out: str | Path, kind: str, weights_dir: str | Path, extra: dict | None = None) -> dict:
    """Write ``model.json``; ``weights_dir`` is stored relative to it when inside its folder."""
    out = Path(out)
    weights_dir = Path(weights_dir)
    try:
        rel = str(weights_dir.resolve().relative_to(out.parent.resolve()))
    except ValueError:
        rel = str(weights_dir.resolve())
    ref = {"kind": kind, "path": rel, "fingerprint": dir_digest(weights_dir), **(extra or {})}
    write_json(ref, out)
    return ref


def read_model_ref(ref_path: str | Path) -> dict:
    ref_path = Path(ref_path)
    ref = json.loads(ref_path.read_text())
    p = Path(ref["path"])
    ref["dir"] = str(p if p.is_absolute() else (ref_path.parent / p))
    return ref


def torch_dtype(name: str | None):
    return {None: None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_backbone(ref_path: str | Path, backbone_cfg: dict, device: str | torch.device = "cpu"):
    """(model, tokenizer) of a model reference. LLaDA: offline, in ``backbone.dtype``."""
    ref = read_model_ref(ref_path)
    d = ref["dir"]
    if ref["kind"] == "small":
        from ...backbones.small_transformer import SmallTransformer
        from ...tasks.text.tokenizer import CharTokenizer

        return SmallTransformer.from_pretrained(d).to(device), CharTokenizer.load(d)
    if ref["kind"] == "llada":
        from ...backbones.llada import LLaDABackbone
        from ...backbones.llada_tokenizer import LLaDATokenizer

        dtype = torch_dtype(backbone_cfg["dtype"])
        return LLaDABackbone.from_pretrained(d, dtype=dtype, device=device), LLaDATokenizer.from_pretrained(d)
    raise ValueError(f"{ref_path}: unknown backbone kind {ref['kind']!r}")


def save_backbone(model, tok, out_dir: str | Path) -> None:
    """Weights + config + tokenizer in ``out_dir`` (the trainer already wrote the weights)."""
    out_dir = Path(out_dir)
    if hasattr(tok, "save_pretrained"):
        tok.save_pretrained(out_dir)
    else:
        tok.save(out_dir)


def backbone_kind(model) -> str:
    from ...backbones.small_transformer import SmallTransformer

    return "small" if isinstance(model, SmallTransformer) else "llada"


def prompt_formatter(tok, cfg: dict):
    """The prompt string the model reads: the chat template for LLaDA, the raw prompt otherwise."""
    if cfg["layout"].get("chat_template") and hasattr(tok, "apply_chat_template"):
        return lambda p: tok.apply_chat_template([{"role": "user", "content": p}])
    return lambda p: p


def forbid_ids(tok) -> list[int]:
    """Ids never revealed in the answer region: PAD and SEP when they are not EOS."""
    out = []
    for name in ("pad_id", "sep_id"):
        i = getattr(tok, name, None)
        if i is not None and i != tok.eos_id and i != tok.mask_id:
            out.append(int(i))
    return out


def response_fits(tok, responses, gen_length: int) -> np.ndarray:
    """Which responses fit the answer region (response ids <= gen_length)."""
    return np.array([len(tok.encode(r)) <= gen_length for r in responses])


class PairEncoder:
    """Training/probe layout of (prompt, response) pairs, identical to evaluation's
    (``tasks/text/layout.batch_layout``): [PAD]* prompt ([SEP]) | response + EOS fill."""

    def __init__(self, tok, cfg: dict, pairs: pd.DataFrame):
        from ...tasks.text.layout import batch_layout

        self._layout = batch_layout
        self.tok = tok
        self.gen_length = int(cfg["layout"]["gen_length"])
        self.prompt_len = cfg["layout"].get("prompt_len")
        fmt = prompt_formatter(tok, cfg)
        self.prompts = [fmt(p) for p in pairs["prompt"]]
        self.responses = list(pairs["response"])
        self.ids = list(pairs["id"])
        self._cache = None
        if self.prompt_len is not None:  # fixed layout: encode everything once
            self._cache = batch_layout(tok, self.prompts, self.gen_length, responses=self.responses,
                                       prompt_len=self.prompt_len, truncate=True)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx, device=None) -> dict:
        idx = [int(i) for i in idx]
        if self._cache is not None:
            out = {k: self._cache[k][idx] for k in ("ids", "editable", "attention_mask")}
        else:
            out = self._layout(self.tok, [self.prompts[i] for i in idx], self.gen_length,
                               responses=[self.responses[i] for i in idx], truncate=True)
        return {k: v.to(device) if device is not None else v for k, v in out.items() if k != "truncated"}
