"""Parity items of issue 14 that need a backbone: the DiMOO PAD slot under an attention mask
(item 4), the unconditional image branch of CFG (item 5, ours kept) and LLaDA's likelihood CFG
(item 9), on tiny random checkpoints and small models."""

import math
import warnings

import numpy as np
import pytest
import torch
from lm_eval.api.instance import Instance

from rm_core.backbones.dimoo import DiMOOBackbone
from rm_core.backbones.small_transformer import SmallTransformer, SmallTransformerConfig
from tiny_checkpoint import write_tiny_dimoo
from rm_core.lm_eval_model import RMDiffusionLM
from rm_core.pipeline.image.data import _dimoo_layout
from rm_core.pipeline.image.evaluate import cfg_denoiser
from rm_core.pipeline.image.model import pad_attention_mask
from rm_core.tasks.image.layout import SEG_SRC, SEG_TEXT, build_batch, positions, uncond_sequence
from rm_core.tasks.text.tokenizer import CharTokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dimoo(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ckpt = write_tiny_dimoo(tmp_path_factory.mktemp("tiny_dimoo"), seed=0, with_vq=False, num_image_codes=32)
    model = DiMOOBackbone.from_pretrained(ckpt, dtype=torch.float32).eval()
    spec, encode = _dimoo_layout({"model": {"checkpoint": str(ckpt)}, "text": {"text_len": 24}}, 2, 3)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, 32, (2, 2, 3), generator=g).numpy()
    instrs = [encode("add a red hat"), encode("remove it")]
    ids, editable, seg = build_batch(instrs, src, None, spec)
    return model, spec, ids, editable, seg


EV = {"text_scale": 2.5, "image_scale": 4.0, "mask_padding": True}


# ----------------------------------------------------------------------- item 4: PAD under a mask

def test_pad_tokens_do_not_change_the_logits_under_the_mask(dimoo):
    model, spec, ids, editable, seg = dimoo
    attn = pad_attention_mask(ids, spec, EV)
    pad = (seg == SEG_TEXT) & (ids == spec.pad_id)
    assert pad.any() and torch.equal(attn, ~pad)
    other = ids.clone()
    g = torch.Generator().manual_seed(1)
    other[pad] = torch.randint(10, 100, (int(pad.sum()),), generator=g)  # arbitrary tokens where PAD was
    den = cfg_denoiser(model, spec, EV)
    with torch.no_grad():
        a = den.logits(model.embed(ids), attention_mask=attn)
        b = den.logits(model.embed(other), attention_mask=attn)
        a_open = den.logits(model.embed(ids))
        b_open = den.logits(model.embed(other))
    vis = ~pad
    torch.testing.assert_close(a[vis], b[vis], rtol=0, atol=1e-5)  # pads are invisible: same logits
    assert (a_open[vis] - b_open[vis]).abs().max() > 1e-3  # without the mask they leak in
    assert pad_attention_mask(ids, spec, {"mask_padding": False}) is None


