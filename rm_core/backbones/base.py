"""The backbone protocol that every trainer and sampler in rm_core uses.

A backbone is an ``nn.Module`` with
- ``mask_id``: the id of MASK; p(MASK) is read from the same logits as every other token,
- ``vocab_size``: the width of the logits (MASK included),
- ``hidden_size``: the embedding width d,
- ``embed(ids) -> (B, N, d)``: the token embeddings e of Eq. 2 (the model's wte),
- ``logits(inputs_embeds, attention_mask=None) -> (B, N, V)``: one bidirectional forward.

History Reference (Eq. 2) is computed outside the backbone from ``embed`` and fed back
through ``logits(inputs_embeds=...)``, so no backbone needs an architectural change.
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import torch


@runtime_checkable
class Denoiser(Protocol):
    mask_id: int
    vocab_size: int
    hidden_size: int

    def embed(self, ids: torch.Tensor) -> torch.Tensor: ...

    def logits(
        self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor: ...
