"""The Reflective Masking inference rule (paper Eq. 1) and the RM sampling loop.

Per editable position i, all positions in parallel:
    x_i != M and p(M)_i >  p(x_i)_i  ->  M                       (re-mask)
    x_i != M and p(M)_i <= p(x_i)_i  ->  x_i                     (keep; ties keep)
    x_i == M                         ->  argmax_{v != M} p(v)_i  (reveal)
Non-editable positions never change. Every MASK is revealed at the next step: there is no
"k tokens per step" schedule. The model reads the History Reference input (Eq. 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .history import HistoryBuffer, HistoryConfig, model_input


def reveal_ids(logits: torch.Tensor, mask_id: int, forbid_ids: Optional[Sequence[int]] = None) -> torch.Tensor:
    """argmax over v ∉ {M} ∪ forbid_ids (the reveal branch of Eq. 1)."""
    logits = logits.clone()
    logits[..., mask_id] = float("-inf")
    if forbid_ids:
        logits[..., list(forbid_ids)] = float("-inf")
    return logits.argmax(dim=-1)


def decision_rule(
    logits: torch.Tensor,
    x: torch.Tensor,
    editable: torch.Tensor,
    mask_id: int,
    forbid_ids: Optional[Sequence[int]] = None,
) -> torch.Tensor:
    """One step of Eq. 1 on a batch: logits (B, N, V), x (B, N) -> x^(t+1) (B, N)."""
    probs = torch.softmax(logits.float(), dim=-1)
    p_mask = probs[..., mask_id]
    p_token = probs.gather(-1, x.unsqueeze(-1)).squeeze(-1)
    is_mask = x == mask_id
    remask = ~is_mask & (p_mask > p_token)
    nxt = torch.where(is_mask, reveal_ids(logits, mask_id, forbid_ids), x)
    nxt = torch.where(remask, torch.full_like(x, mask_id), nxt)
    return torch.where(editable, nxt, x)


@dataclass
class RMResult:
    x: torch.Tensor  # (B, N) final state
    trajectory: Optional[torch.Tensor]  # (B, steps_run + 1, N) states x^(0..), or None
    turns: torch.Tensor  # (B,) the last turn (1-based) that changed the row; 0 if none did


@torch.no_grad()
def rm_sample(
    model,
    x0: torch.Tensor,
    editable: torch.Tensor,
    steps: int,
    history: Optional[HistoryConfig] = None,
    forbid_ids: Optional[Sequence[int]] = None,
    early_stop: bool = False,
    return_trajectory: bool = False,
    attention_mask: Optional[torch.Tensor] = None,
) -> RMResult:
    """Run Eq. 1 for ``steps`` turns from x0, with History Reference as configured.

    ``early_stop`` (ours, off by default) stops once no row changes; with HR the input
    keeps changing even at a fixed point of the tokens, so the paper's T turns are the default.
    """
    history = history or HistoryConfig(kind="none")
    buf = HistoryBuffer(history)
    x = x0.clone()
    editable = editable.bool()
    states = [x.cpu()] if return_trajectory else None
    turns = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for t in range(steps):
        e = model.embed(x)
        a = buf.update(e)
        logits = model.logits(model_input(a, e, editable), attention_mask=attention_mask)
        nxt = decision_rule(logits, x, editable, model.mask_id, forbid_ids)
        changed = (nxt != x).any(dim=-1)
        turns = torch.where(changed, torch.full_like(turns, t + 1), turns)
        x = nxt
        if states is not None:
            states.append(x.cpu())
        if early_stop and not changed.any():
            break
    traj = torch.stack(states, dim=1) if states is not None else None
    return RMResult(x=x, trajectory=traj, turns=turns)
