import numpy as np
import torch
from torch import nn

from rm_core.guidance import CFGDenoiser, cfg_dropout, embed_at_positions
from rm_core.rule import rm_sample
from rm_core.tasks.image.layout import SEG_SRC, SEG_TEXT, build_batch, encode_text, mini_spec, positions, uncond_text_ids

torch.set_num_threads(1)


class MixDenoiser(nn.Module):
    """logits = W (e + mean over positions of e) — every position sees the whole input."""

    def __init__(self, vocab_size, d=16, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab_size, self.hidden_size, self.mask_id = vocab_size, d, 1
        self.wte = nn.Parameter(torch.randn(vocab_size, d, generator=g))
        self.W = nn.Parameter(torch.randn(vocab_size, d, generator=g))

    def embed(self, ids):
        return self.wte[ids]

    def logits(self, inputs_embeds, attention_mask=None):
        return (inputs_embeds + 3 * inputs_embeds.mean(1, keepdim=True)) @ self.W.T


def _setup():
    spec = mini_spec(grid_h=4, grid_w=4, codebook_size=24, text_len=12)
    rng = np.random.default_rng(0)
    src = rng.integers(0, 24, (2, 4, 4))
    instrs = [encode_text("add a dot", spec), encode_text("recolour", spec)]
    ids, editable, seg = build_batch(instrs, src, None, spec)
    model = MixDenoiser(spec.vocab_size)
    return spec, model, ids, editable, seg


def test_scale_zero_is_conditional():
    spec, model, ids, editable, seg = _setup()
    cfg = CFGDenoiser.for_positions(model, positions(spec, SEG_TEXT), uncond_text_ids(spec), positions(spec, SEG_SRC), 0.0, 0.0)
    e = model.embed(ids)
    assert torch.equal(cfg.logits(e), model.logits(e))
    assert cfg.mask_id == model.mask_id and cfg.vocab_size == model.vocab_size
    a = rm_sample(cfg, ids, editable, steps=3)
    b = rm_sample(model, ids, editable, steps=3)
    assert torch.equal(a.x, b.x)


def test_formula_against_naive():
    spec, model, ids, editable, seg = _setup()
    tpos, ipos = positions(spec, SEG_TEXT), positions(spec, SEG_SRC)
    e = model.embed(ids)
    e_text = e.clone()
    e_text[:, tpos] = model.embed(uncond_text_ids(spec))
    e_img = e.clone()
    e_img[:, ipos] = model.wte[model.mask_id]
    c, ut, ui = model.logits(e), model.logits(e_text), model.logits(e_img)
    for st, si in ((2.5, 4.0), (1.5, 0.0), (0.0, 3.0)):
        want = c + st * (c - ut) + si * (c - ui)
        for batched in (True, False):
            cfg = CFGDenoiser.for_positions(model, tpos, uncond_text_ids(spec), ipos, st, si, batch_branches=batched)
            torch.testing.assert_close(cfg.logits(e), want)
    assert not torch.allclose(ut, c) and not torch.allclose(ui, c)  # the branches differ


def test_uncond_fn_is_the_uncond_sequence():
    spec, model, ids, editable, seg = _setup()
    fn = embed_at_positions(model, positions(spec, SEG_TEXT), uncond_text_ids(spec))
    u = ids.clone()
    u[:, seg[0] == SEG_TEXT] = uncond_text_ids(spec)
    assert torch.equal(fn(model.embed(ids)), model.embed(u))


def test_cfg_dropout():
    spec, model, ids, editable, seg = _setup()
    tpos, ipos = positions(spec, SEG_TEXT), positions(spec, SEG_SRC)
    e = model.embed(ids.repeat(500, 1))
    unc = model.embed(uncond_text_ids(spec))
    mask_e = model.wte[model.mask_id]
    same, td, idr = cfg_dropout(e, tpos, unc, ipos, mask_e, p_text=0.0, p_image=0.0)
    assert torch.equal(same, e) and not td.any() and not idr.any()
    full, td, idr = cfg_dropout(e, tpos, unc, ipos, mask_e, p_text=1.0, p_image=1.0)
    assert torch.equal(full[:, tpos], unc.expand(len(e), -1, -1))
    assert torch.equal(full[:, ipos], mask_e.expand(len(e), int(ipos.sum()), -1))
    assert torch.equal(full[:, ~(tpos | ipos)], e[:, ~(tpos | ipos)])
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    out, td, idr = cfg_dropout(e, tpos, unc, ipos, mask_e, generator=g1)
    out2, td2, idr2 = cfg_dropout(e, tpos, unc, ipos, mask_e, generator=g2)
    assert torch.equal(out, out2) and torch.equal(td, td2)
    assert 0.05 < td.float().mean() < 0.15 and 0.05 < idr.float().mean() < 0.15
    assert not torch.equal(td, idr)  # independent draws
    assert torch.equal(out[td][:, tpos], unc.expand(int(td.sum()), -1, -1))
    assert torch.equal(out[~td][:, tpos], e[~td][:, tpos])
