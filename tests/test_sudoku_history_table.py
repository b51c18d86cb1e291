"""closed_form_table (rm_core.history_table) against a naive recurrence and, exactly, closed_form."""

import math

import pytest
import torch

from rm_core.history import HistoryConfig, closed_form
from rm_core.history_table import closed_form_table
from rm_core.trajectory import EditSetSize, UniformProposal, build_instances

torch.set_num_threads(1)


def naive_history(emb_traj, t, kind, gamma, base=10000.0):
    """a^(t) = sum_k gamma^(t-k) R_(k-t) e^(k) by a loop, rotation as complex multiplication."""
    B, _, N, d = emb_traj.shape
    out = torch.zeros(B, N, d, dtype=torch.float64)
    theta = torch.tensor([base ** (-2.0 * j / d) for j in range(d // 2)], dtype=torch.float64)
    for b in range(B):
        tb = int(t[b])
        for k in range(tb + 1):
            lag = tb - k
            g = 1.0 if kind == "sum" else gamma ** lag
            e = emb_traj[b, k].to(torch.float64).reshape(N, d // 2, 2)
            z = torch.complex(e[..., 0], e[..., 1])
            if kind == "her":
                z = z * torch.polar(torch.ones_like(theta), -lag * theta)
            out[b] += g * torch.view_as_real(z).reshape(N, d)
    return out


@pytest.mark.parametrize("kind", ["none", "sum", "decay", "her"])
def test_table_form_equals_naive_and_closed_form(kind):
    g = torch.Generator().manual_seed(1)
    B, N, d, T, V = 6, 9, 16, 6, 5
    target = torch.randint(0, V - 1, (B, N), generator=g)
    editable = torch.ones(B, N, dtype=torch.bool)
    inst = build_instances(target, editable, T, V - 1, UniformProposal(range(V - 1)), g, EditSetSize("count", 2, 6), 0.5)
    table = torch.randn(V, d, generator=g)
    cfg = HistoryConfig(kind=kind, gamma=0.8)
    got = closed_form_table(table, inst.seg_tokens, inst.seg_starts, inst.t, cfg, T)
    # exactly the library's closed form (same products, same order of summation)
    assert torch.equal(got, closed_form(table[inst.seg_tokens], inst.seg_starts, inst.t, cfg, T))
    # the trajectory written out step by step, then Eq. 2 by a loop
    steps = torch.arange(T + 1)
    idx = (inst.seg_starts[:, None] <= steps.view(1, -1, 1, 1)).sum(-1) - 1  # (B, T+1, N)
    traj = inst.seg_tokens[:, None].expand(B, T + 1, N, 3).gather(-1, idx[..., None]).squeeze(-1)
    if kind == "none":
        want = table[traj[torch.arange(B), inst.t]].double()
    else:
        want = naive_history(table[traj], inst.t, kind, 0.8)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    assert not math.isnan(float(got.sum()))


def test_gradient_reaches_the_table():
    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, 4, (3, 9), generator=g)
    editable = torch.ones(3, 9, dtype=torch.bool)
    inst = build_instances(target, editable, 6, 4, UniformProposal(range(4)), g, EditSetSize("count", 2, 6), 0.5)
    table = torch.randn(5, 8, generator=g, requires_grad=True)
    ref = table.detach().clone().requires_grad_(True)
    cfg = HistoryConfig(kind="her", gamma=0.9)
    closed_form_table(table, inst.seg_tokens, inst.seg_starts, inst.t, cfg, 6).pow(2).sum().backward()
    closed_form(ref[inst.seg_tokens], inst.seg_starts, inst.t, cfg, 6).pow(2).sum().backward()
    torch.testing.assert_close(table.grad, ref.grad, rtol=1e-5, atol=1e-6)


def test_absolute_mode_is_refused():
    with pytest.raises(ValueError, match="relative"):
        closed_form_table(torch.zeros(3, 4), torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long),
                          torch.zeros(1, dtype=torch.long), HistoryConfig(kind="her", mode="absolute"), 6)


@pytest.mark.parametrize("all_editable", [True, False])
def test_model_input_table_equals_model_input(all_editable):
    from rm_core.history import model_input
    from rm_core.history_table import model_input_table

    g = torch.Generator().manual_seed(3)
    table = torch.randn(6, 16, generator=g)
    z = torch.randint(0, 6, (4, 10), generator=g)
    a = torch.randn(4, 10, 16, generator=g)
    editable = torch.ones(4, 10, dtype=torch.bool) if all_editable else torch.rand(4, 10, generator=g) < 0.5
    assert torch.equal(model_input_table(a, table, z, editable), model_input(a, table[z], editable))
