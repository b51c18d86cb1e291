"""A tiny deterministic Denoiser for sampler tests: logits are a fixed function of the input."""

import torch
from torch import nn


class TableDenoiser(nn.Module):
    """logits[b, i] = W @ inputs_embeds[b, i] + pos_bias[i] (no mixing across positions)."""

    def __init__(self, vocab_size=7, d=8, n_positions=12, seed=0, mask_id=None):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab_size = vocab_size
        self.hidden_size = d
        self.mask_id = vocab_size - 1 if mask_id is None else mask_id
        self.wte = nn.Parameter(torch.randn(vocab_size, d, generator=g))
        self.W = nn.Parameter(torch.randn(vocab_size, d, generator=g))
        self.pos_bias = nn.Parameter(torch.randn(n_positions, vocab_size, generator=g))

    def embed(self, ids):
        return self.wte[ids]

    def logits(self, inputs_embeds, attention_mask=None):
        n = inputs_embeds.shape[1]
        return inputs_embeds @ self.W.T + self.pos_bias[:n]
