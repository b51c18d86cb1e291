"""Loading backbones and their tokenizers from local folders, and model references.

Every stage loads a model through :func:`load_backbone` (``kind``: ``small`` for the mini
SmallTransformer, ``llada`` for LLaDA-8B-Instruct, ``dimoo`` for Lumina-DiMOO), offline.

A *model reference* is a ``model.json`` file in a model folder: ``{"kind": "small"|"llada",
"path": <weights dir>, "fingerprint": <str>}`` (a relative path is relative to the json's
folder). The text track's paper base is the published checkpoint, referenced where it lies.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..io import write_json

KINDS = ("small", "llada", "dimoo")


def torch_dtype(name: str | None):
    """``float32`` | ``bfloat16`` | ``float16`` | None -> the torch dtype (None: the loader's own)."""
    return {None: None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_backbone(kind: str, path: str | Path, dtype: str | None = None, device: str | torch.device = "cpu"):
    """The backbone saved in folder ``path``. ``dtype`` applies to the published checkpoints
    (LLaDA, DiMOO); the mini model is always float32."""
    if kind == "small":
        from .small_transformer import SmallTransformer

        return SmallTransformer.from_pretrained(path).to(device)
    if kind == "llada":
        from .llada import LLaDABackbone

        return LLaDABackbone.from_pretrained(path, dtype=torch_dtype(dtype), device=device)
    if kind == "dimoo":
        from .dimoo import DiMOOBackbone

        return DiMOOBackbone.from_pretrained(path, dtype=torch_dtype(dtype), device=device)
    raise ValueError(f"{path}: unknown backbone kind {kind!r} (one of {', '.join(KINDS)})")


def load_tokenizer(kind: str, path: str | Path):
    """The text tokenizer saved beside a text backbone: the mini character tokenizer or LLaDA's."""
    if kind == "small":
        from ..tasks.text.tokenizer import CharTokenizer

        return CharTokenizer.load(path)
    if kind == "llada":
        from .llada_tokenizer import LLaDATokenizer

        return LLaDATokenizer.from_pretrained(path)
    raise ValueError(f"{path}: no text tokenizer for backbone kind {kind!r}")


def save_tokenizer(tok, out_dir: str | Path) -> None:
    """The tokenizer beside the weights (the trainer already wrote the weights)."""
    if hasattr(tok, "save_pretrained"):
        tok.save_pretrained(Path(out_dir))
    else:
        tok.save(Path(out_dir))


def backbone_kind(model) -> str:
    from .small_transformer import SmallTransformer

    return "small" if isinstance(model, SmallTransformer) else "llada"


# ------------------------------------------------------------------------------ model references


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
    """A ``model.json`` with ``dir``, the weights folder, resolved."""
    ref_path = Path(ref_path)
    ref = json.loads(ref_path.read_text())
    p = Path(ref["path"])
    ref["dir"] = str(p if p.is_absolute() else (ref_path.parent / p))
    return ref


def load_reference(ref_path: str | Path, dtype: str | None = None, device: str | torch.device = "cpu"):
    """(backbone, tokenizer) of a text model reference."""
    ref = read_model_ref(ref_path)
    return load_backbone(ref["kind"], ref["dir"], dtype, device), load_tokenizer(ref["kind"], ref["dir"])
