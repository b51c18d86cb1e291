"""The vanilla MDM objective of the baselines (rm_core.objective.mdm_corrupt / mdm_loss), both
forms, against naive per-row, per-position loops written here."""

import math

import pytest
import torch

from rm_core.objective import mdm_corrupt, mdm_loss

M = 9


def _draws(seed, B, N):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, generator=g), torch.rand(B, N, generator=g)


@pytest.mark.parametrize("form", ["llada", "dimoo"])
def test_mdm_corrupt_matches_naive_forward_process(form):
    B, N = 64, 12
    target = torch.randint(0, M, (B, N), generator=torch.Generator().manual_seed(1))
    editable = torch.zeros(B, N, dtype=torch.bool)
    editable[:, 3:11] = True
    editable[::3, 0] = True  # rows differ in their number of editable positions
    x, masked, p = mdm_corrupt(target, editable, M, torch.Generator().manual_seed(7), form=form)
    u, score = _draws(7, B, N)
    for b in range(B):
        ed = [i for i in range(N) if editable[b, i]]
        if form == "llada":
            pb = (1 - 1e-3) * float(u[b]) + 1e-3
            want = {i for i in ed if float(score[b, i]) < pb}
            assert abs(float(p[b]) - pb) < 1e-6
        else:
            n = max(1, int(len(ed) * math.cos(math.pi * float(u[b]) / 2)))
            want = set(sorted(ed, key=lambda i: float(score[b, i]))[:n])
            assert float(p[b]) == 1.0
        got = {i for i in range(N) if masked[b, i]}
        assert got == want, (b, got, want)
        for i in range(N):
            assert int(x[b, i]) == (M if i in want else int(target[b, i]))


def test_dimoo_masks_at_least_one_and_llada_masks_about_t():
    B, N = 4000, 20
    editable = torch.ones(B, N, dtype=torch.bool)
    target = torch.zeros(B, N, dtype=torch.long)
    _, masked, _ = mdm_corrupt(target, editable, M, torch.Generator().manual_seed(0), form="dimoo")
    assert (masked.sum(-1) >= 1).all()
    # E[floor(L cos(pi u / 2))] over u ~ U(0, 1) with L = 20: about 20 * 2/pi - 0.5 (floor), i.e. ~12.2
    assert abs(float(masked.sum(-1).float().mean()) - (20 * 2 / math.pi - 0.5)) < 0.3
    _, masked, p = mdm_corrupt(target, editable, M, torch.Generator().manual_seed(0), form="llada")
    assert abs(float(masked.float().mean()) - 0.5) < 0.02 and abs(float(p.mean()) - 0.5) < 0.02


@pytest.mark.parametrize("form", ["llada", "dimoo"])
def test_mdm_loss_matches_naive(form):
    g = torch.Generator().manual_seed(3)
    B, N, V = 5, 7, 11
    logits = torch.randn(B, N, V, generator=g)
    target = torch.randint(0, V, (B, N), generator=g)
    editable = torch.rand(B, N, generator=g) < 0.8
    editable[:, 0] = True
    masked = editable & (torch.rand(B, N, generator=g) < 0.5)
    p = torch.rand(B, generator=g) * 0.9 + 0.1
    num, den, rows = 0.0, 0, []
    for b in range(B):
        row = 0.0
        for i in range(N):
            if masked[b, i]:
                z = [math.exp(float(v)) for v in logits[b, i]]
                ce = -math.log(z[int(target[b, i])] / sum(z))
                num, den, row = num + ce, den + 1, row + ce
        rows.append(row / float(p[b]) / int(editable[b].sum()))
    want = num / den if form == "dimoo" else sum(rows) / B
    assert abs(float(mdm_loss(logits, target, masked, p, editable, form=form)) - want) < 1e-5


def test_unknown_form_is_an_error():
    t = torch.zeros(1, 3, dtype=torch.long)
    msg = r"^MDM objective form must be one of \('llada', 'dimoo'\), got 'maskgit'$"
    with pytest.raises(ValueError, match=msg):
        mdm_corrupt(t, t.bool(), M, torch.Generator(), form="maskgit")
    with pytest.raises(ValueError, match=msg):
        mdm_loss(torch.zeros(1, 3, M), t, t.bool(), torch.ones(1), t.bool(), form="maskgit")


def test_dimoo_loss_with_one_masked_position_is_its_cross_entropy():
    """The DiMOO mean divides by the number of masked positions, also when there is just one."""
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, M, generator=g)
    target = torch.randint(0, M, (2, 5), generator=g)
    masked = torch.zeros(2, 5, dtype=torch.bool)
    masked[1, 3] = True
    z = [math.exp(float(v)) for v in logits[1, 3]]
    want = -math.log(z[int(target[1, 3])] / sum(z))
    got = float(mdm_loss(logits, target, masked, torch.ones(2), torch.ones(2, 5, dtype=torch.bool), form="dimoo"))
    assert abs(got - want) < 1e-5

