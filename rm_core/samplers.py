"""The baselines' sampler: low-confidence remasking (LLaDA; MaskGIT with ``schedule="cosine"``).

Start with MASK on the positions to generate. At each step predict every MASK by argmax,
then commit only the k most confident predictions; the rest stay masked. Committed
tokens are never revisited — the behaviour Reflective Masking changes. With
``block_length`` the editable positions are decoded block by block, left to right
(LLaDA's semi-autoregressive blocks), each block getting ``steps // n_blocks`` steps.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from .rule import reveal_ids


def reveal_counts(n_masked: torch.Tensor, steps: int, schedule: str = "linear") -> torch.Tensor:
    """(B,) masked counts -> (B, steps) tokens to commit per step, summing to n_masked.

    linear: even split, remainder to the early steps (LLaDA's get_num_transfer_tokens);
    cosine: MaskGIT, the masked fraction after step s is cos(π/2 · (s+1)/steps).
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    n = n_masked.long()
    if schedule == "linear":
        base = n // steps
        rem = n % steps
        idx = torch.arange(steps, device=n.device)
        return base[:, None] + (idx[None, :] < rem[:, None]).long()
    if schedule == "cosine":
        frac = torch.tensor([math.cos(math.pi / 2 * (s + 1) / steps) for s in range(steps)], device=n.device)
        remaining = torch.floor(n[:, None].double() * frac[None, :].double()).long()
        remaining[:, -1] = 0
        prev = torch.cat([n[:, None], remaining[:, :-1]], dim=1)
        return prev - remaining
    raise ValueError(f"schedule must be 'linear' or 'cosine', got {schedule!r}")


def _blocks(editable: torch.Tensor, block_length: Optional[int]) -> tuple[torch.Tensor, int]:
    """Block index of each editable position (by its rank among the row's editable positions)."""
    rank = editable.long().cumsum(dim=-1) - 1
    if not block_length:
        return torch.zeros_like(rank), 1
    n_blocks = int(math.ceil(editable.sum(-1).max().item() / block_length)) if editable.any() else 1
    return rank.clamp(min=0) // block_length, max(n_blocks, 1)


@torch.no_grad()
def low_confidence_sample(
    model,
    x0: torch.Tensor,
    editable: torch.Tensor,
    steps: int,
    block_length: Optional[int] = None,
    forbid_ids: Optional[Sequence[int]] = None,
    attention_mask: Optional[torch.Tensor] = None,
    schedule: str = "linear",
    return_trajectory: bool = False,
):
    """Decode the MASKs of x0 inside ``editable``; returns x (B, N), or (x, trajectory)."""
    mask_id = model.mask_id
    x = x0.clone()
    editable = editable.bool()
    block, n_blocks = _blocks(editable, block_length)
    steps_per_block = max(1, steps // n_blocks)
    states = [x.cpu()] if return_trajectory else None
    for b in range(n_blocks):
        in_block = editable & (block == b)
        plan = reveal_counts((in_block & (x == mask_id)).sum(-1), steps_per_block, schedule)
        for s in range(steps_per_block):
            k = plan[:, s]
            if not k.any():
                continue
            logits = model.logits(model.embed(x), attention_mask=attention_mask)
            pred = reveal_ids(logits, mask_id, forbid_ids)
            conf = torch.softmax(logits.float(), dim=-1).gather(-1, pred.unsqueeze(-1)).squeeze(-1)
            candidate = in_block & (x == mask_id)
            conf = torch.where(candidate, conf, torch.full_like(conf, float("-inf")))
            order = conf.argsort(dim=-1, descending=True)
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(order.shape[1], device=x.device).expand_as(order))
            commit = candidate & (rank < k[:, None])
            x = torch.where(commit, pred, x)
            if states is not None:
                states.append(x.cpu())
    if states is not None:
        return x, torch.stack(states, dim=1)
    return x
