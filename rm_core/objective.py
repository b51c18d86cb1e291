"""Training objectives: RM's oracle labels and loss (Eq. 3-6) and the vanilla MDM loss.

Oracle action per editable position (Eq. 3 / Eq. 5):
    tau(z_i, x*_i) = M     if z_i ∈ V \\ {x*_i}   (wrong visible token: re-mask)
                   = x*_i  if z_i == M            (reveal)
                   = x*_i  if z_i == x*_i         (keep)
Loss (Eq. 4 / Eq. 6): cross-entropy over V ∪ {M}, probabilities clipped at ε (1e-8, so
−log p <= ~18.4), optional per-position weights, no label-dependent weights. It splits
into reveal / mask / keep parts by the kind of z_i.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .history import HistoryConfig, closed_form, model_input
from .trajectory import Instances

IGNORE = -100


def oracle_labels(z: torch.Tensor, target: torch.Tensor, editable: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Eq. 5 on a batch; IGNORE outside the editable positions."""
    wrong = (z != mask_id) & (z != target)
    labels = torch.where(wrong, torch.full_like(target, mask_id), target)
    return torch.where(editable.bool(), labels, torch.full_like(target, IGNORE))


@dataclass
class RMLoss:
    """total = reveal + mask + keep (each part is its share of the weighted mean)."""

    total: torch.Tensor
    reveal: torch.Tensor
    mask: torch.Tensor
    keep: torch.Tensor
    counts: dict

    def as_floats(self) -> dict:
        out = {k: float(getattr(self, k).detach()) for k in ("total", "reveal", "mask", "keep")}
        out.update({f"n_{k}": v for k, v in self.counts.items()})
        return out


def rm_loss(
    logits: torch.Tensor,
    z: torch.Tensor,
    target: torch.Tensor,
    editable: torch.Tensor,
    mask_id: int,
    weights: Optional[torch.Tensor] = None,
    eps: float = 1e-8,
) -> RMLoss:
    """Eq. 4: weighted mean over editable positions of −log max(p(tau), ε)."""
    labels = oracle_labels(z, target, editable, mask_id)
    valid = labels != IGNORE
    probs = torch.softmax(logits.float(), dim=-1)
    p = probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    nll = -torch.log(p.clamp(min=eps))
    w = valid.float() if weights is None else weights.float() * valid.float()
    denom = w.sum().clamp(min=1e-12)
    is_mask = z == mask_id
    is_wrong = ~is_mask & (z != target)
    is_keep = ~is_mask & (z == target)

    def part(sel):
        return (nll * w * sel.float()).sum() / denom

    counts = {k: int((sel & valid).sum()) for k, sel in (("reveal", is_mask), ("mask", is_wrong), ("keep", is_keep))}
    return RMLoss(part(valid), part(is_mask), part(is_wrong), part(is_keep), counts)


def rm_model_input(model, inst: Instances, editable: torch.Tensor, history: HistoryConfig, T: int) -> torch.Tensor:
    """Appendix C step 9: a^(t) from the trajectory's closed form (Eq. 2), normalised."""
    e = model.embed(inst.z)
    if not history.enabled:
        return e
    seg_e = model.embed(inst.seg_tokens)  # (B, N, 3, d)
    a = closed_form(seg_e, inst.seg_starts, inst.t, history, T)
    return model_input(a, e, editable.bool())


def position_weights(edit_set: torch.Tensor, editable: torch.Tensor, other_weight: float) -> torch.Tensor:
    """Sudoku's edit-vs-non-edit weight: 1 on corrupted positions, ``other_weight`` elsewhere."""
    w = torch.where(edit_set, torch.ones_like(edit_set, dtype=torch.float), torch.full_like(edit_set, other_weight, dtype=torch.float))
    return w * editable.float()


def mdm_corrupt(target: torch.Tensor, editable: torch.Tensor, mask_id: int, generator: torch.Generator, eps: float = 1e-3):
    """LLaDA's forward process: t ~ U(0,1), p = (1-ε)t + ε, mask each editable token w.p. p."""
    B = target.shape[0]
    t = torch.rand(B, generator=generator, device=target.device)
    p = (1 - eps) * t + eps
    masked = editable.bool() & (torch.rand(target.shape, generator=generator, device=target.device) < p[:, None])
    x = torch.where(masked, torch.full_like(target, mask_id), target)
    return x, masked, p


def mdm_loss(logits: torch.Tensor, target: torch.Tensor, masked: torch.Tensor, p: torch.Tensor, editable: torch.Tensor) -> torch.Tensor:
    """Vanilla MDM objective: (1/B) Σ_b Σ_{masked i} CE_i / p_b / |editable_b| (LLaDA's SFT loss)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    ce = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    per_row = (ce * masked.float()).sum(-1) / p / editable.float().sum(-1).clamp(min=1)
    return per_row.mean()
