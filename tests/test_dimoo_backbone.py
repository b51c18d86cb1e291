"""Lumina-DiMOO backbone (LLaDA transformer + image codes) and its VQ on tiny checkpoints."""

import importlib.util
import json
import sys
import warnings

import pytest
import torch

from rm_core.backbones.base import Denoiser
from rm_core.backbones.dimoo import (
    DiMOOBackbone,
    DiMOOConfig,
    decode_codes,
    encode_images,
    load_vq,
    vq_downsample,
)
from rm_core.backbones.llada import INDEX_NAME, LLaDABackbone
from rm_core.backbones.llada_tokenizer import LLaDATokenizer
from tiny_checkpoint import DIMOO_SPECIALS, LLADA_8B_CONFIG, write_tiny_dimoo

torch.set_num_threads(1)
HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None
NO_DIFFUSERS = "diffusers not installed: the DiMOO VQ needs it"
needs_diffusers = pytest.mark.skipif(not HAS_DIFFUSERS, reason=NO_DIFFUSERS)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_tiny_dimoo(tmp_path_factory.mktemp("tiny_dimoo"), seed=0, with_vq=HAS_DIFFUSERS)


@pytest.fixture(scope="module")
def model(ckpt):
    return DiMOOBackbone.from_pretrained(ckpt, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def vq(ckpt):
    if not HAS_DIFFUSERS:
        pytest.skip(NO_DIFFUSERS)
    return load_vq(ckpt)


def test_real_dimoo_layout_on_meta():
    cfg = DiMOOConfig.from_dict({**LLADA_8B_CONFIG, "embedding_size": 134548, "vocab_size": 134548})
    with torch.device("meta"):
        m = DiMOOBackbone(cfg)
    assert (m.mask_id, m.vocab_size, m.image_code_offset, m.num_image_codes) == (126336, 134548, 126356, 8192)
    assert (cfg.newline_token_id, cfg.boi_token_id, cfg.eoi_token_id) == (126084, 126349, 126350)
    assert (cfg.uncondition_token_id, cfg.boa_token_id, cfg.eoa_token_id) == (126351, 126354, 126355)
    assert m.image_logits(torch.empty(1, 2, 134548, device="meta")).shape == (1, 2, 8192)
    with pytest.raises(ValueError, match="beyond embedding_size"):
        DiMOOConfig.from_dict(LLADA_8B_CONFIG)  # 126464 logits cannot hold 8192 codes at 126356


def test_tiny_layout_matches_tokenizer(ckpt, model):
    index = json.loads((ckpt / INDEX_NAME).read_text())
    assert len(set(index["weight_map"].values())) >= 2
    tok = LLaDATokenizer.from_pretrained(ckpt)
    cfg = model.config
    for key, token in DIMOO_SPECIALS.items():
        assert getattr(cfg, key) == tok.hf.convert_tokens_to_ids(token)
    assert cfg.mask_token_id == tok.mask_id and cfg.eos_token_id == tok.eos_id
    assert len(tok) <= cfg.image_code_offset == 512
    assert model.vocab_size == cfg.image_code_offset + cfg.num_image_codes == 544


def test_forward_protocol_and_code_ids(model):
    assert isinstance(model, Denoiser)
    codes = torch.randint(0, 32, (2, 12))
    ids = torch.cat([torch.full((2, 3), model.config.boi_token_id), model.codes_to_ids(codes)], dim=1)
    assert bool(model.is_image_code(ids[:, 3:]).all()) and not bool(model.is_image_code(ids[:, :3]).any())
    assert torch.equal(model.ids_to_codes(ids[:, 3:]), codes)
    with pytest.raises(ValueError):
        model.ids_to_codes(ids)
    logits = model(ids)
    assert logits.shape == (2, 15, 544)
    assert torch.equal(model.image_logits(logits), logits[..., 512:544])
    assert torch.equal(model.logits(model.embed(ids)), logits)


def test_same_transformer_as_llada(ckpt, model):
    """Only the config differs: the LLaDA module reads the same directory to the same logits."""
    plain = LLaDABackbone.from_pretrained(ckpt, dtype=torch.float32).eval()
    ids = torch.randint(0, model.vocab_size, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    assert torch.equal(plain(ids, mask), model(ids, mask))
    other = ids.clone()
    other[1, 7:] = 0
    torch.testing.assert_close(model(other, mask)[1, :7], model(ids, mask)[1, :7], rtol=0, atol=1e-6)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % model.vocab_size
    assert (model(changed) - model(ids))[:, 0].abs().max() > 0  # bidirectional


def test_save_load_roundtrip_keeps_layout(model, tmp_path):
    model.save_pretrained(tmp_path, max_shard_bytes=50_000)
    back = DiMOOBackbone.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert back.config == model.config
    ids = torch.randint(0, model.vocab_size, (1, 8))
    assert torch.equal(back(ids), model(ids))


@needs_diffusers
def test_vq_encode_decode_shapes(vq):
    assert vq_downsample(vq) == 16 and vq.config.lookup_from_codebook
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(2, 3, 64, 96, generator=g)
    codes = encode_images(vq, pixels)
    assert codes.shape == (2, 4, 6) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < vq.config.num_vq_embeddings
    assert torch.equal(encode_images(vq, pixels[1:]), codes[1:])  # batching does not reorder codes
    out = decode_codes(vq, codes)
    assert out.shape == (2, 3, 64, 96) and float(out.min()) >= 0 and float(out.max()) <= 1
    torch.testing.assert_close(decode_codes(vq, codes[1:]), out[1:])
    with pytest.raises(ValueError, match="multiple"):
        encode_images(vq, pixels[..., :40])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encode_images(vq, pixels * 2 - 1)


@needs_diffusers
def test_vq_code_roundtrip(vq):
    """Codes -> codebook latents -> quantizer gives the same codes, row-major (exact).

    The pixel roundtrip encode(decode(codes)) is not checked for equality: the tiny VQ is
    random, so its decoder is not an inverse of its encoder and a decoded image generally
    re-encodes to other codes; only a trained VQ (the real one) makes that near-identity.
    """
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, vq.config.num_vq_embeddings, (2, 3, 5), generator=g)
    dim = vq.quantize.embedding.weight.shape[1]
    latents = vq.quantize.get_codebook_entry(codes.reshape(2, -1), (2, 3, 5, dim))
    assert latents.shape == (2, dim, 3, 5)
    assert torch.equal(latents[1, :, 2, 4], vq.quantize.embedding.weight[codes[1, 2, 4]])
    _, _, (_, _, idx) = vq.quantize(latents)
    assert torch.equal(idx.view(2, 3, 5), codes)
    decoded = decode_codes(vq, codes)
    with torch.no_grad():
        direct = vq.decode(latents, force_not_quantize=False).sample.clamp(0, 1)
    torch.testing.assert_close(decoded, direct)  # lookup path == quantise-the-latents path


def test_missing_diffusers_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "diffusers.models.autoencoders.vq_model", None)
    with pytest.raises(ImportError, match="pip install diffusers"):
        load_vq(tmp_path)
