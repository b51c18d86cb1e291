"""LLaDA: a bidirectional Llama-style mask diffusion LM, written from the published format.

Layout (shared/notes/llada-format.md): pre-norm blocks with RMSNorm (fp32), multi-head
attention without a causal mask, half-split RoPE (fp32), SwiGLU MLP, untied output head.
The module tree reproduces the checkpoint names, ``model.transformer.{wte, blocks.N.*, ln_f,
ff_out}.weight``, so a sharded checkpoint (``model.safetensors.index.json`` + shards) or a
single ``model.safetensors`` loads by name with safetensors only: no remote code, no network.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from torch.utils.checkpoint import checkpoint

from rm_core.io import save_tensors, write_json

CONFIG_NAME = "config.json"
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

# config.json switches of the published family; this implementation supports one value each.
SUPPORTED_FLAGS = {
    "rope": True,
    "alibi": False,
    "block_type": "llama",
    "block_group_size": 1,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "bias_for_layer_norm": False,
    "activation_type": "silu",
    "include_bias": False,
    "include_qkv_bias": False,
    "attention_layer_norm": False,
    "scale_logits": False,
    "input_emb_norm": False,
}
ZERO_DROPOUTS = ("attention_dropout", "embedding_dropout", "residual_dropout")


class CheckpointMismatchError(RuntimeError):
    """The tensors in a checkpoint do not match the module built from its config.json."""


@dataclass
class LLaDAConfig:
    """The config.json keys the forward pass needs; every other key is kept in ``raw``."""

    d_model: int
    n_layers: int
    n_heads: int
    vocab_size: int
    n_kv_heads: Optional[int] = None
    mlp_hidden_size: Optional[int] = None
    mlp_ratio: int = 4
    embedding_size: Optional[int] = None
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    max_sequence_length: int = 4096
    weight_tying: bool = False
    init_std: float = 0.02
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    pad_token_id: int = 126081
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.n_kv_heads is None:
            self.n_kv_heads = 1 if self.raw.get("multi_query_attention") else self.n_heads
        if self.mlp_hidden_size is None:
            self.mlp_hidden_size = self.mlp_ratio * self.d_model
        if self.embedding_size is None:
            self.embedding_size = self.vocab_size
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model {self.d_model} must split into {self.n_heads} heads of even size")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} not divisible by n_kv_heads {self.n_kv_heads}")
        if self.embedding_size < self.vocab_size:
            raise ValueError(f"embedding_size {self.embedding_size} < vocab_size {self.vocab_size}")
        if not 0 <= self.mask_token_id < self.embedding_size:
            raise ValueError(f"mask_token_id {self.mask_token_id} outside {self.embedding_size} logits")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "LLaDAConfig":
        """Build from a config.json dict; unsupported architecture switches raise ValueError."""
        bad = {k: d[k] for k, v in SUPPORTED_FLAGS.items() if k in d and d[k] != v}
        bad.update({k: d[k] for k in ZERO_DROPOUTS if d.get(k)})
        if d.get("clip_qkv") is not None:
            bad["clip_qkv"] = d["clip_qkv"]
        if bad:
            raise ValueError(
                f"{source}: unsupported LLaDA settings {bad}; supported: {SUPPORTED_FLAGS}, no dropout"
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"raw"}
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if d.get(k) is None]
        if missing:
            raise ValueError(f"{source}: missing required key(s) {missing}")
        return cls(**{k: d[k] for k in names if d.get(k) is not None}, raw=dict(d))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "LLaDAConfig":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config not found: {path}")
        return cls.from_dict(json.loads(path.read_text()), source=str(path))

    def to_dict(self) -> dict:
        """``raw`` updated with the typed fields, so a saved config keeps every published key."""
        d = dict(self.raw)
        d.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "raw"})
        return d


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) in fp32, cast back to the input dtype, times the weight."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return h.to(x.dtype) * self.weight


def rope_tables(n: int, head_dim: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 cos/sin of shape (n, head_dim) for positions 0..n-1; angle_j = pos * theta^(-2j/hd),
    repeated over both halves (dims j and j + hd/2 share a frequency)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split rotary embedding of x (..., n, head_dim), computed in fp32."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class LLaDABlock(nn.Module):
    """x + attn(RMSNorm(x)), then x + ff_out(silu(ff_proj(h)) * up_proj(h)), h = RMSNorm(x)."""

    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        d, hd = cfg.d_model, cfg.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, hd
        self.attn_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(d, cfg.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=False)
        self.attn_out = nn.Linear(cfg.n_heads * hd, d, bias=False)
        self.ff_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.ff_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=False)
        self.up_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=False)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, d, bias=False)

    def attention(self, h, cos, sin, key_mask):
        B, N, _ = h.shape
        q = self.q_proj(h).view(B, N, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, N, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, N, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.n_kv_heads != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
        bias = None
        if key_mask is not None:
            bias = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill(~key_mask, torch.finfo(q.dtype).min)[:, None, None, :]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=False)
        return self.attn_out(a.transpose(1, 2).reshape(B, N, self.n_heads * self.head_dim))

    def forward(self, x, cos, sin, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attention(self.attn_norm(x), cos, sin, key_mask)
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDATransformer(nn.Module):
    """The ``model.transformer`` subtree: wte, blocks, ln_f and (untied) ff_out."""

    def __init__(self, cfg: LLaDAConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.embedding_size, cfg.d_model)
        self.blocks = nn.ModuleList(LLaDABlock(cfg) for _ in range(cfg.n_layers))
        self.ln_f = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        if not cfg.weight_tying:
            self.ff_out = nn.Linear(cfg.d_model, cfg.embedding_size, bias=False)


class LLaDABackbone(nn.Module):
    """Denoiser (rm_core.backbones.base) over LLaDA weights; logits width = embedding_size."""

    config_class = LLaDAConfig

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.config = config
        self.mask_id = config.mask_token_id
        self.vocab_size = config.embedding_size
        self.hidden_size = config.d_model
        self.gradient_checkpointing = False
        self.model = nn.ModuleDict({"transformer": LLaDATransformer(config)})

    @property
    def transformer(self) -> LLaDATransformer:
        return self.model["transformer"]

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.wte.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.transformer.wte.weight.device

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings e (wte rows, no scaling), (B, N, d)."""
        return self.transformer.wte(ids)

    def logits(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One bidirectional pass, (B, N, V). ``attention_mask`` (B, N): keys where it is 0/False
        are ignored (padding); positions are absolute 0..N-1 regardless of the mask."""
        t = self.transformer
        x = inputs_embeds.to(self.dtype)
        cos, sin = rope_tables(x.shape[1], self.config.head_dim, self.config.rope_theta, x.device)
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = attention_mask.to(device=x.device, dtype=torch.bool)
        for block in t.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, cos, sin, key_mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, key_mask)
        x = t.ln_f(x)
        head = t.wte.weight if self.config.weight_tying else t.ff_out.weight
        return F.linear(x, head)

    def forward(self, ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits from ids, without history: logits(embed(ids))."""
        return self.logits(self.embed(ids), attention_mask)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each block in the backward pass (training mode only)."""
        self.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self.gradient_checkpointing = False

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def reset_parameters(self, seed: int = 0) -> None:
        """Random init for fresh models: normal(0, init_std) matrices, unit norm weights."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name.endswith("norm.weight") or name.endswith("ln_f.weight"):
                    p.fill_(1.0)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * self.config.init_std)

    @classmethod
    def from_config(cls, config: LLaDAConfig, seed: int = 0, dtype=torch.float32, device="cpu"):
        """A randomly initialised model (see ``reset_parameters``)."""
        model = cls(config)
        model.reset_parameters(seed)
        return model.to(device=device, dtype=dtype)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dtype=torch.bfloat16, device="cpu"):
        """Load config.json + safetensors weights from a local directory, offline.

        Every tensor is matched by name and shape against the module built from config.json;
        any missing, unexpected or misshapen tensor raises CheckpointMismatchError naming the
        files. Weights are cast to ``dtype`` and moved to ``device`` one tensor at a time.
        """
        path = Path(path)
        config = cls.config_class.from_file(path / CONFIG_NAME)
        with torch.device("meta"):
            model = cls(config)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        files, source = checkpoint_files(path)
        missing = sorted(set(expected) - set(files))
        unexpected = sorted(set(files) - set(expected))
        if missing or unexpected:
            raise CheckpointMismatchError(
                f"{source} does not match {path / CONFIG_NAME}:\n"
                f"  missing keys ({len(missing)}): {_preview(missing)}\n"
                f"  unexpected keys ({len(unexpected)}): {_preview(unexpected)}"
            )
        by_file = defaultdict(list)
        for name, file in files.items():
            by_file[file].append(name)
        state = {}
        for file, names in sorted(by_file.items()):
            with safe_open(str(file), framework="pt", device="cpu") as f:
                present = set(f.keys())
                for name in names:
                    if name not in present:
                        raise CheckpointMismatchError(f"{source} maps {name} to {file}, which lacks it")
                    t = f.get_tensor(name)
                    if tuple(t.shape) != expected[name]:
                        raise CheckpointMismatchError(
                            f"{file}: {name} has shape {tuple(t.shape)}, config expects {expected[name]}"
                        )
                    state[name] = t.to(device=device, dtype=dtype)
        model.load_state_dict(state, strict=True, assign=True)
        return model

    def save_pretrained(self, path: str | os.PathLike, max_shard_bytes: int = 5 * 2**30) -> None:
        """config.json + ``model-0000i-of-0000n.safetensors`` shards + the index, atomically
        per file, in the model's current dtype; stale shards of an earlier save are removed."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach() for k, v in self.state_dict().items()}
        shards, current, size = [], {}, 0
        for name, t in state.items():
            nbytes = t.numel() * t.element_size()
            if current and size + nbytes > max_shard_bytes:
                shards.append(current)
                current, size = {}, 0
            current[name] = t
            size += nbytes
        shards.append(current)
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_tensors(shard, path / fname, metadata={"format": "pt"})
            weight_map.update({k: fname for k in shard})
        config = self.config.to_dict()
        config["torch_dtype"] = str(self.dtype).removeprefix("torch.")
        write_json(config, path / CONFIG_NAME)
        total = sum(t.numel() * t.element_size() for t in state.values())
        write_json({"metadata": {"total_size": total}, "weight_map": weight_map}, path / INDEX_NAME)
        for old in path.glob("model-*-of-*.safetensors"):
            if old.name not in set(weight_map.values()):
                old.unlink()


def checkpoint_files(path: str | os.PathLike) -> tuple[dict[str, Path], str]:
    """Map every tensor name to its safetensors file: from the index if present, else from
    a single model.safetensors. Returns (mapping, the file it was read from)."""
    path = Path(path)
    index = path / INDEX_NAME
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = {name: path / fname for name, fname in weight_map.items()}
        absent = sorted({str(f) for f in files.values() if not f.exists()})
        if absent:
            raise FileNotFoundError(f"{index}: shard file(s) not found: {absent}")
        return files, str(index)
    single = path / SINGLE_NAME
    if single.exists():
        with safe_open(str(single), framework="pt", device="cpu") as f:
            return {name: single for name in f.keys()}, str(single)
    listing = sorted(os.listdir(path)) if path.is_dir() else "not a directory"
    raise FileNotFoundError(f"no {INDEX_NAME} or {SINGLE_NAME} in {path} (contents: {listing})")


def _preview(names: list[str], n: int = 20) -> str:
    return str(names[:n]) + (f" ... and {len(names) - n} more" if len(names) > n else "")
