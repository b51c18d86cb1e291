"""Low-confidence remasking against a naive loop."""

import torch

from fakes import TableDenoiser
from rm_core.samplers import low_confidence_sample, reveal_counts


def naive_low_conf(model, x0, editable, steps):
    x = x0.clone()
    B, N = x.shape
    for b in range(B):
        n = int(((x[b] == model.mask_id) & editable[b]).sum())
        plan = [n // steps + (1 if s < n % steps else 0) for s in range(steps)]
        for s in range(steps):
            logits = model.logits(model.embed(x[b:b + 1]))[0].detach()
            cands = []
            for i in range(N):
                if editable[b, i] and x[b, i] == model.mask_id:
                    l = logits[i].clone()
                    l[model.mask_id] = -float("inf")
                    v = int(l.argmax())
                    cands.append((float(torch.softmax(logits[i], -1)[v]), -i, i, v))
            cands.sort(reverse=True)
            for _, _, i, v in cands[: plan[s]]:
                x[b, i] = v
    return x


def test_low_confidence_matches_naive():
    model = TableDenoiser(vocab_size=8, d=6, n_positions=10, seed=1)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 7, (3, 10), generator=g)
    editable = torch.zeros(3, 10, dtype=torch.bool)
    editable[:, 3:] = True
    x0[editable] = model.mask_id
    got = low_confidence_sample(model, x0, editable, steps=3)
    assert torch.equal(got, naive_low_conf(model, x0, editable, 3))
    assert not (got == model.mask_id).any()
    assert torch.equal(got[:, :3], x0[:, :3])


def test_reveal_counts_sum_and_blocks():
    n = torch.tensor([0, 5, 17])
    for sched in ("linear", "cosine"):
        c = reveal_counts(n, 4, sched)
        assert torch.equal(c.sum(-1), n) and (c >= 0).all()
    model = TableDenoiser(vocab_size=8, d=6, n_positions=12, seed=2)
    x0 = torch.full((2, 12), model.mask_id)
    editable = torch.ones(2, 12, dtype=torch.bool)
    x, traj = low_confidence_sample(model, x0, editable, steps=6, block_length=4, return_trajectory=True)
    # block 0 (positions 0-3) is complete before block 1 starts
    after_first_block = traj[:, 2]
    assert not (after_first_block[:, :4] == model.mask_id).any()
    assert (after_first_block[:, 4:] == model.mask_id).all()
    assert not (x == model.mask_id).any()
