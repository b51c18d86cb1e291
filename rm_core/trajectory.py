"""Synthetic training trajectories (paper Appendix C), vectorised over the batch.

For each editable position of a sampled *edit set* a rule ρ ∈ {wrong, mask} is drawn;
every other position keeps its target. Boundaries (T = trajectory length):
    wrong: β ~ U{1..T-1}, μ ~ U{β+1..T};  x^(t) = w for t < β, M for β <= t < μ, x* after
    mask:  μ ~ U{1..T};                   x^(t) = M for t < μ, x* after
    keep:                                 x^(t) = x* for all t
and, only where ``p_wrong_reveal`` > 0 (ours, not in the paper; default 0):
    wrong reveal: β ~ U{1..T-1}, μ ~ U{β+1..T}; x^(t) = M for t < β, w for β <= t < μ, M after
(a MASK revealed as a wrong digit, then re-masked; its reveal of x* lies past step T), and, only
where ``p_wrong_again`` > 0 (ours, not in the paper; default 0):
    wrong again:  β ~ U{1..T-1}, μ ~ U{β+1..T}; x^(t) = w for t < β, M for β <= t < μ, w' after
(a wrong token re-masked, then revealed wrong again: w' is a second draw of the proposal, so it
may repeat w, a replay; its re-mask lies past step T). In the paper's rules a digit that follows
a MASK is always x*, so a model that sees its history learns that a revealed token is right;
these rules show revealed tokens that must be re-masked: after a MASK only (wrong reveal), or
after a wrong token and a MASK (wrong again), which is the history of a corrupted cell at
inference (x^(0) wrong, re-masked, revealed); and a MASK whose history holds a wrong token.
A position's trajectory is stored as three segments (token, first step) so that the
History Reference closed form needs no loop over steps. The current step is t ~ U{0..T-1}.

Corruption proposals draw the wrong token w ≠ x*: uniform over a candidate set (theory
baseline; Sudoku's "fixed wrong-digit distribution", ours: uniform over the other digits),
a cached top-k distribution of a frozen model with x* removed (text), the source
token (image editing, where a position whose source already equals the target is keep), or,
on some rows, the frozen model's own draft (text, ours: ``DraftProposal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

KEEP, WRONG, MASK, WRONG_REVEAL, WRONG_AGAIN = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class EditSetSize:
    """How many editable positions a training instance corrupts (ours: the paper leaves it open).

    kind "count": U{low..high} positions; "fraction": U(low, high) of the editable
    positions (at least one); "all": every editable position.
    """

    kind: str = "fraction"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self):
        if self.kind not in ("count", "fraction", "all"):
            raise ValueError(f"edit_set.kind must be count|fraction|all, got {self.kind!r}")
        if self.low > self.high or self.low < 0:
            raise ValueError(f"edit_set needs 0 <= low <= high, got {self.low}, {self.high}")


def sample_edit_set(editable: torch.Tensor, size: EditSetSize, generator: torch.Generator) -> torch.Tensor:
    """A random subset of the editable positions per row, of the configured size."""
    editable = editable.bool()
    n_edit = editable.sum(-1)
    if size.kind == "all":
        return editable.clone()
    B = editable.shape[0]
    u = torch.rand(B, generator=generator, device=editable.device)
    if size.kind == "count":
        k = (size.low + torch.floor(u * (size.high - size.low + 1))).long()
    else:
        frac = size.low + u * (size.high - size.low)
        k = torch.ceil(frac * n_edit).long().clamp(min=1)
    k = torch.minimum(k, n_edit)
    score = torch.rand(editable.shape, generator=generator, device=editable.device)
    score = torch.where(editable, score, torch.full_like(score, 2.0))
    rank = score.argsort(-1).argsort(-1)
    return editable & (rank < k[:, None])


class UniformProposal:
    """Uniform over ``candidates`` (sorted ids) minus the target."""

    def __init__(self, candidates):
        self.candidates = torch.as_tensor(sorted(set(int(c) for c in candidates)), dtype=torch.long)
        if len(self.candidates) < 2:
            raise ValueError("a uniform proposal needs at least two candidate ids")

    def allowed(self, target: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(target, dtype=torch.bool)

    def sample(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cand = self.candidates.to(target.device)
        K = len(cand)
        in_set = torch.isin(target, cand)
        # Draw r in [0, K-2] and skip the target's slot; if the target is not a candidate draw in [0, K-1].
        u = torch.rand(target.shape, generator=generator, device=target.device)
        r = torch.floor(u * torch.where(in_set, K - 1, K)).long()
        slot = torch.searchsorted(cand, target)
        r = torch.where(in_set & (r >= slot), r + 1, r)
        return cand[r]


class TopKProposal:
    """A frozen model's cached top-k distribution with the target removed and renormalised.

    ids, probs: (B, N, k). Where the top-k holds nothing but the target, fall back to
    ``fallback`` (a UniformProposal).
    """

    def __init__(self, ids: torch.Tensor, probs: torch.Tensor, fallback: UniformProposal):
        self.ids, self.probs, self.fallback = ids, probs.float(), fallback

    def allowed(self, target: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(target, dtype=torch.bool)

    def sample(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = torch.where(self.ids == target[..., None], torch.zeros_like(self.probs), self.probs)
        total = p.sum(-1, keepdim=True)
        empty = total.squeeze(-1) <= 0
        p = torch.where(empty[..., None], torch.ones_like(p), p)
        flat = p.reshape(-1, p.shape[-1])
        pick = torch.multinomial(flat, 1, generator=generator).view(target.shape)
        drawn = self.ids.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
        return torch.where(empty, self.fallback.sample(target, generator), drawn)


class SourceProposal:
    """Image editing: the wrong token is the source image's token; equal tokens are keep."""

    def __init__(self, source: torch.Tensor):
        self.source = source

    def allowed(self, target: torch.Tensor) -> torch.Tensor:
        return self.source != target

    def sample(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.source


class DraftProposal:
    """Text (ours): on the rows in ``use_draft`` the wrong token is the frozen model's own draft
    token and only the draft's errors can be corrupted (the text analogue of the image track's
    source tokens: x^(0) holds the model's own mistakes, or nothing to fix where the draft is
    right); other rows use ``other`` (the cached top-k) at every editable position.

    draft: (B, N) token ids; use_draft: (B,) bool.
    """

    def __init__(self, draft: torch.Tensor, use_draft: torch.Tensor, other):
        self.draft, self.use_draft, self.other = draft, use_draft.bool(), other

    def allowed(self, target: torch.Tensor) -> torch.Tensor:
        return ~self.use_draft[:, None] | (self.draft != target)

    def sample(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        w = self.other.sample(target, generator)
        return torch.where(self.use_draft[:, None] & (self.draft != target), self.draft, w)


@dataclass
class Instances:
    """A batch of training instances: three (token, first step) segments per position."""

    seg_tokens: torch.Tensor  # (B, N, 3)
    seg_starts: torch.Tensor  # (B, N, 3)
    t: torch.Tensor  # (B,) current step
    z: torch.Tensor  # (B, N) current state x^(t)
    rule: torch.Tensor  # (B, N) KEEP / WRONG / MASK (/ WRONG_REVEAL / WRONG_AGAIN, ours)
    edit_set: torch.Tensor  # (B, N) bool: corrupted positions


def _randint(low: torch.Tensor, high: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform integers in [low, high] elementwise."""
    u = torch.rand(low.shape, generator=generator, device=low.device)
    return low + torch.floor(u * (high - low + 1)).long()


def state_at(seg_tokens: torch.Tensor, seg_starts: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x^(t): the token of the last segment whose start is <= t."""
    idx = (seg_starts <= t.view(-1, 1, 1)).sum(-1, keepdim=True) - 1
    return seg_tokens.gather(-1, idx).squeeze(-1)


def build_instances(
    target: torch.Tensor,
    editable: torch.Tensor,
    T: int,
    mask_id: int,
    proposal,
    generator: torch.Generator,
    edit_size: EditSetSize = EditSetSize(),
    p_wrong: float = 0.5,
    t: Optional[torch.Tensor] = None,
    p_wrong_reveal: float = 0.0,
    p_wrong_again: float = 0.0,
) -> Instances:
    """Appendix C steps 2-6 for a batch of targets (B, N). With ``p_wrong_reveal`` > 0 (ours) an
    edit position takes the wrong-reveal rule with that probability, then with ``p_wrong_again``
    > 0 (ours) the wrong-again rule (drawn last, it wins where both are drawn), else wrong / mask
    as above; at 0 neither draws a random number, so the instances are the paper rules' exactly."""
    if T < 2:
        raise ValueError(f"trajectory length T must be >= 2, got {T}")
    dev = target.device
    edit = sample_edit_set(editable.bool() & proposal.allowed(target), edit_size, generator)
    wrong = edit & (torch.rand(target.shape, generator=generator, device=dev) < p_wrong)
    rule = torch.where(edit, torch.where(wrong, WRONG, MASK), KEEP)
    if p_wrong_reveal > 0:
        revealed_wrong = edit & (torch.rand(target.shape, generator=generator, device=dev) < p_wrong_reveal)
        rule = torch.where(revealed_wrong, WRONG_REVEAL, rule)
    if p_wrong_again > 0:
        again = edit & (torch.rand(target.shape, generator=generator, device=dev) < p_wrong_again)
        rule = torch.where(again, WRONG_AGAIN, rule)
    w = proposal.sample(target, generator)
    w_again = proposal.sample(target, generator) if p_wrong_again > 0 else None

    ones = torch.ones_like(target)
    beta = _randint(ones, ones * (T - 1), generator)
    mu_wrong = _randint(beta + 1, ones * T, generator)
    mu_mask = _randint(ones, ones * T, generator)
    m = torch.full_like(target, mask_id)
    zero = torch.zeros_like(target)

    wrong_st = torch.stack([zero, beta, mu_wrong], -1)
    # (rule, its three segment tokens, their first steps); the rules are disjoint
    rules = [(WRONG, (w, m, target), wrong_st), (MASK, (m, m, target), torch.stack([zero, zero, mu_mask], -1))]
    if p_wrong_reveal > 0:
        rules.append((WRONG_REVEAL, (m, w, m), wrong_st))
    if p_wrong_again > 0:
        rules.append((WRONG_AGAIN, (w, m, w_again), wrong_st))
    seg_tokens = torch.stack([target, target, target], -1)
    seg_starts = torch.stack([zero, zero, zero], -1)
    for r, tokens, starts in rules:
        at = (rule == r)[..., None]
        seg_tokens = torch.where(at, torch.stack(tokens, -1), seg_tokens)
        seg_starts = torch.where(at, starts, seg_starts)

    if t is None:
        t = torch.floor(torch.rand(target.shape[0], generator=generator, device=dev) * T).long()
    z = state_at(seg_tokens, seg_starts, t)
    return Instances(seg_tokens, seg_starts, t, z, rule, edit)


def materialise(inst: Instances, T: int) -> torch.Tensor:
    """The full trajectory x^(0..T) as (B, T+1, N) — for tests, figures and benchmarks."""
    steps = [state_at(inst.seg_tokens, inst.seg_starts, torch.full_like(inst.t, s)) for s in range(T + 1)]
    return torch.stack(steps, dim=1)
