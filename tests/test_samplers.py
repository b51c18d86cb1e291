"""Low-confidence remasking against a naive loop."""

import math

import numpy as np
import pytest
import torch

from fakes import TableDenoiser
from rm_core.samplers import low_confidence_sample, predict, reveal_counts


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


def naive_plan(n, steps, schedule):
    """Tokens to commit per step: LLaDA's even split (remainder first) or Lumina-DiMOO's MaskGIT
    cosine: after step s < steps - 1 keep max(1, floor(n cos(pi/2 (s+1)/steps))) masked, computed
    in float32 as upstream (numpy here), but at most one fewer than before the step; none after
    the last step."""
    if schedule == "linear":
        return [n // steps + (1 if s < n % steps else 0) for s in range(steps)]
    out, r = [], n
    for s in range(steps):
        arg = np.float32(np.float32(math.pi / 2) * np.float32((s + 1) / steps))
        cos32 = np.float32(math.cos(float(arg)))
        keep = 0 if s == steps - 1 else min(max(1, int(np.floor(np.float32(n) * cos32))), max(r - 1, 0))
        out.append(r - keep)
        r = keep
    return out


def naive_blocks_low_conf(model, x0, editable, steps, block_length, schedule):
    """Blocks of ``block_length`` editable positions, left to right, steps // n_blocks steps each;
    per step commit the plan's count of most confident argmax (non-MASK) predictions."""
    x = x0.clone()
    B, N = x.shape
    n_blocks = max(1, math.ceil(int(editable.sum(-1).max()) / block_length))
    spb = max(1, steps // n_blocks)
    states = [x.clone()]
    for blk in range(n_blocks):
        members = []
        for b in range(B):
            ed = [i for i in range(N) if editable[b, i]]
            members.append(set(ed[blk * block_length:(blk + 1) * block_length]))
        plans = [naive_plan(sum(int(x[b, i] == model.mask_id) for i in members[b]), spb, schedule) for b in range(B)]
        for s in range(spb):
            if not any(p[s] for p in plans):
                continue
            logits = model.logits(model.embed(x)).detach()
            nxt = x.clone()
            for b in range(B):
                cands = []
                for i in sorted(members[b]):
                    if x[b, i] == model.mask_id:
                        l = logits[b, i].clone()
                        l[model.mask_id] = -float("inf")
                        v = int(l.argmax())
                        cands.append((float(torch.softmax(logits[b, i], -1)[v]), -i, i, v))
                cands.sort(reverse=True)
                for _, _, i, v in cands[: plans[b][s]]:
                    nxt[b, i] = v
            x = nxt
            states.append(x.clone())
    return x, torch.stack(states, 1)


def test_reveal_counts_match_naive_plans():
    for schedule in ("linear", "cosine"):
        for steps in (1, 2, 3, 5, 8):
            n = torch.arange(0, 30)
            got = reveal_counts(n, steps, schedule)
            want = torch.tensor([naive_plan(int(k), steps, schedule) for k in n])
            assert torch.equal(got, want), (schedule, steps)
    assert torch.equal(reveal_counts(torch.tensor([7]), 3), torch.tensor([[3, 2, 2]]))  # linear by default
    with pytest.raises(ValueError, match=r"^steps must be positive, got 0$"):
        reveal_counts(torch.tensor([3]), 0)
    with pytest.raises(ValueError, match=r"^schedule must be 'linear' or 'cosine', got 'exp'$"):
        reveal_counts(torch.tensor([3]), 2, "exp")


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_blocks_and_schedules_match_naive(schedule):
    model = TableDenoiser(vocab_size=9, d=6, n_positions=14, seed=4)
    g = torch.Generator().manual_seed(8)
    x0 = torch.randint(0, 8, (4, 14), generator=g)
    editable = torch.zeros(4, 14, dtype=torch.bool)
    editable[:, 2:] = True  # 12 answer positions in every row: blocks must divide them, as in LLaDA
    x0[editable & (torch.rand(4, 14, generator=g) < 0.85)] = model.mask_id
    for steps, block in ((7, None), (12, 4), (9, 4), (8, 3), (12, 1), (6, 12)):
        got, traj = low_confidence_sample(model, x0, editable, steps, block_length=block, schedule=schedule,
                                          return_trajectory=True)
        want, want_traj = naive_blocks_low_conf(model, x0, editable, steps, block or 12, schedule)
        assert torch.equal(got, want) and torch.equal(traj, want_traj), (steps, block)
        assert torch.equal(got[~editable], x0[~editable])


def test_forbidden_ids_are_never_revealed_and_attention_mask_is_passed():
    """... and the sampler builds no autograd graph."""
    seen, grad = [], []

    class Spy(TableDenoiser):
        def logits(self, inputs_embeds, attention_mask=None):
            seen.append(attention_mask)
            grad.append(torch.is_grad_enabled())
            return super().logits(inputs_embeds, attention_mask)

    model = Spy(vocab_size=6, d=4, n_positions=8, seed=5)
    x0 = torch.full((5, 8), model.mask_id)
    editable = torch.ones(5, 8, dtype=torch.bool)
    free = low_confidence_sample(model, x0, editable, steps=4)
    assert (free == 0).any() and (free == 1).any()  # the unconstrained argmax does use 0 and 1
    am = torch.ones(5, 8, dtype=torch.long)
    seen.clear()
    got = low_confidence_sample(model, x0, editable, steps=4, forbid_ids=[0, 1], attention_mask=am)
    assert not ((got == 0) | (got == 1) | (got == model.mask_id)).any()
    assert len(seen) == 4 and all(a is am for a in seen)
    assert grad and not any(grad)


def test_predict_on_batched_logits_matches_naive():
    """predict() on (B, N, V) logits with its defaults: argmax over the ids that are neither MASK nor
    forbidden, log confidence = log softmax over the whole vocabulary at that id ("vocab")."""
    g = torch.Generator().manual_seed(3)
    B, N, V, M = 2, 3, 7, 6
    logits = torch.randn(B, N, V, generator=g)
    logits[0, 1, M] = 50.0  # MASK would win the argmax
    pred, logc = predict(logits, M, forbid_ids=[2])
    assert pred.shape == logc.shape == (B, N)
    for b in range(B):
        for i in range(N):
            row = [float(v) for v in logits[b, i]]
            best = max((v for v in range(V) if v not in (M, 2)), key=lambda v: row[v])
            lse = math.log(sum(math.exp(v) for v in row))
            assert int(pred[b, i]) == best
            assert abs(float(logc[b, i]) - (row[best] - lse)) < 1e-5
    # "allowed": the softmax over the allowed ids only
    _, logc = predict(logits, M, forbid_ids=[2], confidence="allowed")
    row = [float(v) for v in logits[0, 1]]
    lse = math.log(sum(math.exp(row[v]) for v in range(V) if v not in (M, 2)))
    assert abs(float(logc[0, 1]) - (row[int(pred[0, 1])] - lse)) < 1e-5
    drawn, _ = predict(logits, M, forbid_ids=[2], temperature=1.0, generator=g)
    assert drawn.shape == (B, N) and not ((drawn == M) | (drawn == 2)).any()
    with pytest.raises(ValueError, match=r"^confidence must be one of \('vocab', 'allowed'\), got 'codes'$"):
        predict(logits, M, confidence="codes")