def test_text_branch_of_cfg_sees_only_uncond_in_its_slot(dimoo):
    model, spec, ids, editable, seg = dimoo
    attn = pad_attention_mask(ids, spec, EV)
    den = cfg_denoiser(model, spec, {"text_scale": 2.5, "image_scale": 0.0})
    u_ids = uncond_sequence(ids, spec, drop_text=True)
    u_attn = ~((seg == SEG_TEXT) & (u_ids == spec.pad_id))
    with torch.no_grad():
        c = model.logits(model.embed(ids), attention_mask=attn)
        u = model.logits(model.embed(u_ids), attention_mask=u_attn)
        got = den.logits(model.embed(ids), attention_mask=attn)
    torch.testing.assert_close(got, c + 2.5 * (c - u), rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------- item 5: uncond image (ours)

def test_image_branch_overwrites_the_source_codes_with_mask_in_place(dimoo):
    """Ours, kept: u_img is the same sequence with every source-code position set to MASK
    (positions stay aligned, as in the training drop); Lumina-DiMOO instead removes the source
    image from the prompt."""
    model, spec, ids, editable, seg = dimoo
    den = cfg_denoiser(model, spec, {"text_scale": 0.0, "image_scale": 4.0})
    u_ids = ids.clone()
    u_ids[seg == SEG_SRC] = spec.mask_id  # naive: the source codes, and only they, become MASK
    assert torch.equal(u_ids, uncond_sequence(ids, spec, drop_text=False, drop_image=True))
    assert u_ids.shape == ids.shape and int((u_ids != ids).sum()) == 2 * spec.grid_h * spec.grid_w
    with torch.no_grad():
        c = model.logits(model.embed(ids))
        u = model.logits(model.embed(u_ids))
        got = den.logits(model.embed(ids))
    torch.testing.assert_close(got, c + 4.0 * (c - u), rtol=1e-5, atol=1e-4)
    assert positions(spec, SEG_SRC).sum() == spec.grid_h * spec.grid_w


# ----------------------------------------------------------------------- item 9: likelihood CFG

def _ll(ctx, cont):
    return Instance("loglikelihood", {}, (ctx, cont), 0, ("t", 0, 1))


def test_loglikelihood_cfg_matches_llada_formula():
    torch.manual_seed(0)
    tok = CharTokenizer()
    cfg = SmallTransformerConfig(vocab_size=tok.vocab_size, n_positions=40, mask_id=tok.mask_id, d_model=32,
                                 n_layers=2, n_heads=2)
    model = SmallTransformer(cfg).eval()
    w = 0.5
    lm = RMDiffusionLM(model=model, tokenizer=tok, mc_num=8, ll_cfg=w)
    lm0 = RMDiffusionLM(model=model, tokenizer=tok, mc_num=8, ll_cfg=0.0)
    ctx_text, cont = "7+5=? A)12 B)13 Answer:", "A"
    ctx, ans, _ = lm._encode_pair(ctx_text, cont)
    assert len(ans) == 1  # one answer id: one sample, exact
    x = torch.tensor([ctx + [tok.mask_id]])
    un = torch.tensor([[tok.mask_id] * len(ctx) + [tok.mask_id]])  # every prompt token -> MASK
    with torch.no_grad():
        c = model.logits(model.embed(x))[0, -1].double()
        u = model.logits(model.embed(un))[0, -1].double()
    guided = u + (w + 1) * (c - u)
    for lg, m in ((guided, lm), (c, lm0)):
        lg = lg.clone()
        lg[tok.mask_id] = float("-inf")  # ours: MASK is not an answer
        want = float(torch.log_softmax(lg, -1)[ans[0]])
        got, _ = m.loglikelihood([_ll(ctx_text, cont)])[0]
        assert got == pytest.approx(want, abs=1e-4)
    assert abs(lm.loglikelihood([_ll(ctx_text, cont)])[0][0] - lm0.loglikelihood([_ll(ctx_text, cont)])[0][0]) > 1e-4
    with pytest.raises(ValueError, match="ll_cfg"):
        RMDiffusionLM(model=model, tokenizer=tok, ll_cfg=-1)


# ----------------------------------------------------------------------- items 1+2 end to end

def naive_dimoo_i2i(logits_fn, x, mask_id: int, code_start: int, codebook: int, steps: int):
    """Lumina-DiMOO's greedy image-to-image loop, written from its description: each step samples
    every masked slot from the image-code logits only (argmax at temperature 0), takes the confidence
    as the softmax over those code logits, writes every sample, then re-masks the slots whose
    confidence is below the k-th smallest, k = max(1, floor_f32(n cos_f32(pi/2 (s+1)/steps))) clamped to
    (masked - 1), and k = 0 at the last step."""
    x = x.clone()
    n = int((x == mask_id).sum())
    for s in range(steps):
        masked = (x[0] == mask_id).nonzero().flatten()
        if len(masked) == 0:
            break
        if s < steps - 1:
            arg = np.float32(0.5 * math.pi) * np.float32((s + 1) / steps)
            keep = max(1, int(np.floor(np.float32(n) * np.float32(np.cos(np.float64(arg))))))
        else:
            keep = 0
        lg = logits_fn(x)[0, masked, code_start:code_start + codebook].double()
        sampled = lg.argmax(-1)
        conf = torch.softmax(lg, -1).gather(-1, sampled[:, None])[:, 0]
        x[0, masked] = sampled + code_start
        k = min(keep, len(masked) - 1)
        cut = conf.sort().values[k]
        x[0, masked[conf < cut]] = mask_id
    return x



def test_greedy_maskgit_decodes_like_dimoo(tmp_path):
    """Tiny DiMOO with non-trivial logits (init std 0.5): our base/SFT sampler (paper settings at
    temperature 0) gives the same decode as the loop above on every case."""
    from rm_core.pipeline.image.evaluate import maskgit_kwargs
    from rm_core.samplers import low_confidence_sample
    from rm_core.tasks.image.layout import non_code_ids

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ckpt = write_tiny_dimoo(tmp_path / "d", seed=3, with_vq=False, num_image_codes=32, init_std=0.5)
    model = DiMOOBackbone.from_pretrained(ckpt, dtype=torch.float32).eval()
    spec, encode = _dimoo_layout({"model": {"checkpoint": str(ckpt)}, "text": {"text_len": 8}}, 3, 4)
    g = torch.Generator().manual_seed(0)
    same = 0
    cases = [(steps, i) for steps in (4, 7) for i in range(3)]
    for steps, i in cases:
        src = torch.randint(0, 32, (1, 3, 4), generator=g).numpy()
        ids, editable, _ = build_batch([encode(["make it red", "add a cat", "remove the sky"][i])], src, None, spec)
        with torch.no_grad():
            ours = low_confidence_sample(model, ids, editable, steps, forbid_ids=non_code_ids(spec),
                                         **maskgit_kwargs({"temperature": 0.0}))
            want = naive_dimoo_i2i(lambda x: model.logits(model.embed(x)), ids, spec.mask_id, spec.code_offset,
                                   spec.codebook_size, steps)
        same += int(torch.equal(ours, want))
    assert same == len(cases)
