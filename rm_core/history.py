"""History Reference (HR) and History Embedding Rotation (HER), paper Eq. 2.

    a_i^(t) = sum_{k=0..t} gamma^(t-k) R_(k-t) e_i^(k)

``R_Δ`` rotates the j-th 2-D block of the embedding by ``Δ·θ_j`` with
``θ_j = base^(-2j/d)`` (rotary frequencies; base 10000 and the pairing of dimensions
(2j, 2j+1) are our choices, the paper states neither). A state k steps back is rotated
by ``-k·θ_j`` (negative lag). Treating each block as a complex number, ``R_Δ`` is
multiplication by ``exp(iΔθ_j)``; everything below uses that view.

Two ways to compute the same vector:
- :class:`HistoryBuffer` — the step recurrence used at inference (Appendix B):
  ``a^(0) = e^(0)``, ``a^(t) = e^(t) + gamma R_-1 a^(t-1)``; one running (B, N, d) buffer.
- :func:`closed_form` — used in training: a position's trajectory has at most three
  constant segments (wrong → MASK → target), so ``a^(t)`` is a sum of at most three
  embeddings, each times a geometric sum of decayed rotations over the lags its
  segment covers. No loop over steps; O(N·d).

The absolute-step variant (Appendix B, contrast only) is ``sum_k gamma^(t-k) R_k e^(k)``,
which equals ``R_t`` applied to the relative form; its recurrence is
``a^(t) = R_t e^(t) + gamma a^(t-1)``.

Table 2's variants are settings of :class:`HistoryConfig` (``kind``): ``none`` (e^(t) only),
``sum`` (gamma = 1, no rotation), ``decay`` (gamma < 1, no rotation), ``her`` (gamma < 1,
rotation). The model input is :func:`model_input`: RMSNorm of ``a`` rescaled to the RMS of
the current token embedding (our choice), so that without history it is exactly ``e^(t)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

KINDS = ("none", "sum", "decay", "her")
MODES = ("relative", "absolute")


@dataclass(frozen=True)
class HistoryConfig:
    """History Reference settings (Eq. 2). ``gamma`` is ignored for ``none`` and ``sum``."""

    kind: str = "her"
    gamma: float = 0.9
    base: float = 10000.0
    mode: str = "relative"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"history.kind must be one of {KINDS}, got {self.kind!r}")
        if self.mode not in MODES:
            raise ValueError(f"history.mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"history.gamma must be in (0, 1], got {self.gamma}")

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    @property
    def rotate(self) -> bool:
        return self.kind == "her"

    @property
    def decay(self) -> float:
        return 1.0 if self.kind in ("none", "sum") else self.gamma

    @classmethod
    def from_dict(cls, d: dict | None) -> "HistoryConfig":
        return cls(**(d or {}))


def rotary_frequencies(d: int, base: float, device=None) -> torch.Tensor:
    """θ_j = base^(-2j/d), j = 0..d/2-1 (float64)."""
    if d % 2:
        raise ValueError(f"HER needs an even embedding width, got {d}")
    j = torch.arange(d // 2, dtype=torch.float64, device=device)
    return base ** (-2.0 * j / d)


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    """(..., d) real -> (..., d/2) complex, block j = (x_2j, x_2j+1)."""
    return torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())


def _as_real(z: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(z).reshape(*z.shape[:-1], -1)


def rotate(x: torch.Tensor, delta, cfg_base: float = 10000.0) -> torch.Tensor:
    """R_Δ x. ``delta`` is a number or a tensor broadcastable to x.shape[:-1]."""
    theta = rotary_frequencies(x.shape[-1], cfg_base, device=x.device)
    delta = torch.as_tensor(delta, dtype=torch.float64, device=x.device)
    phase = torch.polar(torch.ones_like(theta), delta[..., None] * theta)
    z = _as_complex(x.to(torch.float64)) * phase
    return _as_real(z).to(x.dtype)


def _step_factor(cfg: HistoryConfig, d: int, device) -> torch.Tensor:
    """The complex per-block factor q_j = gamma·exp(-iθ_j) of one step back (or gamma)."""
    theta = rotary_frequencies(d, cfg.base, device=device)
    angle = -theta if cfg.rotate else torch.zeros_like(theta)
    return torch.polar(torch.full_like(theta, cfg.decay), angle)


class HistoryBuffer:
    """The step recurrence (Appendix B): one running buffer over the whole sequence."""

    def __init__(self, cfg: HistoryConfig):
        self.cfg = cfg
        self.a: torch.Tensor | None = None
        self.t = -1

    def update(self, e: torch.Tensor) -> torch.Tensor:
        """Feed e^(t) (B, N, d); return a^(t)."""
        self.t += 1
        if not self.cfg.enabled:
            self.a = e
            return e
        if self.cfg.mode == "absolute":
            e = rotate(e, self.t, self.cfg.base) if self.cfg.rotate else e
            self.a = e if self.a is None else e + self.cfg.decay * self.a
            return self.a
        if self.a is None:
            self.a = e
        else:
            prev = rotate(self.a, -1, self.cfg.base) if self.cfg.rotate else self.a
            self.a = e + self.cfg.decay * prev
        return self.a


def geometric_table(cfg: HistoryConfig, d: int, max_lag: int, device=None) -> torch.Tensor:
    """S[L, j] = sum_{l=0..L-1} q_j^l for L = 0..max_lag+1 (complex128, shape (max_lag+2, d/2))."""
    q = _step_factor(cfg, d, device)
    powers = q[None, :] ** torch.arange(max_lag + 1, dtype=torch.float64, device=device)[:, None]
    zero = torch.zeros_like(q)[None]
    return torch.cat([zero, torch.cumsum(powers, dim=0)], dim=0)


def segment_lags(seg_starts: torch.Tensor, tt: torch.Tensor, max_steps: int):
    """(lo, hi, valid): the lags l in [t - end_s, t - start_s] that segment s covers at turn t
    (its end clipped to t; empty, valid False, when start_s > end_s)."""
    ends = torch.cat([seg_starts[..., 1:] - 1, torch.full_like(seg_starts[..., :1], max_steps)], dim=-1)
    ends = torch.minimum(ends, tt)
    return (tt - ends).clamp(min=0), tt - seg_starts, seg_starts <= ends


def closed_form(
    seg_embeds: torch.Tensor,
    seg_starts: torch.Tensor,
    t: torch.Tensor,
    cfg: HistoryConfig,
    max_steps: int,
) -> torch.Tensor:
    """a^(t) for piecewise-constant trajectories, without materialising them.

    seg_embeds: (B, N, S, d) the embedding held on each segment; seg_starts: (B, N, S)
    non-decreasing first steps of each segment (seg_starts[..., 0] == 0; an empty segment
    has the same start as the next); t: (B,) the current step; ``max_steps`` bounds t.
    Segment s covers steps [start_s, start_{s+1} - 1]; steps after t do not count.
    """
    B, N, S, d = seg_embeds.shape
    tt = t.view(B, 1, 1).to(seg_starts.device)
    if not cfg.enabled:
        idx = (seg_starts <= tt).sum(-1, keepdim=True) - 1  # the segment active at t
        return torch.gather(seg_embeds, 2, idx[..., None].expand(B, N, 1, d)).squeeze(2)
    lo, hi, valid = segment_lags(seg_starts, tt, max_steps)
    # Geometric sums are tabulated in float64 (|1 - q| can be tiny), then applied in the
    # embedding's precision (float32 at least) as 2-D rotations-with-scale.
    work = torch.promote_types(seg_embeds.dtype, torch.float32)
    table = geometric_table(cfg, d, max_steps, device=seg_embeds.device)  # (L, d/2), L = max_steps+2
    L = table.shape[0]
    # pair[lo, hi] = sum_{l=lo..hi} q^l, with an all-zero row for empty segments (index L*L).
    pair = (table[None, 1:, :] - table[:-1, None, :]).reshape(-1, d // 2)
    pair = torch.cat([torch.view_as_real(pair).to(work), torch.zeros(1, d // 2, 2, dtype=work, device=pair.device)])
    hi_c = hi.clamp(min=0, max=L - 2)
    lo_c = lo.clamp(max=L - 2)
    idx = torch.where(valid, lo_c * (L - 1) + hi_c, torch.full_like(lo_c, pair.shape[0] - 1))
    coef = pair[idx]  # (B, N, S, d/2, 2)
    c, s = coef[..., 0], coef[..., 1]
    pairs = seg_embeds.to(work).reshape(B, N, S, d // 2, 2)
    x, y = pairs[..., 0], pairs[..., 1]
    re = (x * c - y * s).sum(dim=2)
    im = (x * s + y * c).sum(dim=2)
    if cfg.mode == "absolute" and cfg.rotate:
        theta = rotary_frequencies(d, cfg.base, device=seg_embeds.device)
        ang = t.view(B, 1, 1).to(theta) * theta
        ca, sa = torch.cos(ang).to(work), torch.sin(ang).to(work)
        re, im = re * ca - im * sa, re * sa + im * ca
    return torch.stack([re, im], dim=-1).reshape(B, N, d).to(seg_embeds.dtype)


def rms(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x.pow(2).mean(-1, keepdim=True).add(eps).sqrt()


def model_input(a: torch.Tensor, e: torch.Tensor, editable: torch.Tensor | None = None) -> torch.Tensor:
    """RMSNorm(a) brought to the current token embedding's scale: a·rms(e)/rms(a).

    Non-editable positions (the condition c) get their plain embedding e. Without history
    (a == e) this is exactly e.
    """
    if a is e:
        return e
    out = a * (rms(e) / rms(a))
    if editable is not None:
        out = torch.where(editable[..., None], out, e)
    return out
