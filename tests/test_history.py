"""Eq. 2: recurrence == closed form == a naive double loop; HER rotation properties."""

import dataclasses
import math

import pytest
import torch

from rm_core.history import HistoryBuffer, HistoryConfig, closed_form, model_input, rotate
from rm_core.trajectory import UniformProposal, build_instances, materialise


def naive_rotate(v, delta, base=10000.0):
    """R_Δ on one vector with an explicit 2x2 matrix per block."""
    d = len(v)
    out = [0.0] * d
    for j in range(d // 2):
        th = delta * base ** (-2.0 * j / d)
        c, s = math.cos(th), math.sin(th)
        x, y = float(v[2 * j]), float(v[2 * j + 1])
        out[2 * j] = c * x - s * y
        out[2 * j + 1] = s * x + c * y
    return torch.tensor(out, dtype=torch.float64)


def naive_history(states_e, t, cfg):
    """a^(t) = sum_k gamma^(t-k) R_(k-t) e^(k) (relative) or R_k (absolute), for one position."""
    total = torch.zeros(states_e.shape[-1], dtype=torch.float64)
    gamma = 1.0 if cfg.kind in ("none", "sum") else cfg.gamma
    if cfg.kind == "none":
        return states_e[t].double()
    for k in range(t + 1):
        v = states_e[k].double()
        if cfg.kind == "her":
            v = naive_rotate(v, (k - t) if cfg.mode == "relative" else k, cfg.base)
        total += gamma ** (t - k) * v
    return total


CONFIGS = [
    HistoryConfig(kind="none"),
    HistoryConfig(kind="sum"),
    HistoryConfig(kind="decay", gamma=0.8),
    HistoryConfig(kind="her", gamma=0.9),
    HistoryConfig(kind="her", gamma=1.0),
    HistoryConfig(kind="her", gamma=0.7, mode="absolute"),
    HistoryConfig(kind="decay", gamma=0.7, mode="absolute"),
    HistoryConfig(kind="her", gamma=0.8, base=100.0),
    HistoryConfig(kind="her", gamma=0.8, base=100.0, mode="absolute"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.kind}-{c.gamma}-{c.mode}")
def test_recurrence_matches_naive_sum(cfg):
    g = torch.Generator().manual_seed(0)
    B, N, d, T = 2, 3, 8, 5
    E = torch.randn(T, B, N, d, generator=g, dtype=torch.float64)
    buf = HistoryBuffer(cfg)
    for t in range(T):
        a = buf.update(E[t])
        for b in range(B):
            for i in range(N):
                ref = naive_history(E[:, b, i], t, cfg)
                assert torch.allclose(a[b, i].double(), ref, atol=1e-10), (t, b, i)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.kind}-{c.gamma}-{c.mode}")
def test_closed_form_matches_recurrence_on_trajectories(cfg):
    g = torch.Generator().manual_seed(1)
    B, N, V, d, T, M = 4, 10, 7, 16, 6, 6
    target = torch.randint(0, 6, (B, N), generator=g)
    editable = torch.ones(B, N, dtype=torch.bool)
    emb = torch.randn(V, d, generator=g)
    for t in range(T):
        inst = build_instances(target, editable, T, M, UniformProposal(range(6)), torch.Generator().manual_seed(t),
                               t=torch.full((B,), t))
        closed = closed_form(emb[inst.seg_tokens], inst.seg_starts, inst.t, cfg, T)
        traj = materialise(inst, T)
        buf = HistoryBuffer(cfg)
        for s in range(t + 1):
            a = buf.update(emb[traj[:, s]])
        assert torch.allclose(closed, a, atol=1e-5), (cfg, t, (closed - a).abs().max())


def test_closed_form_float_precision_long_horizon():
    """gamma = 1 with rotation: the geometric sums must not lose precision (|1-q| small)."""
    cfg = HistoryConfig(kind="her", gamma=1.0)
    d, T = 64, 40
    g = torch.Generator().manual_seed(2)
    e = torch.randn(3, d, generator=g, dtype=torch.float64)
    starts = torch.tensor([[[0, 13, 27]]])
    t = torch.tensor([T - 1])
    closed = closed_form(e[None, None], starts, t, cfg, T)
    buf = HistoryBuffer(cfg)
    for s in range(T):
        seg = 0 if s < 13 else (1 if s < 27 else 2)
        a = buf.update(e[seg][None, None])
    assert torch.allclose(closed, a, atol=1e-9)


def test_rotation_preserves_norm_and_composes():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 32, generator=g, dtype=torch.float64)
    for delta in (-3, -1, 0.5, 2, 7):
        assert torch.allclose(rotate(x, delta).norm(dim=-1), x.norm(dim=-1), atol=1e-12)
    assert torch.allclose(rotate(rotate(x, 2), -5), rotate(x, -3), atol=1e-12)
    assert torch.allclose(rotate(x, 0), x)
    # R_(-Δ) = R_Δ^T: <R_Δ x, y> = <x, R_-Δ y>
    y = torch.randn(5, 32, generator=g, dtype=torch.float64)
    assert torch.allclose((rotate(x, 3) * y).sum(-1), (x * rotate(y, -3)).sum(-1), atol=1e-12)
    assert torch.allclose(rotate(x[0], 2), naive_rotate(x[0], 2), atol=1e-12)


