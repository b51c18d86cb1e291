"""The model input (Eq. 2 + RMSNorm) at inference (``model_input``) and in training
(``rm_model_input``) against a naive per-position, per-step computation for Table 2's variants.

These fail when the input ignores the history (e.g. ``model_input`` returning e^(t) alone).
"""

import math

import pytest
import torch

from fakes import TableDenoiser
from rm_core.history import HistoryConfig, model_input
from rm_core.objective import rm_model_input
from rm_core.trajectory import EditSetSize, UniformProposal, build_instances

# Table 2's variants (EQUATIONS.md): none / sum / decay / her
VARIANTS = [
    HistoryConfig(kind="none"),
    HistoryConfig(kind="sum"),
    HistoryConfig(kind="decay", gamma=0.7),
    HistoryConfig(kind="her", gamma=0.8),
]


def naive_rotate(v, delta, base=10000.0):
    """R_delta on one vector: a 2x2 rotation by delta * base^(-2j/d) on block (2j, 2j+1)."""
    d = len(v)
    out = [0.0] * d
    for j in range(d // 2):
        th = delta * base ** (-2.0 * j / d)
        x, y = float(v[2 * j]), float(v[2 * j + 1])
        out[2 * j] = math.cos(th) * x - math.sin(th) * y
        out[2 * j + 1] = math.sin(th) * x + math.cos(th) * y
    return out


def naive_state(seg_tokens, seg_starts, s):
    """x^(s) of one position: the token of the last segment that has started by step s."""
    tok = None
    for k in range(len(seg_tokens)):
        if int(seg_starts[k]) <= s:
            tok = int(seg_tokens[k])
    return tok


def naive_input_one(embs, t, cfg, is_editable):
    """One position: embs[k] = e^(k) (lists of floats); returns the model input at step t."""
    e = embs[t]
    if cfg.kind == "none" or not is_editable:
        return list(e)
    gamma = 1.0 if cfg.kind == "sum" else cfg.gamma
    d = len(e)
    a = [0.0] * d
    for k in range(t + 1):
        v = naive_rotate(embs[k], k - t, cfg.base) if cfg.kind == "her" else list(embs[k])
        for j in range(d):
            a[j] += gamma ** (t - k) * v[j]
    rms_a = math.sqrt(sum(x * x for x in a) / d + 1e-6)
    rms_e = math.sqrt(sum(x * x for x in e) / d + 1e-6)
    return [x / rms_a * rms_e for x in a]


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.kind)
def test_rm_model_input_matches_naive_history(cfg):
    """Training side (Appendix C step 9): per position, rebuild x^(0..t) step by step and sum Eq. 2."""
    T, V, M, d = 6, 9, 8, 8
    model = TableDenoiser(vocab_size=V, d=d, n_positions=12, seed=4, mask_id=M)
    g = torch.Generator().manual_seed(7)
    B, N = 6, 12
    target = torch.randint(0, M, (B, N), generator=g)
    editable = torch.ones(B, N, dtype=torch.bool)
    editable[:, :2] = False
    t = torch.tensor([0, 1, 2, 3, 4, 5])
    inst = build_instances(target, editable, T, M, UniformProposal(range(M)), g, EditSetSize("all"), p_wrong=0.6, t=t)
    got = rm_model_input(model, inst, editable, cfg, T).detach().double()
    wte = model.wte.detach().double()
    differs = 0
    for b in range(B):
        tb = int(inst.t[b])
        for i in range(N):
            states = [naive_state(inst.seg_tokens[b, i], inst.seg_starts[b, i], s) for s in range(tb + 1)]
            embs = [wte[s].tolist() for s in states]
            want = torch.tensor(naive_input_one(embs, tb, cfg, bool(editable[b, i])), dtype=torch.float64)
            assert torch.allclose(got[b, i], want, atol=1e-4), (cfg.kind, b, i, (got[b, i] - want).abs().max())
            differs += int(not torch.allclose(want, wte[states[-1]], atol=1e-3))
    # the cases are not trivial: with history, many inputs differ from the plain current embedding
    assert (differs > 10) == cfg.enabled


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.kind)
def test_inference_input_matches_naive_history(cfg):
    """Inference side: the input rm_sample feeds the model at each turn, captured, against the naive sum."""
    V, M, d, steps = 7, 6, 8, 5

    class Spy(TableDenoiser):
        def logits(self, inputs_embeds, attention_mask=None):
            seen.append(inputs_embeds.detach().double().clone())
            return super().logits(inputs_embeds, attention_mask)

    from rm_core.rule import rm_sample

    seen = []
    model = Spy(vocab_size=V, d=d, n_positions=8, seed=11, mask_id=M)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, V, (3, 8), generator=g)
    editable = torch.ones(3, 8, dtype=torch.bool)
    editable[:, 0] = False
    res = rm_sample(model, x0, editable, steps, history=cfg, return_trajectory=True)
    assert len(seen) == steps
    wte = model.wte.detach().double()
    traj = res.trajectory
    assert (traj[:, 1:] != traj[:, :-1]).any()  # the tokens do change, so there is history to read
    for t in range(steps):
        for b in range(3):
            for i in range(8):
                embs = [wte[int(traj[b, k, i])].tolist() for k in range(t + 1)]
                want = torch.tensor(naive_input_one(embs, t, cfg, bool(editable[b, i])), dtype=torch.float64)
                assert torch.allclose(seen[t][b, i], want, atol=1e-4), (cfg.kind, t, b, i)


