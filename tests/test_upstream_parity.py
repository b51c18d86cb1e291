"""Parity with the upstream LLaDA and Lumina-DiMOO samplers (issue 14, items 1-3 and 6-8).

Each expectation is written from the upstream behaviour as described in the issue and the
upstream documentation, with an independent naive implementation here (numpy / loops), never
the library's helpers.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from rm_core.samplers import low_confidence_sample, reveal_counts


class FixedDenoiser(nn.Module):
    """logits[b, i] = table[i] whatever the input (positions do not interact)."""

    def __init__(self, table: torch.Tensor, mask_id: int):
        super().__init__()
        self.table = table
        self.mask_id = mask_id
        self.vocab_size = table.shape[-1]
        self.hidden_size = 1
        self.dummy = nn.Parameter(torch.zeros(1))

    def embed(self, ids):
        return ids[..., None].float()

    def logits(self, inputs_embeds, attention_mask=None):
        return self.table[None, : inputs_embeds.shape[1]].expand(inputs_embeds.shape[0], -1, -1).clone()


# ----------------------------------------------------------------------- item 1: code-only softmax
# vocabulary: codes 0-2, text ids 3-4, MASK 5
CODES, TEXT, MASK = [0, 1, 2], [3, 4], 5


def _two_position_table():
    neg = -10.0
    a = [2.0, 0.0, 0.0, 5.0, 5.0, neg]  # A: code 0 leads the codes, but text ids dominate the full softmax
    b = [1.0, 1.0 - 1e-3, neg, neg, neg, neg]  # B: two codes nearly tied, nothing else
    return torch.tensor([a, b])


def _code_only_conf(row):
    codes = row[CODES]
    p = np.exp(codes - codes.max())
    p /= p.sum()
    return p.max()


def _full_conf(row):
    p = np.exp(row - row.max())
    p /= p.sum()
    return p[CODES][np.argmax(row[CODES])]


def test_code_only_and_full_softmax_disagree_and_we_rank_like_dimoo():
    table = _two_position_table()
    t = table.numpy().astype(np.float64)
    # naive: which position does each rule commit first?
    first_code_only = int(np.argmax([_code_only_conf(r) for r in t]))
    first_full = int(np.argmax([_full_conf(r) for r in t]))
    assert first_code_only == 0 and first_full == 1  # the two rules disagree on this input
    model = FixedDenoiser(table, MASK)
    x0 = torch.full((1, 2), MASK)
    ed = torch.ones(1, 2, dtype=torch.bool)
    for conf, first in (("allowed", first_code_only), ("vocab", first_full)):
        _, traj = low_confidence_sample(model, x0, ed, 2, forbid_ids=TEXT, confidence=conf, return_trajectory=True)
        committed = (traj[0, 1] != MASK).nonzero().flatten().tolist()
        assert committed == [first], conf
        assert set(traj[0, -1].tolist()) <= set(CODES)


def test_image_pipeline_ranks_with_the_code_only_softmax():
    from rm_core.pipeline.image.evaluate import maskgit_kwargs

    kw = maskgit_kwargs({"maskgit_steps": 64, "temperature": 0.0})
    assert kw["confidence"] == "allowed" and kw["schedule"] == "cosine"


# ----------------------------------------------------------------------- item 2: schedule edge

def _dimoo_plan(n: int, steps: int) -> list[int]:
    """Lumina-DiMOO's i2i loop, in words: before step s < steps-1 it computes in float32
    keep = max(1, floor(n * cos(pi/2 * (s+1)/steps))) codes to stay masked; all masked codes are
    sampled and the `keep` least confident re-masked, where the count is clamped to (masked - 1),
    so at least one code is committed per step; the last step keeps none."""
    r, out = n, []
    for s in range(steps):
        if r == 0:
            out.append(0)
            continue
        if s == steps - 1:
            keep = 0
        else:
            arg = np.float32(0.5 * math.pi) * np.float32((s + 1) / steps)
            frac = np.float32(np.cos(np.float64(arg)))  # the float32 cosine, correctly rounded
            keep = max(1, int(np.floor(np.float32(n) * frac)))
        keep = min(keep, r - 1)
        out.append(r - keep)
        r = keep
    return out


@pytest.mark.parametrize("steps", [6, 16, 18, 64])
def test_cosine_plan_matches_dimoo_at_every_code_count(steps):
    n = torch.arange(1, 4097)
    got = reveal_counts(n, steps, "cosine").numpy()
    want = np.array([_dimoo_plan(int(k), steps) for k in n])
    bad = np.nonzero((got != want).any(1))[0]
    assert len(bad) == 0, f"differs at n = {(bad[:10] + 1).tolist()}"
    assert (got.sum(1) == n.numpy()).all()


def test_cosine_plan_float32_edge_example():
    # the example: 16 codes, 6 steps; after step 3 upstream keeps 7 masked (float32 cos(pi/3) < 0.5)
    plan = reveal_counts(torch.tensor([16]), 6, "cosine")[0].tolist()
    remaining = 16 - np.cumsum(plan)
    assert remaining[3] == 7
    assert remaining[-2] >= 1 and remaining[-1] == 0  # a code stays masked until the last step


# ----------------------------------------------------------------------- item 3: temperature

def test_temperature_zero_is_greedy_and_sampling_follows_the_softmax():
    # one position, vocabulary 4 codes + MASK; at tau = 1 the committed code ~ softmax(code logits)
    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5, 3.0]])  # MASK (id 4) has the highest logit: never drawn
    model = FixedDenoiser(logits, 4)
    B = 4000
    x0 = torch.full((B, 1), 4)
    ed = torch.ones(B, 1, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    x = low_confidence_sample(model, x0, ed, 1, confidence="allowed", temperature=1.0, generator=g)
    freq = np.bincount(x[:, 0].numpy(), minlength=5) / B
    p = np.exp([1.0, 0.0, -1.0, 0.5])
    p /= p.sum()
    assert freq[4] == 0
    assert np.abs(freq[:4] - p).max() < 0.03  # 4,000 draws: sd <= 0.008
    greedy = low_confidence_sample(model, x0[:2], ed[:2], 1, confidence="allowed", temperature=0.0)
    assert (greedy == 0).all()
    # tau = 0.5: Gumbel-max over logits / tau, i.e. softmax(2 * logits)
    x = low_confidence_sample(model, x0, ed, 1, confidence="allowed", temperature=0.5, generator=g)
    freq = np.bincount(x[:, 0].numpy(), minlength=5) / B
    p = np.exp(2 * np.array([1.0, 0.0, -1.0, 0.5]))
    assert np.abs(freq[:4] - p / p.sum()).max() < 0.03
    # no generator: the global generator, on the CPU
    torch.manual_seed(0)
    x = low_confidence_sample(model, x0[:500], ed[:500], 1, confidence="allowed", temperature=1.0)
    assert (x < 4).all() and len(set(x[:, 0].tolist())) == 4


def test_noisy_remasking_commits_in_proportion_to_confidence():
    # two positions, one committed at step 1 of 2. A: two equal codes (confidence 1/2 whatever is drawn);
    # B: four equal codes (1/4). With log p + tau*Gumbel (tau = 1) A wins with prob 0.5/(0.5+0.25) = 2/3.
    neg = -1e4
    table = torch.tensor([[0.0, 0.0, neg, neg, neg], [0.0, 0.0, 0.0, 0.0, neg]])
    model = FixedDenoiser(table, 4)
    B = 4000
    x0 = torch.full((B, 2), 4)
    ed = torch.ones(B, 2, dtype=torch.bool)
    g = torch.Generator().manual_seed(1)
    _, traj = low_confidence_sample(model, x0, ed, 2, confidence="allowed", temperature=1.0, generator=g,
                                    schedule="linear", return_trajectory=True)
    a_first = (traj[:, 1, 0] != 4).float().mean().item()
    assert abs(a_first - 2 / 3) < 0.03
    assert ((traj[:, 1] != 4).sum(1) == 1).all()
    # three positions with confidences 1/2, 1/4, 1/8: the first commit ~ (1/2, 1/4, 1/8) / (7/8). Gumbel
    # noise is not symmetric: ranking by log p - tau*Gumbel would give about (0.61, 0.29, 0.10).
    codes = 8
    table = torch.full((3, codes + 1), neg)
    for pos, n in enumerate((2, 4, 8)):
        table[pos, :n] = 0.0
    model = FixedDenoiser(table, codes)
    B = 20000
    x0 = torch.full((B, 3), codes)
    ed = torch.ones(B, 3, dtype=torch.bool)
    _, traj = low_confidence_sample(model, x0, ed, 3, confidence="allowed", temperature=1.0,
                                    generator=torch.Generator().manual_seed(2), schedule="linear",
                                    return_trajectory=True)
    first = (traj[:, 1] != codes).float().mean(0).numpy()
    assert np.abs(first - np.array([4, 2, 1]) / 7).max() < 0.015  # 20,000 draws: sd <= 0.0035


# ----------------------------------------------------------------------- item 6: EOS/EOT confidence

def test_equal_confidences_commit_left_to_right():
    # 100 positions that all predict a suppressed id (confidence 0 each): ties are broken by position,
    # the leftmost first (a stable sort; an unstable one reorders ties of this size)
    N = 100
    table = torch.zeros(N, 7)
    table[:, 4] = 5.0  # EOS everywhere
    model = FixedDenoiser(table, 6)
    x0 = torch.full((1, N), 6)
    ed = torch.ones(1, N, dtype=torch.bool)
    _, traj = low_confidence_sample(model, x0, ed, 10, suppress_ids=[4], return_trajectory=True)
    for s in range(1, 11):
        assert torch.equal(traj[0, s] != 6, torch.arange(N) < 10 * s)


def test_suppressed_ids_are_committed_last_with_upstream_confidence():
    # vocab: 0-3 words, 4 = EOS, 5 = EOT, 6 = MASK. Position 0 predicts EOS with the highest confidence.
    table = torch.tensor([
        [0.0, 0.0, 0.0, 0.0, 6.0, 0.0, -9.0],
        [2.0, 0.0, 0.0, 0.0, 0.0, 1.5, -9.0],
        [0.0, 1.0, 0.0, 0.0, 0.5, 0.5, -9.0],
    ])
    model = FixedDenoiser(table, 6)
    x0 = torch.full((1, 3), 6)
    ed = torch.ones(1, 3, dtype=torch.bool)

    def naive_order(suppress):
        t = table.double().clone()
        pred = t[:, :6].argmax(-1)  # the prediction is taken before the suppression
        if suppress:
            t[:, [4, 5]] = float("-inf")
        p = torch.softmax(t, -1).gather(-1, pred[:, None])[:, 0]
        return sorted(range(3), key=lambda i: (-float(p[i]), i)), pred

    for suppress in (False, True):
        order, pred = naive_order(suppress)
        x, traj = low_confidence_sample(model, x0, ed, 3, suppress_ids=[4, 5] if suppress else None,
                                        return_trajectory=True)
        got = [int((traj[0, s + 1] != traj[0, s]).nonzero()[0]) for s in range(3)]
        assert got == order, suppress
        assert torch.equal(x[0], pred)  # suppression changes the order, never the tokens
    assert naive_order(True)[0][-1] == 0  # the EOS prediction now goes last


def test_paper_text_eval_suppresses_eos_and_eot(tmp_path):
    from rm_core.pipeline.text.evaluate import low_confidence_options
    import yaml

    paper = yaml.safe_load(open("config/paper.yaml"))["text"]["eval"]
    mini = yaml.safe_load(open("config.yaml"))["text"]["eval"]

    class Tok:
        eos_id, eot_id = 126081, 126348

    assert sorted(low_confidence_options(paper, Tok())["suppress_ids"]) == [126081, 126348]
    assert not low_confidence_options(mini, Tok())["suppress_ids"]


# ----------------------------------------------------------------------- item 7: blocks

def test_block_length_must_divide_the_answer_and_steps_the_blocks():
    table = torch.zeros(12, 5)
    model = FixedDenoiser(table, 4)
    x0 = torch.full((1, 12), 4)
    ed = torch.zeros(1, 12, dtype=torch.bool)
    ed[:, 2:] = True  # 10 answer positions
    with pytest.raises(ValueError, match=r"^block_length=4 must divide the generation length "
                                         r"\(editable positions per row: \[10\]\)$"):
        low_confidence_sample(model, x0, ed, 10, block_length=4)
    with pytest.raises(ValueError, match=r"^steps=5 must be a multiple of the number of blocks 2 "
                                         r"\(generation length 10 / block_length 5\)$"):
        low_confidence_sample(model, x0, ed, 5, block_length=5)  # 2 blocks
    none = torch.zeros_like(ed)  # nothing to decode: a no-op with blocks too, not an error
    assert torch.equal(low_confidence_sample(model, x0, none, 10, block_length=5), x0)
    x = low_confidence_sample(model, x0, ed, 10, block_length=5)  # 2 blocks x 5 steps: fine
    assert not (x[:, 2:] == 4).any()


# ----------------------------------------------------------------------- item 8: MASK and bf16 (kept)

def test_mask_never_predicted_and_confidence_ranked_in_float32():
    # bf16 rounds both confidences to the same value; float32 tells them apart (ours, kept on purpose)
    row0 = torch.tensor([0.25, 0.0, 0.0, 9.0])  # MASK (3) is the argmax: upstream LLaDA could emit it
    row1 = torch.tensor([0.25 + 2 ** -9, 0.0, 0.0, 9.0])  # a hair more confident in float32 only
    table = torch.stack([row0, row1]).to(torch.bfloat16)
    assert table[0, 0] != table[1, 0]  # both logits are exact in bf16
    p16 = torch.softmax(table, -1)[:, 0]
    p32 = torch.softmax(table.float(), -1)[:, 0]
    assert p16[0] == p16[1] and p32[1] > p32[0]  # the bf16 softmax ties, float32 does not
    model = FixedDenoiser(table, 3)
    x0 = torch.full((1, 2), 3)
    ed = torch.ones(1, 2, dtype=torch.bool)
    _, traj = low_confidence_sample(model, x0, ed, 2, return_trajectory=True)
    assert traj[0, 1].tolist() == [3, 0]  # position 1 first (float32), and the token is 0, not MASK
    assert traj[0, 2].tolist() == [0, 0]


# ----------------------------------------------------------------------- items 6+7 end to end (LLaDA)

def naive_llada_generate(logits_fn, prompt, gen_length, block_length, steps, mask_id, eos_eot):
    """LLaDA's generate at temperature 0, written from its description: blocks of block_length decoded
    left to right with steps/num_blocks steps each; per block the masked count is split evenly over
    the steps (remainder to the first steps); each step x0 = argmax of the logits, confidence =
    softmax of the logits (EOS/EOT logits set to -inf after the argmax: confidence_eos_eot_inf) at
    x0, -inf beyond the current block and at visible positions; the top-k confident are committed.
    MASK is excluded from the argmax here (our kept difference, item 8)."""
    assert gen_length % block_length == 0
    n_blocks = gen_length // block_length
    assert steps % n_blocks == 0
    spb = steps // n_blocks
    x = torch.cat([prompt, torch.full((1, gen_length), mask_id)], 1)
    P = prompt.shape[1]
    for b in range(n_blocks):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        m = int((x[0, lo:hi] == mask_id).sum())
        plan = [m // spb + (1 if i < m % spb else 0) for i in range(spb)]
        for i in range(spb):
            logits = logits_fn(x)[0].double()
            masked_logits = logits.clone()
            masked_logits[:, mask_id] = float("-inf")
            x0 = masked_logits.argmax(-1)
            logits[:, eos_eot] = float("-inf")
            p = torch.softmax(logits, -1).gather(-1, x0[:, None])[:, 0]
            p[hi:] = float("-inf")
            conf = torch.where(x[0] == mask_id, p, torch.full_like(p, float("-inf")))
            # top-k with ties to the lower index
            order = sorted(range(len(conf)), key=lambda j: (-float(conf[j]), j))[: plan[i]]
            for j in order:
                x[0, j] = x0[j]
    return x


def test_block_decoding_with_eos_eot_suppression_matches_llada(tmp_path):
    import warnings

    from rm_core.backbones.llada import LLaDABackbone
    from tiny_checkpoint import write_tiny_llada

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ckpt = write_tiny_llada(tmp_path / "l", seed=1, vocab_size=384, init_std=0.5)
    model = LLaDABackbone.from_pretrained(ckpt, dtype=torch.float32).eval()
    mask_id = model.mask_id
    fn = lambda x: model.logits(model.embed(x))  # noqa: E731
    g = torch.Generator().manual_seed(0)
    bites = 0
    for gen, block, steps in ((8, 8, 8), (8, 4, 4), (12, 4, 6)):
        prompt = torch.randint(0, 50, (1, 5), generator=g)
        x0 = torch.cat([prompt, torch.full((1, gen), mask_id)], 1)
        ed = torch.zeros_like(x0, dtype=torch.bool)
        ed[:, 5:] = True
        with torch.no_grad():
            first = fn(x0)[0, 5:].clone()
            first[:, mask_id] = float("-inf")
            top = torch.bincount(first.argmax(-1), minlength=384).argsort(descending=True)[:2].tolist()
            ours = low_confidence_sample(model, x0, ed, steps, block_length=block, suppress_ids=top)
            want = naive_llada_generate(fn, prompt, gen, block, steps, mask_id, top)
            plain = low_confidence_sample(model, x0, ed, steps, block_length=block)
        assert torch.equal(ours, want), (gen, block, steps)
        bites += int(not torch.equal(ours, plain))
    assert bites > 0  # the suppression changed at least one decode
