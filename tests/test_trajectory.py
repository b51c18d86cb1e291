"""Appendix C: boundaries, segments, proposals — per-position checks written as loops."""

import torch

from rm_core.trajectory import (KEEP, MASK, WRONG, EditSetSize, SourceProposal, TopKProposal, UniformProposal,
                                build_instances, materialise, sample_edit_set)


def test_trajectory_rules_per_position():
    T, M = 6, 9
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 9, (64, 20), generator=g)
    editable = torch.ones(64, 20, dtype=torch.bool)
    editable[:, :3] = False
    inst = build_instances(target, editable, T, M, UniformProposal(range(9)), g, EditSetSize("count", 2, 8), p_wrong=0.5)
    traj = materialise(inst, T)
    n_wrong = n_mask = 0
    for b in range(64):
        assert 2 <= int(inst.edit_set[b].sum()) <= 8
        for i in range(20):
            seq = traj[b, :, i].tolist()
            x = int(target[b, i])
            r = int(inst.rule[b, i])
            if not editable[b, i] or r == KEEP:
                assert seq == [x] * (T + 1)
                assert not inst.edit_set[b, i] or r != KEEP
            elif r == WRONG:
                n_wrong += 1
                w = seq[0]
                assert w != x and w != M
                beta = seq.index(M)
                mu = seq.index(x)
                assert 1 <= beta <= T - 1 and beta + 1 <= mu <= T
                assert seq == [w] * beta + [M] * (mu - beta) + [x] * (T + 1 - mu)
            else:
                n_mask += 1
                mu = seq.index(x)
                assert 1 <= mu <= T and seq == [M] * mu + [x] * (T + 1 - mu)
        t = int(inst.t[b])
        assert 0 <= t <= T - 1 and torch.equal(inst.z[b], traj[b, t])
    assert n_wrong > 50 and n_mask > 50


def test_boundary_distributions_are_uniform():
    T, M = 6, 9
    g = torch.Generator().manual_seed(1)
    target = torch.zeros(4000, 1, dtype=torch.long)
    inst = build_instances(target, torch.ones_like(target, dtype=torch.bool), T, M, UniformProposal(range(9)), g,
                           EditSetSize("all"), p_wrong=1.0)
    beta = inst.seg_starts[:, 0, 1]
    counts = torch.bincount(beta, minlength=T)[1:T].float()
    assert (counts / counts.sum() - 1 / (T - 1)).abs().max() < 0.03
    ts = torch.bincount(inst.t, minlength=T).float()
    assert (ts / ts.sum() - 1 / T).abs().max() < 0.03


def test_uniform_proposal_never_target_and_uniform():
    g = torch.Generator().manual_seed(2)
    target = torch.full((20000,), 4)
    w = UniformProposal([1, 2, 3, 4, 5]).sample(target, g)
    assert not (w == 4).any()
    freq = torch.bincount(w, minlength=6)[[1, 2, 3, 5]].float() / 20000
    assert (freq - 0.25).abs().max() < 0.02


def test_topk_proposal_removes_target_and_renormalises():
    g = torch.Generator().manual_seed(3)
    ids = torch.tensor([[[4, 7, 2]]]).expand(30000, 1, 3)
    probs = torch.tensor([[[0.6, 0.3, 0.1]]]).expand(30000, 1, 3)
    target = torch.full((30000, 1), 4)
    w = TopKProposal(ids, probs, UniformProposal(range(10))).sample(target, g)
    assert not (w == 4).any()
    assert abs(float((w == 7).float().mean()) - 0.75) < 0.02
    only_target = TopKProposal(torch.tensor([[[4]]]), torch.tensor([[[1.0]]]), UniformProposal(range(10)))
    assert int(only_target.sample(torch.tensor([[4]]), g)) != 4


def test_source_proposal_keeps_equal_positions():
    g = torch.Generator().manual_seed(4)
    target = torch.randint(0, 5, (16, 30), generator=g)
    source = torch.where(torch.rand(16, 30, generator=g) < 0.5, target, (target + 1) % 5)
    inst = build_instances(target, torch.ones_like(target, dtype=torch.bool), 6, 9, SourceProposal(source), g,
                           EditSetSize("all"), p_wrong=0.7)
    assert (inst.rule[source == target] == KEEP).all()
    assert (inst.rule[source != target] != KEEP).all()
    wrong = inst.rule == WRONG
    assert torch.equal(inst.seg_tokens[..., 0][wrong], source[wrong])


def test_edit_set_fraction_within_editable():
    g = torch.Generator().manual_seed(5)
    editable = torch.rand(50, 40, generator=g) < 0.5
    e = sample_edit_set(editable, EditSetSize("fraction", 0.2, 0.4), g)
    assert not (e & ~editable).any()
    frac = e.sum(-1).float() / editable.sum(-1).float()
    assert (frac >= 0.19).all() and (frac <= 0.45).all()
