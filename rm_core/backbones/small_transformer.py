"""A small bidirectional Transformer mask diffusion model (the Table 2 backbone).

Paper, Table 2: "4-layer Transformer MDM, 0.81M parameters". With d_model=128, 4 layers,
4 heads, MLP ratio 4 and the 9x9 Sudoku vocabulary (9 digits + MASK = 10) over 81 positions
this module has 806,282 parameters. The same class serves the mini text and image tracks
with another vocabulary and length.

Scales (ours). Two constraints, both needed for the 9x9 Sudoku to learn at all:
- Position vs input (shared/notes/calibration.md, trap 2): History Reference feeds RMSNorm(a)
  brought to the RMS of the current token embedding (rm_core.history.model_input), so the
  position table must be at the token table's scale, else the model cannot tell cells apart.
  The position table's std is ``pos_scale`` times the token table's.
- Residual stream vs blocks: the tables are initialised with std ``embed_std`` = 0.02, the
  same as the linears (GPT-2's scheme), so that what a block writes into the residual stream
  is of the stream's own size. With std-1 tables the stream was ~70x larger than a block's
  output at init (residual projections std 0.02/sqrt(2L)); the blocks then barely change the
  stream for hundreds of steps, and a 9x9 RM run learned nothing in 2,400 steps (4x4 boards,
  which need less composition across layers, still trained).
No dropout: training is exactly reproducible for a seed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from rm_core.io import load_tensors, save_tensors, write_json


@dataclass
class SmallTransformerConfig:
    vocab_size: int
    n_positions: int
    mask_id: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    pos_scale: float = 1.0  # position-table std relative to the token table's
    embed_std: float = 0.02  # token-table std at init (the linears' std: see the module docstring)

    def __post_init__(self):
        if not 0 <= self.mask_id < self.vocab_size:
            raise ValueError(f"mask_id {self.mask_id} outside vocab of size {self.vocab_size}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by n_heads {self.n_heads}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SmallTransformerConfig":
        return cls(**d)


class SelfAttention(nn.Module):
    """Multi-head self-attention without a causal mask."""

    def __init__(self, cfg: SmallTransformerConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=False)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class MLP(nn.Module):
    def __init__(self, cfg: SmallTransformerConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, cfg: SmallTransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), key_mask)
        return x + self.mlp(self.ln_2(x))


class SmallTransformer(nn.Module):
    """Denoiser (rm_core.backbones.base): ``embed`` ids -> e, ``logits`` embeddings -> (B, N, V)."""

    def __init__(self, config: SmallTransformerConfig):
        super().__init__()
        self.config = config
        self.mask_id = config.mask_id
        self.vocab_size = config.vocab_size
        self.hidden_size = config.d_model
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Parameter(torch.empty(config.n_positions, config.d_model))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Token table std embed_std, position table std pos_scale * embed_std, linears std 0.02
        (residual projections scaled by 1/sqrt(2 * n_layers), as in GPT-2), biases 0, norms identity."""
        nn.init.normal_(self.wte.weight, std=self.config.embed_std)
        nn.init.normal_(self.wpe, std=self.config.pos_scale * self.config.embed_std)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = 0.02 / math.sqrt(2 * self.config.n_layers) if name.endswith("proj") else 0.02
                nn.init.normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings e of Eq. 2 (no position), (B, N, d)."""
        return self.wte(ids)

    def logits(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One bidirectional pass; ``attention_mask`` (B, N) bool, keys where False are ignored."""
        n = inputs_embeds.shape[1]
        if n > self.config.n_positions:
            raise ValueError(f"sequence of {n} exceeds n_positions={self.config.n_positions}")
        x = inputs_embeds + self.wpe[:n]
        key_mask = None if attention_mask is None else attention_mask.to(torch.bool)
        for block in self.blocks:
            x = block(x, key_mask)
        return self.head(self.ln_f(x))

    def forward(self, ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits from ids, without history: logits(embed(ids))."""
        return self.logits(self.embed(ids), attention_mask)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """model.safetensors + config.json in ``directory``, each written atomically."""
        directory = Path(directory)
        save_tensors(self.state_dict(), directory / "model.safetensors")
        write_json(self.config.to_dict(), directory / "config.json")

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> "SmallTransformer":
        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.exists():
            raise FileNotFoundError(f"config not found: {config_path}")
        model = cls(SmallTransformerConfig.from_dict(json.loads(config_path.read_text())))
        model.load_state_dict(load_tensors(directory / "model.safetensors"))
        return model.to(map_location)
