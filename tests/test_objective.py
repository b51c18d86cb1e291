"""Eq. 3/5 labels and Eq. 4/6 loss against naive per-position loops; the MDM loss."""

import math

import torch

from rm_core.objective import IGNORE, mdm_corrupt, mdm_loss, oracle_labels, rm_loss


def naive_label(z, x, M):
    if z == M:
        return x
    if z != x:
        return M
    return x


def test_oracle_labels_match_eq5_on_random_states():
    g = torch.Generator().manual_seed(0)
    M = 9
    z = torch.randint(0, 10, (8, 30), generator=g)
    x = torch.randint(0, 9, (8, 30), generator=g)
    editable = torch.rand(8, 30, generator=g) < 0.8
    lab = oracle_labels(z, x, editable, M)
    for b in range(8):
        for i in range(30):
            want = naive_label(int(z[b, i]), int(x[b, i]), M) if editable[b, i] else IGNORE
            assert int(lab[b, i]) == want


def test_rm_loss_matches_naive_and_parts_add_up():
    g = torch.Generator().manual_seed(1)
    B, N, V, M, eps = 4, 12, 6, 5, 1e-8
    logits = torch.randn(B, N, V, generator=g) * 3
    logits[0, 0, 2] = -80.0  # force a clipped probability
    x = torch.randint(0, 5, (B, N), generator=g)
    x[0, 0] = 2
    z = torch.where(torch.rand(B, N, generator=g) < 0.3, torch.full_like(x, M), x)
    z = torch.where(torch.rand(B, N, generator=g) < 0.2, torch.randint(0, 5, (B, N), generator=g), z)
    z[0, 0] = M
    editable = torch.rand(B, N, generator=g) < 0.9
    editable[0, 0] = True
    w = torch.rand(B, N, generator=g) + 0.5
    out = rm_loss(logits, z, x, editable, M, weights=w, eps=eps)
    num = {"reveal": 0.0, "mask": 0.0, "keep": 0.0}
    den = 0.0
    for b in range(B):
        for i in range(N):
            if not editable[b, i]:
                continue
            p = torch.softmax(logits[b, i].double(), -1)
            lab = naive_label(int(z[b, i]), int(x[b, i]), M)
            nll = -math.log(max(float(p[lab]), eps))
            kind = "reveal" if z[b, i] == M else ("mask" if z[b, i] != x[b, i] else "keep")
            num[kind] += float(w[b, i]) * nll
            den += float(w[b, i])
    for k in num:
        assert abs(float(getattr(out, k)) - num[k] / den) < 1e-4, k
    assert abs(float(out.total) - sum(num.values()) / den) < 1e-4
    assert out.counts["reveal"] + out.counts["mask"] + out.counts["keep"] == int(editable.sum())


def test_eps_clip_caps_each_position_and_leaves_others():
    """-log max(p, eps): a position with p(tau) far below eps costs exactly -log eps, one above it -log p."""
    V, M = 4, 3
    logits = torch.zeros(1, 2, V)
    logits[0, 0, 1] = -200.0  # label 1 at position 0: p ~ e^-200, far below any eps used here
    logits[0, 1, 1] = -3.0  # label 1 at position 1: p ~ 0.017, above eps
    z = torch.tensor([[M, 1]])  # reveal at 0, keep at 1
    x = torch.tensor([[1, 1]])
    editable = torch.ones(1, 2, dtype=torch.bool)
    p1 = float(torch.softmax(logits[0, 1].double(), -1)[1])
    for eps in (1e-8, 1e-4):
        out = rm_loss(logits, z, x, editable, M, eps=eps)
        assert abs(float(out.reveal) - (-math.log(eps)) / 2) < 1e-5, eps
        assert abs(float(out.keep) - (-math.log(p1)) / 2) < 1e-5, eps
    # the default eps is the paper's 1e-8 (B = -log 1e-8 ~ 18.42)
    only = rm_loss(logits[:, :1], z[:, :1], x[:, :1], editable[:, :1], M)
    assert abs(float(only.total) - 8 * math.log(10)) < 1e-4


def test_mdm_loss_matches_naive():
    g = torch.Generator().manual_seed(2)
    B, N, V, M = 3, 10, 7, 6
    target = torch.randint(0, 6, (B, N), generator=g)
    editable = torch.zeros(B, N, dtype=torch.bool)
    editable[:, 4:] = True
    x, masked, p = mdm_corrupt(target, editable, M, g)
    assert not masked[:, :4].any() and torch.equal(x[~masked], target[~masked])
    logits = torch.randn(B, N, V, generator=g)
    ref = 0.0
    for b in range(B):
        s = 0.0
        for i in range(N):
            if masked[b, i]:
                s += -float(torch.log_softmax(logits[b, i].double(), -1)[target[b, i]])
        ref += s / float(p[b]) / int(editable[b].sum())
    assert abs(float(mdm_loss(logits, target, masked, p, editable)) - ref / B) < 1e-4


