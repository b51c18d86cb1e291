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

import math
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


MDM_FORMS = ("llada", "dimoo")


def mdm_corrupt(target: torch.Tensor, editable: torch.Tensor, mask_id: int, generator: torch.Generator,
                eps: float = 1e-3, form: str = "llada"):
    """The vanilla MDM forward process over the ``editable`` positions -> (x_t, masked, p).

    llada (LLaDA's SFT): t ~ U(0, 1), p = (1-ε)t + ε, each editable token masked w.p. p.
    dimoo (Lumina-DiMOO's fine-tuning): r ~ U(0, 1), n = max(1, floor(L cos(πr/2))) of the L
    editable tokens masked uniformly; p = 1 (no 1/t weight)."""
    if form not in MDM_FORMS:
        raise ValueError(f"MDM objective form must be one of {MDM_FORMS}, got {form!r}")
    B, dev = target.shape[0], target.device
    u = torch.rand(B, generator=generator, device=dev)
    score = torch.rand(target.shape, generator=generator, device=dev)
    editable = editable.bool().expand_as(target)
    if form == "llada":
        p = (1 - eps) * u + eps
        masked = editable & (score < p[:, None])
    else:
        n = torch.clamp((editable.sum(-1).double() * torch.cos(math.pi * u.double() / 2)).long(), min=1)
        rank = torch.where(editable, score, torch.full_like(score, 2.0)).argsort(-1).argsort(-1)
        masked = editable & (rank < n[:, None])
        p = torch.ones(B, device=dev)
    x = torch.where(masked, torch.full_like(target, mask_id), target)
    return x, masked, p


def mdm_loss(logits: torch.Tensor, target: torch.Tensor, masked: torch.Tensor, p: torch.Tensor,
             editable: torch.Tensor, form: str = "llada") -> torch.Tensor:
    """The vanilla MDM objective for the baselines.

    llada: (1/B) Σ_b Σ_{masked i} CE_i / p_b / |editable_b| (LLaDA's SFT loss);
    dimoo: Σ_{masked} CE / #masked over the batch (Lumina-DiMOO's plain mean; ``p`` unused)."""
    if form not in MDM_FORMS:
        raise ValueError(f"MDM objective form must be one of {MDM_FORMS}, got {form!r}")
    logp = torch.log_softmax(logits.float(), dim=-1)
    ce = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * masked.float()
    if form == "dimoo":
        return ce.sum() / masked.sum().clamp(min=1)
    per_row = ce.sum(-1) / p / editable.expand_as(target).float().sum(-1).clamp(min=1)
    return per_row.mean()