def test_model_input_is_rescaled_rmsnorm_of_history():
    """model_input(a, e) on its own: a * rms(e) / rms(a) at editable positions, e elsewhere."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(2, 5, 6, generator=g, dtype=torch.float64) * 4
    e = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    editable = torch.tensor([[1, 0, 1, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    out = model_input(a, e, editable)
    for b in range(2):
        for i in range(5):
            av, ev = a[b, i].tolist(), e[b, i].tolist()
            if editable[b, i]:
                ra = math.sqrt(sum(x * x for x in av) / 6 + 1e-6)
                re_ = math.sqrt(sum(x * x for x in ev) / 6 + 1e-6)
                want = [x / ra * re_ for x in av]
            else:
                want = ev
            assert torch.allclose(out[b, i], torch.tensor(want, dtype=torch.float64), atol=1e-10), (b, i)
    # without an editable mask every position is normalised
    out_all = model_input(a, e)
    assert torch.allclose(out_all[0, 1] * a[0, 1].pow(2).mean().add(1e-6).sqrt(),
                          a[0, 1] * e[0, 1].pow(2).mean().add(1e-6).sqrt(), atol=1e-10)


def test_model_input_rmsnorm_eps_is_1e_6():
    """At a small embedding scale the RMSNorm epsilon (1e-6, ours) shows: a tiny history, e at RMS 1e-3."""
    a = torch.full((1, 1, 4), 1e-4, dtype=torch.float64)
    e = torch.full((1, 1, 4), 1e-3, dtype=torch.float64)
    want = 1e-4 * math.sqrt(1e-6 + 1e-6) / math.sqrt(1e-8 + 1e-6)
    assert abs(float(model_input(a, e)[0, 0, 0]) - want) < 1e-9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_inputs_stay_on_the_device():
    """Every random draw of a training instance and its model input happen on the target's device."""
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    target = torch.randint(0, 8, (4, 10), device=dev)
    editable = torch.ones(4, 10, dtype=torch.bool, device=dev)
    inst = build_instances(target, editable, 6, 8, UniformProposal(range(8)), g, EditSetSize("fraction", 0.2, 0.8))
    assert all(v.device.type == "cuda" for v in (inst.z, inst.seg_tokens, inst.seg_starts, inst.t, inst.rule))
    model = TableDenoiser(vocab_size=9, d=8, n_positions=10, seed=0, mask_id=8).to(dev)
    assert rm_model_input(model, inst, editable, HistoryConfig(kind="her"), 6).device.type == "cuda"