def test_labels_ignore_is_minus_100_and_loss_is_scale_free():
    """IGNORE is PyTorch's ignore_index (-100); the loss is a weighted mean (weights' scale cancels,
    also when they sum below 1); as_floats carries the parts and the counts."""
    assert IGNORE == -100
    z = torch.tensor([[0, 5, 2]])
    x = torch.tensor([[0, 1, 1]])
    assert oracle_labels(z, x, torch.tensor([[True, True, False]]), 5).tolist() == [[0, 1, -100]]
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 6, generator=g)
    x = torch.randint(0, 5, (2, 6), generator=g)
    z = torch.where(torch.rand(2, 6, generator=g) < 0.5, torch.full_like(x, 5), (x + 1) % 5)
    z[0, 0] = x[0, 0]
    editable = torch.ones(2, 6, dtype=torch.bool)
    w = torch.rand(2, 6, generator=g) + 0.1
    a = rm_loss(logits, z, x, editable, 5, weights=w)
    b = rm_loss(logits, z, x, editable, 5, weights=w * 1e-3)
    for k in ("total", "reveal", "mask", "keep"):
        assert abs(float(getattr(a, k)) - float(getattr(b, k))) < 1e-5, k
    unweighted = rm_loss(logits, z, x, editable, 5)
    p = torch.softmax(logits.double(), -1)
    lab = oracle_labels(z, x, editable, 5)
    want = float(-torch.log(p.gather(-1, lab[..., None])).mean())
    assert abs(float(unweighted.total) - want) < 1e-5
    f = a.as_floats()
    assert set(f) == {"total", "reveal", "mask", "keep", "n_reveal", "n_mask", "n_keep"}
    assert f["total"] == float(a.total) and f["n_keep"] == int(((z == x) & editable).sum())
    assert f["n_reveal"] == int((z == 5).sum()) and f["n_mask"] == int(((z != 5) & (z != x)).sum())


def test_position_weights_naive():
    from rm_core.objective import position_weights

    edit = torch.tensor([[True, False, False, True]])
    editable = torch.tensor([[True, True, False, True]])
    assert position_weights(edit, editable, 0.25).tolist() == [[1.0, 0.25, 0.0, 1.0]]


def test_mdm_corrupt_mask_rate_is_p():
    """LLaDA's forward process: p = (1 - 1e-3) t + 1e-3, t ~ U(0, 1); each editable token masked w.p. p
    (per-row binomial bound) and p uniform on [1e-3, 1] (KS distance below 1.95/sqrt(n))."""
    g = torch.Generator().manual_seed(4)
    B, N = 400, 500
    target = torch.randint(0, 6, (B, N), generator=g)
    editable = torch.ones(B, N, dtype=torch.bool)
    editable[:, :20] = False
    x, masked, p = mdm_corrupt(target, editable, 6, g)
    L = 480
    assert not masked[:, :20].any() and torch.equal(x == 6, masked)
    p = p.double()
    assert (p >= 1e-3 - 1e-9).all() and (p <= 1 + 1e-9).all()
    k = masked.sum(-1).double()
    assert ((k - L * p).abs() <= 4.5 * (L * p * (1 - p)).sqrt() + 1).all()
    u = ((p - 1e-3) / (1 - 1e-3)).sort().values
    i = torch.arange(1, B + 1, dtype=torch.float64)
    assert float(torch.maximum(i / B - u, u - (i - 1) / B).max()) < 1.95 / B ** 0.5
    # the range is exactly [1e-3, 1]: 20,000 draws reach within 2e-4 of both ends
    _, _, p = mdm_corrupt(torch.zeros(20000, 1, dtype=torch.long), torch.ones(20000, 1, dtype=torch.bool), 6, g)
    assert 1e-3 <= float(p.min()) < 1.2e-3 and 0.9998 < float(p.max()) <= 1.0
    # a row with nothing editable costs nothing (no division by zero)
    none = torch.zeros(1, 4, dtype=torch.bool)
    logits = torch.randn(1, 4, 7, generator=g)
    assert float(mdm_loss(logits, target[:1, :4], none, torch.tensor([0.5]), none)) == 0.0


def test_mdm_loss_row_with_one_editable_position():
    """|editable_b| = 1 divides by 1; an all-ignored RM batch costs 0, not NaN."""
    logits = torch.zeros(1, 3, 4)
    target = torch.tensor([[1, 2, 3]])
    editable = torch.tensor([[False, True, False]])
    masked = editable.clone()
    assert abs(float(mdm_loss(logits, target, masked, torch.tensor([0.5]), editable)) - math.log(4) / 0.5) < 1e-6
    out = rm_loss(logits, target, target, torch.zeros(1, 3, dtype=torch.bool), 3)
    assert float(out.total) == 0.0 and out.counts == {"reveal": 0, "mask": 0, "keep": 0}