def test_model_input_without_history_is_embedding_and_keeps_condition():
    g = torch.Generator().manual_seed(4)
    e = torch.randn(2, 6, 8, generator=g)
    assert model_input(e, e) is e
    a = 3.0 * torch.randn(2, 6, 8, generator=g)
    editable = torch.tensor([[0, 0, 1, 1, 1, 1]] * 2, dtype=torch.bool)
    out = model_input(a, e, editable)
    assert torch.equal(out[:, :2], e[:, :2])
    rms = lambda v: v.pow(2).mean(-1).sqrt()
    assert torch.allclose(rms(out[:, 2:]), rms(e[:, 2:]), atol=1e-4)


def test_bad_history_config_names_the_key():
    with pytest.raises(ValueError, match="history.kind"):
        HistoryConfig(kind="rotary")
    with pytest.raises(ValueError, match="history.gamma"):
        HistoryConfig(gamma=1.5)


def test_config_defaults_from_dict_and_validation():
    """Defaults (her, gamma 0.9, base 10000, relative); from_dict; every bad value names its key."""
    c = HistoryConfig()
    assert (c.kind, c.gamma, c.base, c.mode) == ("her", 0.9, 10000.0, "relative")
    assert HistoryConfig.from_dict(None) == c and HistoryConfig.from_dict({}) == c
    assert HistoryConfig.from_dict({"kind": "sum", "gamma": 0.5}) == HistoryConfig(kind="sum", gamma=0.5)
    # decay is gamma only where the variant uses it; rotation only for HER
    assert [(HistoryConfig(kind=k, gamma=0.5).decay, HistoryConfig(kind=k).rotate, HistoryConfig(kind=k).enabled)
            for k in ("none", "sum", "decay", "her")] == [(1.0, False, False), (1.0, False, True), (0.5, False, True),
                                                          (0.5, True, True)]
    HistoryConfig(gamma=1.0)  # the closed end of (0, 1]
    with pytest.raises(dataclasses.FrozenInstanceError):  # a validated config cannot be edited afterwards
        c.gamma = 2.0
    for bad, msg in (({"kind": "rotary"}, r"^history\.kind must be one of \('none', 'sum', 'decay', 'her'\), got 'rotary'$"),
                     ({"mode": "abs"}, r"^history\.mode must be one of \('relative', 'absolute'\), got 'abs'$"),
                     ({"gamma": 0.0}, r"^history\.gamma must be in \(0, 1\], got 0\.0$"),
                     ({"gamma": 1.5}, r"^history\.gamma must be in \(0, 1\], got 1\.5$")):
        with pytest.raises(ValueError, match=msg):
            HistoryConfig(**bad)
    with pytest.raises(ValueError, match=r"^HER needs an even embedding width, got 7$"):
        rotate(torch.zeros(2, 7), 1)


def test_default_rotation_base_is_10000():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 16, generator=g, dtype=torch.float64)
    want = torch.stack([naive_rotate(v, -2, 10000.0) for v in x])
    assert torch.allclose(rotate(x, -2), want, atol=1e-12)
    # the HER buffer uses cfg.base
    cfg = HistoryConfig(kind="her", gamma=0.5, base=100.0)
    buf = HistoryBuffer(cfg)
    buf.update(x[None])
    got = buf.update(torch.zeros(1, 3, 16, dtype=torch.float64))
    want = torch.stack([0.5 * naive_rotate(v, -1, 100.0) for v in x])
    assert torch.allclose(got[0], want, atol=1e-12)


def test_closed_form_at_the_last_step():
    """t may equal max_steps (the bound is inclusive): the state x^(T) after the last turn."""
    g = torch.Generator().manual_seed(9)
    d, T = 8, 5
    e = torch.randn(3, d, generator=g, dtype=torch.float64)
    for s1, s2 in ((2, 4), (1, 3)):  # (1, 3): the first segment is step 0 alone, at the largest lag T
        starts = torch.tensor([[[0, s1, s2]]])
        for cfg in (HistoryConfig(kind="sum"), HistoryConfig(kind="her", gamma=0.8)):
            closed = closed_form(e[None, None], starts, torch.tensor([T]), cfg, T)
            buf = HistoryBuffer(cfg)
            for s in range(T + 1):
                a = buf.update(e[0 if s < s1 else (1 if s < s2 else 2)][None, None])
            assert torch.allclose(closed, a, atol=1e-9), (cfg.kind, s1, s2)
