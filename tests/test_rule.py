"""Eq. 1 against a per-position Python loop; the sampling loop against a naive loop with HR."""

import torch

from fakes import TableDenoiser
from rm_core.history import HistoryConfig
from rm_core.rule import decision_rule, rm_sample


def naive_rule(logits, x, editable, mask_id, forbid=()):
    B, N, V = logits.shape
    out = x.clone()
    for b in range(B):
        for i in range(N):
            if not editable[b, i]:
                continue
            p = torch.softmax(logits[b, i].double(), -1).tolist()
            tok = int(x[b, i])
            if tok == mask_id:
                best, best_v = None, -1.0
                for v in range(V):
                    if v == mask_id or v in forbid:
                        continue
                    if p[v] > best_v:
                        best, best_v = v, p[v]
                out[b, i] = best
            elif p[mask_id] > p[tok]:
                out[b, i] = mask_id
    return out


def test_decision_rule_matches_naive():
    g = torch.Generator().manual_seed(0)
    B, N, V, M = 6, 20, 9, 8
    for trial in range(5):
        logits = torch.randn(B, N, V, generator=g) * 2
        x = torch.randint(0, V, (B, N), generator=g)
        editable = torch.rand(B, N, generator=g) < 0.7
        for forbid in ((), (0, 3)):
            got = decision_rule(logits, x, editable, M, forbid)
            assert torch.equal(got, naive_rule(logits, x, editable, M, forbid))


def test_ties_keep_and_non_edit_positions_never_change():
    logits = torch.zeros(1, 3, 4)  # uniform: p(M) == p(token) -> keep
    x = torch.tensor([[0, 1, 3]])
    assert torch.equal(decision_rule(logits, x, torch.ones(1, 3, dtype=torch.bool), 3)[0, :2], x[0, :2])
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 10, 6, generator=g)
    x = torch.randint(0, 6, (4, 10), generator=g)
    editable = torch.rand(4, 10, generator=g) < 0.5
    out = decision_rule(logits, x, editable, 5)
    assert torch.equal(out[~editable], x[~editable])


def naive_rm_sample(model, x0, editable, steps, cfg):
    """Materialise every state and recompute the history and its RMSNorm from scratch at each step."""
    from test_model_input import naive_input_one

    states = [x0.clone()]
    wte = model.wte.detach().double()
    B, N = x0.shape
    for t in range(steps):
        x = states[-1]
        inp = torch.zeros(B, N, wte.shape[1], dtype=torch.float64)
        for b in range(B):
            for i in range(N):
                embs = [wte[int(s[b, i])].tolist() for s in states]
                inp[b, i] = torch.tensor(naive_input_one(embs, t, cfg, bool(editable[b, i])), dtype=torch.float64)
        logits = model.logits(inp.float())
        states.append(naive_rule(logits, x, editable, model.mask_id))
    return torch.stack(states, 1)


def test_rm_sample_matches_naive_loop_with_history():
    model = TableDenoiser(vocab_size=7, d=8, n_positions=6, seed=3)
    g = torch.Generator().manual_seed(5)
    x0 = torch.randint(0, 7, (3, 6), generator=g)
    editable = torch.tensor([[0, 1, 1, 1, 1, 1]] * 3, dtype=torch.bool)
    for cfg in (HistoryConfig(kind="none"), HistoryConfig(kind="sum"), HistoryConfig(kind="decay", gamma=0.6),
                HistoryConfig(kind="her", gamma=0.8)):
        res = rm_sample(model, x0, editable, steps=4, history=cfg, return_trajectory=True)
        ref = naive_rm_sample(model, x0, editable, 4, cfg)
        assert torch.equal(res.trajectory, ref), cfg
        assert torch.equal(res.x, ref[:, -1])


