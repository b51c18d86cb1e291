"""History Reference closed form (Eq. 2) read from a per-(token, segment-span) table (ours: speed).

``rm_core.history.closed_form`` multiplies every segment's embedding (B, N, S, d) by the
geometric sum of decayed rotations of the lags its segment covers. With a small vocabulary
(Sudoku: 10 tokens) the same products can be formed once per (token v, lag span r) — a
(V, R, d) table, R = (T+2)(T+1)+1 spans — and gathered per segment, so the per-position work is
one gather and a sum over the <= 3 segments. Each product is the same float operation on the same
operands as in ``closed_form`` (``x*c - y*s``, ``x*s + y*c``), and the segments are summed in
the same order, so the result equals ``closed_form`` exactly (tests/test_sudoku_history_table.py).
Relative mode only (all reported results); ``none`` returns the current embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .history import HistoryConfig, geometric_table, rms, segment_lags


def closed_form_table(table_e: torch.Tensor, seg_tokens: torch.Tensor, seg_starts: torch.Tensor, t: torch.Tensor,
                      cfg: HistoryConfig, max_steps: int) -> torch.Tensor:
    """a^(t) (B, N, d) like ``closed_form(table_e[seg_tokens], seg_starts, t, cfg, max_steps)``.

    table_e: (V, d) the token embeddings of ids 0..V-1; seg_tokens, seg_starts: (B, N, S); t: (B,).
    """
    if cfg.mode != "relative":
        raise ValueError("closed_form_table covers history.mode 'relative' only")
    B, N, S = seg_tokens.shape
    V, d = table_e.shape
    tt = t.view(B, 1, 1).to(seg_starts.device)
    if not cfg.enabled:
        idx = (seg_starts <= tt).sum(-1, keepdim=True) - 1
        return table_e[seg_tokens.gather(-1, idx).squeeze(-1)]
    lo, hi, valid = segment_lags(seg_starts, tt, max_steps)
    work = torch.promote_types(table_e.dtype, torch.float32)
    geo = geometric_table(cfg, d, max_steps, device=table_e.device)
    L = geo.shape[0]
    pair = (geo[None, 1:, :] - geo[:-1, None, :]).reshape(-1, d // 2)
    pair = torch.cat([torch.view_as_real(pair).to(work), torch.zeros(1, d // 2, 2, dtype=work, device=pair.device)])
    R = pair.shape[0]
    span = torch.where(valid, lo.clamp(max=L - 2) * (L - 1) + hi.clamp(min=0, max=L - 2), torch.full_like(lo, R - 1))
    c, s = pair[None, :, :, 0], pair[None, :, :, 1]  # (1, R, d/2)
    xy = table_e.to(work).reshape(V, 1, d // 2, 2)
    x, y = xy[..., 0], xy[..., 1]
    prod = torch.stack([x * c - y * s, x * s + y * c], dim=-1).reshape(V * R, d)  # (V*R, d)
    # one pass: gather the <= 3 products of each position and sum them (re/im interleaved as in
    # closed_form's output); embedding_bag does not write the (B, N, S, d) intermediate.
    bags = (seg_tokens * R + span).reshape(B * N, S)
    return F.embedding_bag(bags, prod, mode="sum").reshape(B, N, d).to(table_e.dtype)


def model_input_table(a: torch.Tensor, table_e: torch.Tensor, z: torch.Tensor, editable: torch.Tensor) -> torch.Tensor:
    """``rm_core.history.model_input(a, table_e[z], editable)`` with rms(e) read per token from the
    table and no select when every position is editable (the same values, fewer passes)."""
    out = a * (rms(table_e)[z] / rms(a))
    if bool(editable.all()):
        return out
    return torch.where(editable[..., None], out, table_e[z])


def rm_model_input_table(model, inst, editable: torch.Tensor, history: HistoryConfig, T: int,
                         vocab_size: int) -> torch.Tensor:
    """``rm_core.objective.rm_model_input`` computed from the token table (same values);
    ``model.embed`` must be a plain token lookup (no position), as Eq. 2's e is."""
    table_e = model.embed(torch.arange(vocab_size, device=inst.z.device))
    if not history.enabled:
        return table_e[inst.z]
    a = closed_form_table(table_e, inst.seg_tokens, inst.seg_starts, inst.t, history, T)
    return model_input_table(a, table_e, inst.z, editable.bool())
