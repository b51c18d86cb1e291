"""The baselines' sampler: low-confidence remasking (LLaDA; MaskGIT with ``schedule="cosine"``).

Start with MASK on the positions to generate. At each step predict every MASK (argmax, or
Gumbel-max sampling at ``temperature`` > 0), then commit only the k most confident
predictions; the rest stay masked. Committed tokens are never revisited — the behaviour
Reflective Masking changes. With ``block_length`` the editable positions are decoded block
by block, left to right (LLaDA's semi-autoregressive blocks), each block getting
``steps / n_blocks`` steps; as in LLaDA's ``generate``, the answer length must be a
multiple of ``block_length`` and ``steps`` a multiple of the number of blocks.

Upstream parity (README, "Where we match upstream"):
- ``confidence="allowed"``: the confidence is the softmax over the revealable ids only
  (Lumina-DiMOO ranks with the softmax over its 8,192 image-code logits);
  ``"vocab"``: over the whole vocabulary (LLaDA's ``generate``).
- ``suppress_ids``: after the prediction, these ids get logit −inf in the confidence
  softmax, so a position predicting one has confidence 0 and is committed last (LLaDA's
  ``confidence_eos_eot_inf`` with EOS/EOT, its official MATH/MBPP setting).
- ``schedule="cosine"``: DiMOO's MaskGIT plan (float32 cosine, ≥ 1 code kept masked until
  the last step, ≥ 1 committed per step; :func:`reveal_counts`).
- ``temperature`` > 0: DiMOO's sampling — Gumbel-max over logits/τ, and the kept-masked set
  is the lowest log(confidence) + τ·Gumbel (noisy re-masking).
- Ours, kept: MASK is never predicted, and confidences are ranked in float32 (LLaDA takes
  its argmax over every id, MASK included, and its softmax in the model dtype, bf16).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch


CONFIDENCE = ("vocab", "allowed")


def _cosine_keep(n: torch.Tensor, steps: int) -> torch.Tensor:
    """(B,) -> (B, steps) codes to keep masked after each step: max(1, floor(n·cos(π/2·(s+1)/steps)))
    in float32 for s < steps − 1, and 0 after the last step (Lumina-DiMOO's MaskGIT plan). The
    cosine is the correctly rounded float32 value; torch's float32 cos can be 1 ulp off and moves
    the floor at rare counts (CPU: n = 3591 at 16 steps), so upstream itself varies there by device."""
    keep = []
    for s in range(steps):
        if s == steps - 1:
            keep.append(torch.zeros_like(n))
            continue
        arg = 0.5 * math.pi * torch.tensor([(s + 1) / steps], dtype=torch.float32)  # float32, as upstream
        frac = torch.cos(arg.double()).float()  # correctly rounded float32 cos: no device-dependent last ulp
        keep.append((n.float() * frac).floor().clamp_min(1).long())
    return torch.stack(keep, dim=1)


def reveal_counts(n_masked: torch.Tensor, steps: int, schedule: str = "linear") -> torch.Tensor:
    """(B,) masked counts -> (B, steps) tokens to commit per step, summing to n_masked.

    linear: even split, remainder to the early steps (LLaDA's get_num_transfer_tokens);
    cosine: MaskGIT as Lumina-DiMOO runs it: after step s < steps − 1 the number still masked is
    min(max(1, floor_f32(n·cos_f32(π/2·(s+1)/steps))), r − 1) with r the number masked before the
    step (every step with MASKs left commits at least one), and 0 after the last step.
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
        keep = _cosine_keep(n.cpu(), steps).to(n.device)
        r, out = n.clone(), []
        for s in range(steps):
            nxt = torch.minimum(keep[:, s], (r - 1).clamp_min(0))
            out.append(r - nxt)
            r = nxt
        return torch.stack(out, dim=1)
    raise ValueError(f"schedule must be 'linear' or 'cosine', got {schedule!r}")


def _blocks(editable: torch.Tensor, block_length: Optional[int], steps: int) -> tuple[torch.Tensor, int, int]:
    """Block index of each editable position (by its rank among the row's editable positions),
    the number of blocks and the steps per block. Like LLaDA's ``generate``, an answer length
    that is not a multiple of ``block_length``, or steps not a multiple of the number of
    blocks, is an error (it used to be rounded down silently)."""
    rank = editable.long().cumsum(dim=-1) - 1
    if not block_length:
        return torch.zeros_like(rank), 1, steps
    counts = editable.sum(-1)
    length = int(counts.max().item()) if editable.any() else 0
    if bool((counts != length).any()) or length % int(block_length):
        raise ValueError(f"block_length={block_length} must divide the generation length "
                         f"(editable positions per row: {sorted(set(counts.tolist()))})")
    n_blocks = max(1, length // int(block_length))
    if steps % n_blocks:
        raise ValueError(f"steps={steps} must be a multiple of the number of blocks {n_blocks} "
                         f"(generation length {length} / block_length {block_length})")
    return rank.clamp(min=0) // int(block_length), n_blocks, steps // n_blocks


def _gumbel(shape, generator: Optional[torch.Generator], device) -> torch.Tensor:
    gdev = generator.device if generator is not None else "cpu"
    u = torch.rand(shape, generator=generator, device=gdev, dtype=torch.float32).to(device)
    return -torch.log(-torch.log(u + 1e-20) + 1e-20)


def blocked_ids(vocab_size: int, mask_id: int, forbid_ids: Optional[Sequence[int]] = None, device=None) -> torch.Tensor:
    """(V,) bool: True at MASK and the forbidden ids (never predicted)."""
    blocked = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    blocked[mask_id] = True
    if forbid_ids:
        blocked[torch.as_tensor(list(forbid_ids), dtype=torch.long, device=device)] = True
    return blocked


def predict(
    logits: torch.Tensor,
    mask_id: int,
    forbid_ids: Optional[Sequence[int]] = None,
    confidence: str = "vocab",
    suppress_ids: Optional[Sequence[int]] = None,
    temperature: float = 0.0,
    generator: Optional[torch.Generator] = None,
    blocked: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., V) logits -> (prediction, log confidence), both (...), in float32.

    prediction: argmax over v ∉ {M} ∪ forbid_ids, or Gumbel-max of logits/τ over them at τ > 0;
    log confidence: log softmax at the prediction, over the whole vocabulary ("vocab") or over
    the allowed ids only ("allowed"), with ``suppress_ids`` given −inf in that softmax.
    ``blocked``: :func:`blocked_ids`, precomputed (else built from mask_id and forbid_ids)."""
    if confidence not in CONFIDENCE:
        raise ValueError(f"confidence must be one of {CONFIDENCE}, got {confidence!r}")
    lf = logits.float()
    if blocked is None:
        blocked = blocked_ids(lf.shape[-1], mask_id, forbid_ids, lf.device)
    allowed = lf.masked_fill(blocked, float("-inf"))
    if temperature > 0:
        pred = (allowed / temperature + _gumbel(lf.shape, generator, lf.device)).argmax(-1)
    else:
        pred = allowed.argmax(-1)
    conf_logits = allowed if confidence == "allowed" else lf
    if suppress_ids:
        conf_logits = conf_logits.clone()
        conf_logits[..., list(suppress_ids)] = float("-inf")
    logc = torch.log_softmax(conf_logits, dim=-1).gather(-1, pred.unsqueeze(-1)).squeeze(-1)
    return pred, logc


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
    confidence: str = "vocab",
    suppress_ids: Optional[Sequence[int]] = None,
    temperature: float = 0.0,
    generator: Optional[torch.Generator] = None,
):
    """Decode the MASKs of x0 inside ``editable``; returns x (B, N), or (x, trajectory)."""
    mask_id = model.mask_id
    x = x0.clone()
    editable = editable.bool()
    block, n_blocks, steps_per_block = _blocks(editable, block_length, steps)
    states = [x.cpu()] if return_trajectory else None
    blocked = None
    for b in range(n_blocks):
        in_block = editable & (block == b)
        plan = reveal_counts((in_block & (x == mask_id)).sum(-1), steps_per_block, schedule)
        for s in range(steps_per_block):
            k = plan[:, s]
            if not k.any():
                continue
            logits = model.logits(model.embed(x), attention_mask=attention_mask)
            if blocked is None:
                blocked = blocked_ids(logits.shape[-1], mask_id, forbid_ids, logits.device)
            candidate = in_block & (x == mask_id)
            # predict at the candidates only: (M, V) instead of (B, N, V) float copies
            p_c, s_c = predict(logits[candidate], mask_id, None, confidence, suppress_ids, temperature, generator,
                               blocked=blocked)
            del logits
            if temperature > 0:  # DiMOO's noisy re-masking: rank log p + τ·Gumbel
                s_c = s_c + temperature * _gumbel(s_c.shape, generator, s_c.device)
            pred = x.clone()
            pred[candidate] = p_c
            score = torch.full(x.shape, float("-inf"), device=x.device)
            score[candidate] = s_c.clamp_min(-1e30)  # a suppressed candidate (−inf) still ranks above non-candidates
            order = score.argsort(dim=-1, descending=True, stable=True)
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(order.shape[1], device=x.device).expand_as(order))
            commit = candidate & (rank < k[:, None])
            x = torch.where(commit, pred, x)
            if states is not None:
                states.append(x.cpu())
    if states is not None:
        return x, torch.stack(states, dim=1)
    return x