class ScriptedDenoiser(torch.nn.Module):
    """One-hot input; logits depend only on the current token: BAD -> re-mask, M -> reveal GOOD,
    GOOD -> keep. A row [BAD, GOOD] goes BAD -> M (turn 1) -> GOOD (turn 2) and then stays fixed."""

    GOOD, BAD, mask_id = 0, 1, 2

    def __init__(self):
        super().__init__()
        self.calls = 0
        table = torch.zeros(3, 3)
        table[self.BAD] = torch.tensor([0.0, 1.0, 5.0])  # p(M) > p(BAD): re-mask
        table[self.mask_id] = torch.tensor([4.0, 1.0, 6.0])  # reveal argmax over v != M: GOOD
        table[self.GOOD] = torch.tensor([5.0, 0.0, 1.0])  # p(GOOD) > p(M): keep
        self.table = table

    def embed(self, ids):
        return torch.nn.functional.one_hot(ids, 3).float()

    def logits(self, inputs_embeds, attention_mask=None):
        self.calls += 1
        return inputs_embeds @ self.table


def test_default_runs_all_turns_and_early_stop_stops_at_the_fixed_point():
    G, Bd, M = ScriptedDenoiser.GOOD, ScriptedDenoiser.BAD, ScriptedDenoiser.mask_id
    x0 = torch.tensor([[Bd, G, G], [G, G, G], [M, Bd, G]])
    editable = torch.ones(3, 3, dtype=torch.bool)
    want = torch.tensor([  # (B, 4, N): x^(0..3); every row is fixed from x^(2) on
        [[Bd, G, G], [M, G, G], [G, G, G], [G, G, G]],
        [[G, G, G], [G, G, G], [G, G, G], [G, G, G]],
        [[M, Bd, G], [G, M, G], [G, G, G], [G, G, G]],
    ])
    model = ScriptedDenoiser()
    full = rm_sample(model, x0, editable, steps=7, return_trajectory=True)
    assert model.calls == 7 and full.trajectory.shape == (3, 8, 3)  # the default runs all T turns
    assert torch.equal(full.trajectory[:, :4], want)
    assert (full.trajectory[:, 4:] == G).all()
    assert full.turns.tolist() == [2, 0, 2]  # the last turn that changed each row (0: never changed)
    model = ScriptedDenoiser()
    stopped = rm_sample(model, x0, editable, steps=7, early_stop=True, return_trajectory=True)
    # turn 3 changes nothing: stop after it, with x^(0..3)
    assert model.calls == 3 and torch.equal(stopped.trajectory, want)
    assert torch.equal(stopped.x, full.x) and stopped.turns.tolist() == [2, 0, 2]
    # a row that keeps changing is not stopped by a row at its fixed point
    model = ScriptedDenoiser()
    late = rm_sample(model, torch.tensor([[G, G, G], [Bd, Bd, G]]), torch.ones(2, 3, dtype=torch.bool), steps=7,
                     early_stop=True)
    assert model.calls == 3 and late.turns.tolist() == [0, 2]


def test_turns_match_naive_on_random_model():
    """turns = the last 1-based turn whose state differs from the previous one, per row."""
    model = TableDenoiser(vocab_size=6, d=6, n_positions=5, seed=2)
    g = torch.Generator().manual_seed(9)
    x0 = torch.randint(0, 6, (8, 5), generator=g)
    editable = torch.rand(8, 5, generator=g) < 0.8
    for cfg in (HistoryConfig(kind="none"), HistoryConfig(kind="her", gamma=0.9)):
        res = rm_sample(model, x0, editable, steps=6, history=cfg, return_trajectory=True)
        traj = res.trajectory
        for b in range(8):
            last = 0
            for t in range(1, 7):
                if not torch.equal(traj[b, t], traj[b, t - 1]):
                    last = t
            assert int(res.turns[b]) == last, (cfg.kind, b)


def test_sampling_defaults_no_trajectory_no_autograd():
    """Without return_trajectory no states are kept; the model runs without building a graph."""
    grad_seen = []

    class Spy(TableDenoiser):
        def logits(self, inputs_embeds, attention_mask=None):
            grad_seen.append(torch.is_grad_enabled())
            return super().logits(inputs_embeds, attention_mask)

    model = Spy(vocab_size=5, d=4, n_positions=3, seed=0)
    res = rm_sample(model, torch.full((2, 3), model.mask_id), torch.ones(2, 3, dtype=torch.bool), steps=2)
    assert res.trajectory is None and grad_seen == [False, False]
