"""Appendix C: boundaries, segments, proposals — per-position checks written as loops."""

import hashlib

import pytest
import torch

from rm_core.trajectory import (KEEP, MASK, WRONG, WRONG_AGAIN, WRONG_REVEAL, DraftProposal, EditSetSize, SourceProposal, TopKProposal, UniformProposal,
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


def chi2_pvalue(counts, probs):
    """Pearson's chi-square goodness-of-fit p-value of observed ``counts`` against cell ``probs``."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    probs = torch.as_tensor(probs, dtype=torch.float64)
    assert abs(float(probs.sum()) - 1) < 1e-9 and (probs > 0).all()
    expected = counts.sum() * probs
    stat = ((counts - expected) ** 2 / expected).sum()
    df = torch.tensor(len(counts) - 1.0, dtype=torch.float64)
    return float(torch.special.gammaincc(df / 2, stat / 2))  # chi2.sf(stat, df)


# Seeded, so each check is deterministic; a p-value below 1e-3 rejects the spec (a correct sampler
# would do that for 0.1% of seeds). Every cell expects hundreds of draws, so the chi-square holds.
P_MIN = 1e-3


def _wrong_and_mask_draws(T, n, seed):
    g = torch.Generator().manual_seed(seed)
    target = torch.zeros(n, 1, dtype=torch.long)
    ones = torch.ones_like(target, dtype=torch.bool)
    wrong = build_instances(target, ones, T, 9, UniformProposal(range(9)), g, EditSetSize("all"), p_wrong=1.0)
    mask = build_instances(target, ones, T, 9, UniformProposal(range(9)), g, EditSetSize("all"), p_wrong=0.0)
    assert (wrong.rule == WRONG).all() and (mask.rule == MASK).all()
    return wrong, mask


def test_boundary_distributions_match_appendix_c():
    """wrong: beta ~ U{1..T-1}, then mu ~ U{beta+1..T} (the joint law); mask: mu ~ U{1..T}; t ~ U{0..T-1}."""
    for T in (2, 3, 6):
        wrong, mask = _wrong_and_mask_draws(T, 12000, seed=T)
        traj = materialise(wrong, T)[:, :, 0]
        cells, probs = [], []
        beta = (traj == 9).long().argmax(1)  # first MASK step
        mu = (traj == 0).long().argmax(1)  # first target step
        assert torch.equal(beta, wrong.seg_starts[:, 0, 1]) and torch.equal(mu, wrong.seg_starts[:, 0, 2])
        for b in range(1, T):
            for m in range(b + 1, T + 1):
                cells.append(int(((beta == b) & (mu == m)).sum()))
                probs.append(1.0 / (T - 1) / (T - b))
        assert sum(cells) == len(beta)  # no draw outside 1 <= beta < mu <= T
        if len(cells) > 1:
            assert chi2_pvalue(cells, probs) > P_MIN, (T, cells)
        mu_mask = (materialise(mask, T)[:, :, 0] == 0).long().argmax(1)
        counts = torch.bincount(mu_mask, minlength=T + 1)
        assert counts[0] == 0 and counts.sum() == len(mu_mask)
        assert chi2_pvalue(counts[1:], [1.0 / T] * T) > P_MIN, (T, counts)
        ts = torch.bincount(torch.cat([wrong.t, mask.t]), minlength=T)
        assert len(ts) == T and chi2_pvalue(ts, [1.0 / T] * T) > P_MIN, (T, ts)


def test_rule_draw_follows_p_wrong():
    """Each edit position is wrong with probability p_wrong, else mask (binomial, 4.5 sigma)."""
    g = torch.Generator().manual_seed(11)
    target = torch.zeros(200, 50, dtype=torch.long)
    for p in (0.2, 0.7):
        inst = build_instances(target, torch.ones_like(target, dtype=torch.bool), 6, 9, UniformProposal(range(9)), g,
                               EditSetSize("all"), p_wrong=p)
        n = target.numel()
        k = int((inst.rule == WRONG).sum())
        assert int((inst.rule == MASK).sum()) == n - k
        assert abs(k - n * p) < 4.5 * (n * p * (1 - p)) ** 0.5, (p, k)


def test_chi2_check_rejects_a_wrong_mu_law():
    """The check above has power: mu drawn U{beta..T} or U{1..T} for wrong positions is rejected."""
    T = 6
    wrong, _ = _wrong_and_mask_draws(T, 12000, seed=6)
    beta = wrong.seg_starts[:, 0, 1]
    g = torch.Generator().manual_seed(0)
    u = torch.rand(beta.shape, generator=g)
    for bad_mu in (torch.clamp(beta + 1 + torch.floor(u * (T - beta + 1)).long(), max=T),  # piles up at T
                   beta + 1 + torch.floor(u * u * (T - beta)).long()):  # not uniform
        cells = [int(((beta == b) & (bad_mu == m)).sum()) for b in range(1, T) for m in range(b + 1, T + 1)]
        probs = [1.0 / (T - 1) / (T - b) for b in range(1, T) for m in range(b + 1, T + 1)]
        assert chi2_pvalue(cells, probs) < 1e-6


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


def test_draft_proposal_rows_corrupt_only_the_draft_errors_with_the_draft_token():
    g = torch.Generator().manual_seed(6)
    B, N, V = 40, 24, 7
    target = torch.randint(0, V, (B, N), generator=g)
    draft = torch.where(torch.rand(B, N, generator=g) < 0.3, (target + 1 + torch.randint(0, V - 1, (B, N), generator=g)) % V,
                        target)
    use = torch.rand(B, generator=g) < 0.5
    editable = torch.ones(B, N, dtype=torch.bool)
    editable[:, :4] = False
    prop = DraftProposal(draft, use, UniformProposal(range(V)))
    inst = build_instances(target, editable, 6, 99, prop, g, EditSetSize("all"), p_wrong=0.6)
    first = inst.seg_tokens[..., 0]
    for b in range(B):
        for j in range(N):
            r = int(inst.rule[b, j])
            if not editable[b, j]:
                assert r == KEEP
            elif use[b]:
                # a draft row: exactly the draft's errors are corrupted; a wrong token is the draft's own
                assert (r != KEEP) == bool(draft[b, j] != target[b, j])
                if r == WRONG:
                    assert int(first[b, j]) == int(draft[b, j])
            else:
                assert r != KEEP  # edit set "all": every editable position of a top-k row
                if r == WRONG:
                    assert int(first[b, j]) != int(target[b, j])
    assert use.any() and (~use).any()


def test_edit_set_fraction_within_editable():
    g = torch.Generator().manual_seed(5)
    editable = torch.rand(50, 40, generator=g) < 0.5
    e = sample_edit_set(editable, EditSetSize("fraction", 0.2, 0.4), g)
    assert not (e & ~editable).any()
    frac = e.sum(-1).float() / editable.sum(-1).float()
    assert (frac >= 0.19).all() and (frac <= 0.45).all()


def test_edit_set_sizes_and_validation():
    """count: k ~ U{low..high} capped at the editable count; fraction: ceil(U(low, high) * n), at
    least 1; all: every editable position. Defaults: fraction U(0, 1). Bad sizes name the key."""
    assert EditSetSize() == EditSetSize("fraction", 0.0, 1.0)
    g = torch.Generator().manual_seed(12)
    editable = torch.ones(6000, 10, dtype=torch.bool)
    k = sample_edit_set(editable, EditSetSize("count", 2, 5), g).sum(-1)
    counts = torch.bincount(k, minlength=11)
    assert counts[:2].sum() == 0 and counts[6:].sum() == 0
    assert chi2_pvalue(counts[2:6], [0.25] * 4) > P_MIN, counts
    few = torch.zeros(50, 10, dtype=torch.bool)
    few[:, :3] = True
    e = sample_edit_set(few, EditSetSize("count", 5, 8), g)
    assert torch.equal(e, few)  # capped at the 3 editable positions
    e = sample_edit_set(few, EditSetSize("fraction", 0.0, 0.0), g)
    assert (e.sum(-1) == 1).all() and not (e & ~few).any()  # at least one
    k = sample_edit_set(editable, EditSetSize("fraction", 0.0, 1.0), g).sum(-1)
    # ceil(u * 10) for u ~ U(0, 1): uniform on 1..10
    assert chi2_pvalue(torch.bincount(k, minlength=11)[1:], [0.1] * 10) > P_MIN
    assert torch.equal(sample_edit_set(few, EditSetSize("all"), g), few)
    for bad, msg in (({"kind": "some"}, r"^edit_set\.kind must be count\|fraction\|all, got 'some'$"),
                     ({"low": 0.5, "high": 0.2}, r"^edit_set needs 0 <= low <= high, got 0\.5, 0\.2$"),
                     ({"low": -1.0, "high": 0.2}, r"^edit_set needs 0 <= low <= high, got -1\.0, 0\.2$")):
        with pytest.raises(ValueError, match=msg):
            EditSetSize(**bad)
    EditSetSize("count", 3, 3)  # low == high is allowed


def test_uniform_proposal_edge_cases_and_build_defaults():
    g = torch.Generator().manual_seed(13)
    with pytest.raises(ValueError, match=r"^a uniform proposal needs at least two candidate ids$"):
        UniformProposal([3, 3])
    two = UniformProposal([4, 2])
    assert torch.equal(two.sample(torch.tensor([2, 4, 2]), g), torch.tensor([4, 2, 4]))
    # a target outside the candidates: uniform over all of them
    w = UniformProposal([1, 2, 3]).sample(torch.full((9000,), 7), g)
    assert chi2_pvalue(torch.bincount(w, minlength=4)[1:], [1 / 3] * 3) > P_MIN
    assert UniformProposal([1, 2]).allowed(torch.tensor([1, 5])).all()
    with pytest.raises(ValueError, match=r"^trajectory length T must be >= 2, got 1$"):
        build_instances(torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool), 1, 9,
                        UniformProposal(range(9)), g)
    # defaults: edit set U(0, 1) of the editable positions, p_wrong = 0.5
    target = torch.zeros(3000, 8, dtype=torch.long)
    inst = build_instances(target, torch.ones_like(target, dtype=torch.bool), 4, 9, UniformProposal(range(9)), g)
    n = int(inst.edit_set.sum())
    k = int((inst.rule == WRONG).sum())
    assert abs(k - n / 2) < 4.5 * (n / 4) ** 0.5
    assert chi2_pvalue(torch.bincount(inst.edit_set.sum(-1), minlength=9)[1:], [1 / 8] * 8) > P_MIN
    assert materialise(inst, 4).shape == (3000, 5, 8)



def test_topk_proposal_per_position_with_fallback():
    """Many rows and positions, each with its own top-k; where the top-k holds only the target, the
    uniform fallback is used at that position alone."""
    g = torch.Generator().manual_seed(14)
    B, N = 4000, 5
    target = torch.arange(N).expand(B, N) % 3  # targets 0, 1, 2, 0, 1
    pos = torch.arange(N)
    ids = torch.stack([target, 10 + pos.expand(B, N), 20 + pos.expand(B, N)], -1)
    probs = torch.tensor([0.5, 0.4, 0.1]).expand(B, N, 3).clone()
    probs[:, 3, 1:] = 0.0  # position 3: only the target has mass -> fallback
    w = TopKProposal(ids, probs, UniformProposal([30, 31])).sample(target, g)
    assert w.shape == (B, N)
    for i in range(N):
        col = w[:, i]
        if i == 3:
            assert ((col == 30) | (col == 31)).all() and abs(float((col == 30).float().mean()) - 0.5) < 0.04
        else:
            assert ((col == 10 + i) | (col == 20 + i)).all(), i
            assert abs(float((col == 10 + i).float().mean()) - 0.8) < 0.03, i


def test_rule_codes_and_frozen_settings():
    """The rule codes stored per position are KEEP 0, WRONG 1, MASK 2; settings objects are immutable."""
    import dataclasses

    assert (KEEP, WRONG, MASK) == (0, 1, 2)
    g = torch.Generator().manual_seed(15)
    target = torch.zeros(50, 6, dtype=torch.long)
    editable = torch.ones_like(target, dtype=torch.bool)
    editable[:, 0] = False
    inst = build_instances(target, editable, 4, 9, UniformProposal(range(9)), g, EditSetSize("count", 2, 2), 0.5)
    assert set(inst.rule.unique().tolist()) == {0, 1, 2} and (inst.rule[:, 0] == 0).all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        EditSetSize().low = 0.5


def test_wrong_reveal_rule_per_position():
    """p_wrong_reveal (ours): an edit position is MASK, then a wrong token w from step beta, then MASK
    again from mu (1 <= beta < mu <= T); other edit positions follow wrong / mask as before."""
    T, M = 6, 9
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, 9, (64, 20), generator=g)
    editable = torch.ones(64, 20, dtype=torch.bool)
    inst = build_instances(target, editable, T, M, UniformProposal(range(9)), g, EditSetSize("count", 4, 12),
                           p_wrong=0.5, p_wrong_reveal=0.5)
    traj = materialise(inst, T)
    counts = {KEEP: 0, WRONG: 0, MASK: 0, WRONG_REVEAL: 0}
    for b in range(64):
        for i in range(20):
            seq, x = traj[b, :, i].tolist(), int(target[b, i])
            r = int(inst.rule[b, i])
            counts[r] += 1
            assert (r != KEEP) == bool(inst.edit_set[b, i])
            if r == WRONG_REVEAL:
                beta = seq.index(next(v for v in seq if v != M))
                w = seq[beta]
                mu = beta + seq[beta:].index(M)
                assert w != x and 1 <= beta <= T - 1 and beta + 1 <= mu <= T
                assert seq == [M] * beta + [w] * (mu - beta) + [M] * (T + 1 - mu)
            elif r == WRONG:
                assert seq[0] != x and seq[-1] == x and M in seq
            elif r == MASK:
                assert seq[0] == M and seq[-1] == x
            else:
                assert seq == [x] * (T + 1)
        assert torch.equal(inst.z[b], traj[b, int(inst.t[b])])
    n_edit = counts[WRONG] + counts[MASK] + counts[WRONG_REVEAL]
    assert 0.4 < counts[WRONG_REVEAL] / n_edit < 0.6 and counts[WRONG] > 50 and counts[MASK] > 50


def test_wrong_reveal_off_draws_the_paper_rules_exactly():
    """p_wrong_reveal = 0 draws no extra random number: byte-identical instances to the paper rules'
    implementation before the key existed (digest recorded from commit 2e41018's trajectory.py)."""
    target = torch.randint(0, 9, (16, 20), generator=torch.Generator().manual_seed(0))
    ones = torch.ones_like(target, dtype=torch.bool)

    def digest(**kw):
        inst = build_instances(target, ones, 6, 9, UniformProposal(range(9)), torch.Generator().manual_seed(5),
                               EditSetSize("count", 2, 8), **kw)
        h = hashlib.sha256()
        for f in ("seg_tokens", "seg_starts", "t", "z", "rule", "edit_set"):
            h.update(getattr(inst, f).to(torch.int64).numpy().tobytes())
        return h.hexdigest()

    before = "0d019b941cb2d2a3fa5bc040f16b311751ff116c6c5df9c0cad22de6a5a1fe91"
    assert digest() == before and digest(p_wrong_reveal=0.0) == before and digest(p_wrong_again=0.0) == before
    assert digest(p_wrong_reveal=1e-12) != before  # any positive value draws the rule
    assert digest(p_wrong_again=1e-12) != before


def test_wrong_again_rule_per_position():
    """p_wrong_again (ours): an edit position holds a wrong token w, MASK from step beta, then a
    second wrong token w' from mu (1 <= beta < mu <= T); w' is a fresh draw, so it repeats w about
    one time in K-1 (a replay) and differs otherwise; the other rules are as before."""
    T, M, K = 6, 9, 9
    g = torch.Generator().manual_seed(4)
    target = torch.randint(0, K, (96, 20), generator=g)
    editable = torch.ones(96, 20, dtype=torch.bool)
    inst = build_instances(target, editable, T, M, UniformProposal(range(K)), g, EditSetSize("count", 4, 12),
                           p_wrong=0.5, p_wrong_reveal=0.3, p_wrong_again=0.5)
    traj = materialise(inst, T)
    counts = {KEEP: 0, WRONG: 0, MASK: 0, WRONG_REVEAL: 0, WRONG_AGAIN: 0}
    replays = 0
    for b in range(96):
        for i in range(20):
            seq, x = traj[b, :, i].tolist(), int(target[b, i])
            r = int(inst.rule[b, i])
            counts[r] += 1
            if r == WRONG_AGAIN:
                w, beta = seq[0], seq.index(M)
                mu = beta + next(k for k, v in enumerate(seq[beta:]) if v != M)
                w2 = seq[mu]
                assert w != x and w2 != x and w != M and w2 != M
                assert 1 <= beta <= T - 1 and beta + 1 <= mu <= T
                assert seq == [w] * beta + [M] * (mu - beta) + [w2] * (T + 1 - mu)
                replays += w2 == w
            elif r == WRONG_REVEAL:
                assert seq[0] == M and seq[-1] == M
        assert torch.equal(inst.z[b], traj[b, int(inst.t[b])])
    n_edit = sum(counts[k] for k in (WRONG, MASK, WRONG_REVEAL, WRONG_AGAIN))
    assert n_edit == int(inst.edit_set.sum())
    # drawn last, wrong again wins: P = 0.5; wrong reveal keeps 0.3 * 0.5 of the edit positions
    assert 0.45 < counts[WRONG_AGAIN] / n_edit < 0.55 and 0.11 < counts[WRONG_REVEAL] / n_edit < 0.19
    assert 0.05 < replays / counts[WRONG_AGAIN] < 0.2  # 1/8 expected
