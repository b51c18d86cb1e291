"""SmallTransformer: protocol, shapes, bidirectionality, key mask, save/load, size, scales."""

import torch

from rm_core.backbones.base import Denoiser
from rm_core.backbones.small_transformer import SmallTransformer, SmallTransformerConfig

torch.set_num_threads(1)


def sudoku_model(**kw):
    torch.manual_seed(0)
    return SmallTransformer(SmallTransformerConfig(vocab_size=10, n_positions=81, mask_id=9, **kw)).eval()


def test_protocol_and_shapes():
    model = sudoku_model()
    assert isinstance(model, Denoiser)
    assert (model.mask_id, model.vocab_size, model.hidden_size) == (9, 10, 128)
    ids = torch.randint(0, 10, (3, 81))
    e = model.embed(ids)
    assert e.shape == (3, 81, 128)
    out = model.logits(e)
    assert out.shape == (3, 81, 10)
    torch.testing.assert_close(model(ids), out)
    assert model.logits(e[:, :16]).shape == (3, 16, 10)


def test_param_count_9x9_is_paper_size():
    n = sudoku_model().num_parameters()
    assert n == 806_282
    assert 750_000 <= n <= 850_000


def test_init_scales():
    """Tables at the linears' std (0.02): the residual stream starts at the blocks' output scale;
    the position table at pos_scale times the token table (so positions stay visible)."""
    model = sudoku_model(pos_scale=1.0)
    rms = lambda t: t.pow(2).mean().sqrt().item()
    assert 0.016 < rms(model.wte.weight) < 0.024
    assert 0.016 < rms(model.wpe) < 0.024
    assert 0.08 < rms(sudoku_model(pos_scale=0.1).wpe) / rms(model.wte.weight) < 0.12
    big = sudoku_model(embed_std=1.0)
    assert 0.8 < rms(big.wte.weight) < 1.2 and 0.8 < rms(big.wpe) < 1.2
    # a block's first output is not negligible next to the stream it is added to
    ids = torch.randint(0, 10, (4, 81))
    x = model.embed(ids) + model.wpe
    delta = model.blocks[0](x, None) - x
    assert rms(delta) > 0.3 * rms(x)


def test_bidirectional():
    model = sudoku_model()
    ids = torch.randint(0, 9, (1, 81))
    ids2 = ids.clone()
    ids2[0, 80] = (ids[0, 80] + 1) % 9
    a, b = model(ids), model(ids2)
    assert not torch.allclose(a[0, 0], b[0, 0])


def test_positions_distinguish_cells():
    model = sudoku_model()
    out = model(torch.full((1, 81), 9))
    assert (out[0, 0] - out[0, 40]).abs().max() > 1e-3


def test_attention_mask_ignores_keys():
    model = sudoku_model()
    ids = torch.randint(0, 10, (2, 81))
    keep = torch.ones(2, 81, dtype=torch.bool)
    keep[:, 60:] = False
    ids2 = ids.clone()
    ids2[:, 60:] = (ids[:, 60:] + 3) % 10
    a = model(ids, attention_mask=keep)
    b = model(ids2, attention_mask=keep)
    torch.testing.assert_close(a[:, :60], b[:, :60])
    assert not torch.allclose(model(ids)[:, :60], model(ids2)[:, :60])
    # a padded sequence gives the same logits as the short one on the kept positions
    torch.testing.assert_close(a[:, :60], model(ids[:, :60]), rtol=1e-4, atol=1e-5)


def test_save_load_roundtrip(tmp_path):
    model = sudoku_model(pos_scale=0.5, n_layers=2)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists() and (tmp_path / "m" / "config.json").exists()
    loaded = SmallTransformer.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == model.config
    ids = torch.randint(0, 10, (2, 81))
    assert torch.equal(model(ids), loaded(ids))
    assert SmallTransformerConfig.from_dict(model.config.to_dict()) == model.config


def test_deterministic_init_and_grad():
    a, b = sudoku_model(), sudoku_model()
    ids = torch.randint(0, 10, (2, 81))
    assert torch.equal(a(ids), b(ids))
    a.train()
    loss = torch.nn.functional.cross_entropy(a(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    assert all(p.grad is not None for p in a.parameters())
