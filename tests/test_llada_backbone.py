"""LLaDA backbone + tokenizer on a tiny random checkpoint in the real on-disk format."""

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from rm_core.backbones.base import Denoiser
from rm_core.backbones.llada import (
    CheckpointMismatchError,
    INDEX_NAME,
    LLaDABackbone,
    LLaDAConfig,
    apply_rope,
    rope_tables,
)
from rm_core.backbones.llada_tokenizer import LLaDATokenizer
from tiny_checkpoint import LLADA_8B_CONFIG, write_tiny_llada

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_llada(tmp_path_factory.mktemp("tiny_llada"), seed=0)


@pytest.fixture
def model(ckpt):
    return LLaDABackbone.from_pretrained(ckpt, dtype=torch.float32).eval()


def randomize(model, seed=1):
    """O(1) activations, so that a 1e-5 comparison is meaningful; norms away from 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("ln_f.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_((1.0 if "wte" in name else 0.1) * torch.randn(p.shape, generator=g))
    return model


def ids_for(model, B=2, N=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.vocab_size, (B, N), generator=g)


# ---------------------------------------------------------------- format and loading


def test_tiny_checkpoint_is_sharded_with_published_keys(ckpt):
    index = json.loads((ckpt / INDEX_NAME).read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) >= 2 and all((ckpt / s).exists() for s in shards)
    assert all(k.startswith("model.transformer.") for k in index["weight_map"])
    config = json.loads((ckpt / "config.json").read_text())
    assert set(LLADA_8B_CONFIG) <= set(config)
    assert config["model_type"] == "llada" and config["architectures"] == ["LLaDAModelLM"]
    tok = LLaDATokenizer.from_pretrained(ckpt)
    assert config["mask_token_id"] == tok.mask_id == tok.hf.mask_token_id
    assert config["eos_token_id"] == config["pad_token_id"] == tok.eos_id == tok.pad_id


def test_real_config_builds_8b_shapes():
    cfg = LLaDAConfig.from_dict(LLADA_8B_CONFIG)
    with torch.device("meta"):
        m = LLaDABackbone(cfg)
    assert 2 * m.num_parameters() == 16_031_162_368  # bf16 bytes = the published index total_size
    assert (m.mask_id, m.vocab_size, m.hidden_size) == (126336, 126464, 4096)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["model.transformer.blocks.0.ff_proj.weight"] == (12288, 4096)
    assert shapes["model.transformer.ff_out.weight"] == (126464, 4096)
    assert len(shapes) == 2 + 1 + 32 * 9


def test_unsupported_config_raises():
    with pytest.raises(ValueError, match="alibi"):
        LLaDAConfig.from_dict({**LLADA_8B_CONFIG, "alibi": True})
    with pytest.raises(ValueError, match="d_model"):
        LLaDAConfig.from_dict({k: v for k, v in LLADA_8B_CONFIG.items() if k != "d_model"})


def test_protocol_and_shapes(model):
    assert isinstance(model, Denoiser)
    assert model.mask_id == model.config.mask_token_id
    assert (model.vocab_size, model.hidden_size) == (512, 64)
    ids = ids_for(model, B=3, N=7)
    e = model.embed(ids)
    assert e.shape == (3, 7, 64)
    assert model.logits(e).shape == (3, 7, 512)
    assert model.dtype == torch.float32


def test_embeds_path_equals_ids_path(model):
    ids = ids_for(model)
    torch.testing.assert_close(model(ids), model.logits(model.embed(ids)), rtol=0, atol=0)


def test_bidirectional(model):
    randomize(model)
    ids = ids_for(model)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % model.vocab_size
    diff = (model(ids) - model(changed))[:, 0].abs().max()
    assert diff > 1e-4  # the first position sees the last token


def test_attention_mask_ignores_padded_keys(model):
    randomize(model)
    ids = ids_for(model, B=2, N=10)
    n = 6
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, n:] = 0
    out = model(ids, attention_mask=mask)
    torch.testing.assert_close(out[1, :n], model(ids[1:, :n])[0], rtol=1e-5, atol=1e-5)
    other = ids.clone()
    other[1, n:] = (other[1, n:] + 7) % model.vocab_size
    torch.testing.assert_close(model(other, attention_mask=mask)[1, :n], out[1, :n], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0], model(ids[:1])[0], rtol=1e-5, atol=1e-5)  # all-ones row
    assert torch.equal(model(ids, attention_mask=torch.ones_like(mask)), model(ids))


# ---------------------------------------------------------------- naive reference


def naive_forward(sd, cfg, ids, keep=None):
    """Plain float64 LLaDA forward: explicit pair rotations, per-head loops, masked softmax."""
    W = {k.removeprefix("model.transformer."): v.double() for k, v in sd.items()}
    B, N = ids.shape
    H, hd = cfg.n_heads, cfg.d_model // cfg.n_heads
    half, eps = hd // 2, cfg.rms_norm_eps
    ang = torch.tensor([[p * cfg.rope_theta ** (-2 * j / hd) for j in range(half)] for p in range(N)],
                       dtype=torch.float64)
    cos, sin = ang.cos(), ang.sin()

    def rms(v, w):
        return v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps) * w

    def rot(v):  # (N, hd): pair (j, j + hd/2) rotated by angle p * theta^(-2j/hd)
        a, b = v[:, :half], v[:, half:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)

    x = W["wte.weight"][ids]
    for layer in range(cfg.n_layers):
        P = lambda name: W[f"blocks.{layer}.{name}.weight"]
        h = rms(x, P("attn_norm"))
        q, k, v = (torch.einsum("bnd,od->bno", h, P(n)) for n in ("q_proj", "k_proj", "v_proj"))
        att = torch.zeros_like(q)
        for b in range(B):
            for head in range(H):
                s = slice(head * hd, (head + 1) * hd)
                qh, kh, vh = rot(q[b, :, s]), rot(k[b, :, s]), v[b, :, s]
                scores = qh @ kh.T / math.sqrt(hd)
                if keep is not None:
                    scores = scores.masked_fill(~keep[b].bool()[None, :], float("-inf"))
                att[b, :, s] = torch.softmax(scores, dim=-1) @ vh
        x = x + torch.einsum("bni,oi->bno", att, P("attn_out"))
        h = rms(x, P("ff_norm"))
        gate = torch.einsum("bnd,od->bno", h, P("ff_proj"))
        up = torch.einsum("bnd,od->bno", h, P("up_proj"))
        x = x + torch.einsum("bni,oi->bno", gate * torch.sigmoid(gate) * up, P("ff_out"))
    return torch.einsum("bnd,vd->bnv", rms(x, W["ln_f.weight"]), W["ff_out.weight"])


def test_matches_naive_reference(model):
    randomize(model)
    ids = ids_for(model, B=2, N=9)
    ref = naive_forward(model.state_dict(), model.config, ids)
    assert ref.abs().max() > 0.5  # O(1) logits: the tolerance below is meaningful
    torch.testing.assert_close(model(ids).double(), ref, rtol=1e-5, atol=1e-5)
    keep = torch.ones(2, 9, dtype=torch.long)
    keep[0, 5:] = 0
    ref = naive_forward(model.state_dict(), model.config, ids, keep)
    torch.testing.assert_close(model(ids, attention_mask=keep).double(), ref, rtol=1e-5, atol=1e-5)


def test_rope_half_split_convention():
    hd, N, theta = 8, 5, 500000.0
    x = torch.randn(2, 3, N, hd)
    cos, sin = rope_tables(N, hd, theta)
    out = apply_rope(x, cos, sin)
    ref = x.clone()
    for p in range(N):
        for j in range(hd // 2):
            a, b = x[..., p, j], x[..., p, j + hd // 2]
            t = p * theta ** (-2 * j / hd)
            ref[..., p, j] = a * math.cos(t) - b * math.sin(t)
            ref[..., p, j + hd // 2] = a * math.sin(t) + b * math.cos(t)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out[..., 0, :], x[..., 0, :])  # position 0 unrotated
    bf = apply_rope(x.bfloat16(), cos, sin)
    assert bf.dtype == torch.bfloat16


# ---------------------------------------------------------------- save / load


def test_save_load_roundtrip(model, tmp_path):
    randomize(model)
    model.save_pretrained(tmp_path, max_shard_bytes=40_000)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert len(set(index["weight_map"].values())) >= 2
    back = LLaDABackbone.from_pretrained(tmp_path, dtype=torch.float32)
    a, b = model.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ids = ids_for(model)
    assert torch.equal(back.eval()(ids), model(ids))
    saved = json.loads((tmp_path / "config.json").read_text())
    drop = lambda d: {k: v for k, v in d.items() if k != "torch_dtype"}
    assert drop(saved) == drop(model.config.to_dict()) and saved["torch_dtype"] == "float32"
    model.save_pretrained(tmp_path)  # one shard now: the old shards are removed
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert shards == ["model-00001-of-00001.safetensors"]
    assert torch.equal(LLaDABackbone.from_pretrained(tmp_path, dtype=torch.float32).eval()(ids), model(ids))


def test_bf16_load_and_single_file(ckpt, tmp_path, model):
    m16 = LLaDABackbone.from_pretrained(ckpt, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in m16.parameters())
    ids = ids_for(model)
    torch.testing.assert_close(m16(ids).float(), model(ids), rtol=0.05, atol=0.02)
    shutil.copy(ckpt / "config.json", tmp_path / "config.json")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    single = LLaDABackbone.from_pretrained(tmp_path, dtype=torch.float32)
    assert torch.equal(single.eval()(ids), model(ids))


def _copy_without(ckpt, dst, drop=None, add=None):
    shutil.copytree(ckpt, dst)
    index = json.loads((dst / INDEX_NAME).read_text())
    shard = dst / index["weight_map"]["model.transformer.ln_f.weight"]
    tensors = load_file(str(shard))
    if drop:
        tensors.pop(drop)
        index["weight_map"].pop(drop)
    if add:
        tensors[add] = torch.zeros(3)
        index["weight_map"][add] = shard.name
    save_file(tensors, str(shard))
    (dst / INDEX_NAME).write_text(json.dumps(index))
    return dst


def test_missing_and_unexpected_keys_named(ckpt, tmp_path):
    key = "model.transformer.ln_f.weight"
    bad = _copy_without(ckpt, tmp_path / "missing", drop=key)
    with pytest.raises(CheckpointMismatchError, match="missing keys") as err:
        LLaDABackbone.from_pretrained(bad, dtype=torch.float32)
    assert key in str(err.value) and str(bad / INDEX_NAME) in str(err.value)
    bad = _copy_without(ckpt, tmp_path / "extra", add="model.transformer.extra.weight")
    with pytest.raises(CheckpointMismatchError, match="model.transformer.extra.weight"):
        LLaDABackbone.from_pretrained(bad, dtype=torch.float32)


def test_shape_mismatch_and_missing_files_named(ckpt, tmp_path):
    bad = tmp_path / "shape"
    shutil.copytree(ckpt, bad)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "mlp_hidden_size": cfg["mlp_hidden_size"] + 2}))
    with pytest.raises(CheckpointMismatchError, match=r"weight has shape \(.*\), config expects"):
        LLaDABackbone.from_pretrained(bad, dtype=torch.float32)
    empty = tmp_path / "no_weights"
    empty.mkdir()
    shutil.copy(ckpt / "config.json", empty / "config.json")
    with pytest.raises(FileNotFoundError, match="no model.safetensors.index.json or model.safetensors"):
        LLaDABackbone.from_pretrained(empty)
    (bad / "model-00002-of-00004.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="shard file"):
        LLaDABackbone.from_pretrained(bad)


def test_gradient_checkpointing_same_gradients(model, monkeypatch):
    import rm_core.backbones.llada as llada

    calls = []
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(llada, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    randomize(model)
    model.train()
    ids = ids_for(model)
    target = ids_for(model, seed=5)

    def grads():
        model.zero_grad()
        logits = model(ids)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.gradient_checkpointing_enable()
    ckpt_grads = grads()
    model.gradient_checkpointing_disable()
    assert len(calls) == model.config.n_layers
    for n in plain:
        torch.testing.assert_close(ckpt_grads[n], plain[n], rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- tokenizer


def test_chat_template_exact(ckpt):
    tok = LLaDATokenizer.from_pretrained(ckpt)
    text = tok.apply_chat_template([{"role": "user", "content": "  What is 2+2?\n"}])
    assert text == (
        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    ids = tok.encode(text)
    assert ids[0] == tok.bos_id and ids[1] == tok.start_header_id
    assert ids.count(tok.bos_id) == 1 and ids.count(tok.eot_id) == 1
    assert ids.count(tok.start_header_id) == 2 and ids.count(tok.end_header_id) == 2
    assert ids == tok.encode_chat([{"role": "user", "content": "What is 2+2?"}])
    assert tok.decode(ids) == text
    closed = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=False)
    assert closed == "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"


def test_encode_decode_response(ckpt):
    tok = LLaDATokenizer.from_pretrained(ckpt)
    plain = tok.encode("The answer is 42.")
    assert tok.bos_id not in plain and tok.decode(plain) == "The answer is 42."
    tail = [tok.mask_id, tok.eos_id, tok.eos_id]
    assert tok.decode_response(plain + [tok.eot_id] + plain + tail) == "The answer is 42."
    assert tok.decode_response(torch.tensor(plain + tail)) == "The answer is 42."
    assert tok.decode_response(plain + [tok.mask_id]) == "The answer is 42."
    assert len({tok.bos_id, tok.eos_id, tok.mask_id, tok.eot_id, tok.start_header_id, tok.end_header_id}) == 6
