"""Tiny random checkpoints in the real on-disk formats (tests, and the paper-scale code path
on CPU).

``write_tiny_llada`` writes what a LLaDA-8B-Instruct directory holds: config.json with the
published keys, a sharded safetensors checkpoint with model.safetensors.index.json, and a
tokenizer (tokenizer.json + tokenizer_config.json) with the same special tokens in the same
roles. The tokenizer is a byte-level BPE trained here on a few sentences; its ids differ from
the real ones (126080...), and config.json's mask/eos/pad ids are those of this tokenizer.
``write_tiny_dimoo`` adds an image-code range after the text ids and a tiny random VQModel
under vqvae/ (the layout of Lumina-DiMOO).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from rm_core.backbones.dimoo import DiMOOBackbone, DiMOOConfig, vq_model_class
from rm_core.backbones.llada import INDEX_NAME, LLaDABackbone, LLaDAConfig
from rm_core.backbones.llada_tokenizer import BOS, EOS, MASK

# The published LLaDA-8B-Instruct config.json (shared/notes/llada-format.md §1).
LLADA_8B_CONFIG = {
    "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0,
    "architectures": ["LLaDAModelLM"], "attention_dropout": 0.0, "attention_layer_norm": False,
    "attention_layer_norm_with_affine": True,
    "auto_map": {
        "AutoConfig": "configuration_llada.LLaDAConfig",
        "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
        "AutoModel": "modeling_llada.LLaDAModelLM",
    },
    "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama", "d_model": 4096,
    "embedding_dropout": 0.0, "embedding_size": 126464, "eos_token_id": 126081,
    "flash_attention": False, "include_bias": False, "include_qkv_bias": False,
    "init_cutoff_factor": None, "init_device": "meta", "init_fn": "mitchell", "init_std": 0.02,
    "input_emb_norm": False, "layer_norm_type": "rms", "layer_norm_with_affine": True,
    "mask_token_id": 126336, "max_sequence_length": 4096, "mlp_hidden_size": 12288,
    "mlp_ratio": 4, "model_type": "llada", "multi_query_attention": None, "n_heads": 32,
    "n_kv_heads": 32, "n_layers": 32, "pad_token_id": 126081, "precision": "amp_bf16",
    "residual_dropout": 0.0, "rms_norm_eps": 1e-05, "rope": True, "rope_full_precision": True,
    "rope_theta": 500000.0, "scale_logits": False, "transformers_version": "4.46.3",
    "use_cache": False, "vocab_size": 126464, "weight_tying": False,
}

# Special tokens in the order of the real vocabulary (126080...): BOS, EOS, CLS, gMASK,
# reserved tokens (the real MASK sits among them), role/arithmetic/number tags, chat headers.
LLADA_SPECIALS = (
    [BOS, EOS, "[CLS]", "[gMASK]"]
    + [f"<|reserved_token_{i}|>" for i in range(8)]
    + [MASK, "<role>", "</role>", "<|arithmetic_start|>", "<|arithmetic_end|>",
       "<|number_start|>", "<|number_end|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
)
# DiMOO's layout tokens (names ours; the real tokenizer's names are unverified).
DIMOO_SPECIALS = {
    "newline_token_id": "<|reserved_token_0|>",
    "mmu_pad_token_id": "<|reserved_token_7|>",
    "boi_token_id": "<boi>",
    "eoi_token_id": "<eoi>",
    "uncondition_token_id": "<uncondition>",
    "boa_token_id": "<answer>",
    "eoa_token_id": "</answer>",
}
DIMOO_PROMPT_TAGS = ["<system>", "</system>", "<user>", "</user>"]

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is 12 + 30? The answer is 42.",
    "Solve for x: 3x + 5 = 20, so x = 5.",
    "def add(a, b):\n    return a + b\n",
    "Question: Which gas do plants absorb? Answer: carbon dioxide.",
    "Remove the red car from the street and keep the background unchanged.",
    "A mask diffusion model reveals and re-masks tokens over several turns.",
    "Let me think step by step. First, 7 * 6 = 42. Then 42 - 2 = 40.",
]


def build_tokenizer(specials: list[str], bpe_vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on CORPUS, then ``specials`` appended in order (special=True)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=EOS, mask_token=MASK,
        add_bos_token=False, add_eos_token=False, model_max_length=4096,
    )


def _tiny_config(cfg_class, hf, vocab_size, embedding_size, n_layers, d_model, n_heads, n_kv_heads,
                 mlp_hidden_size, max_sequence_length, extra):
    d = dict(LLADA_8B_CONFIG)
    d.update(
        d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads or n_heads,
        mlp_hidden_size=mlp_hidden_size or 3 * d_model, vocab_size=vocab_size,
        embedding_size=embedding_size, max_sequence_length=max_sequence_length,
        mask_token_id=hf.convert_tokens_to_ids(MASK), eos_token_id=hf.eos_token_id,
        pad_token_id=hf.pad_token_id, **extra,
    )
    if len(hf) > vocab_size:
        raise ValueError(f"tokenizer has {len(hf)} tokens, more than vocab_size {vocab_size}")
    return cfg_class.from_dict(d, source="tiny config")


def _save(model, hf, path: Path, dtype, n_shards: int) -> Path:
    model = model.to(dtype)
    total = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    model.save_pretrained(path, max_shard_bytes=-(-total // n_shards))
    hf.save_pretrained(str(path))
    n_files = len(set(json.loads((path / INDEX_NAME).read_text())["weight_map"].values()))
    if n_files < 2:
        raise RuntimeError(f"{path}: expected a sharded checkpoint, got {n_files} shard")
    return path


def write_tiny_llada(
    path: str | os.PathLike, seed: int = 0, n_layers: int = 2, d_model: int = 64, n_heads: int = 4,
    n_kv_heads: int | None = None, mlp_hidden_size: int | None = None, vocab_size: int = 512,
    max_sequence_length: int = 512, init_std: float = 0.02, dtype=torch.bfloat16, n_shards: int = 3,
) -> Path:
    """A random LLaDA checkpoint directory (config, ≥2 shards + index, tokenizer); returns it."""
    path = Path(path)
    hf = build_tokenizer(LLADA_SPECIALS)
    cfg = _tiny_config(LLaDAConfig, hf, vocab_size, vocab_size, n_layers, d_model, n_heads, n_kv_heads,
                       mlp_hidden_size, max_sequence_length, {"init_std": init_std})
    return _save(LLaDABackbone.from_config(cfg, seed=seed), hf, path, dtype, n_shards)


def write_tiny_vq(path: str | os.PathLike, num_codes: int = 32, seed: int = 0) -> Path:
    """A random aMUSEd-shaped VQModel (5 blocks: downsampling 16) saved under ``path``."""
    torch.manual_seed(seed)
    vq = vq_model_class()(
        in_channels=3, out_channels=3, latent_channels=4, num_vq_embeddings=num_codes,
        down_block_types=("DownEncoderBlock2D",) * 5, up_block_types=("UpDecoderBlock2D",) * 5,
        block_out_channels=(8, 8, 8, 8, 16), layers_per_block=1, norm_num_groups=4,
        mid_block_add_attention=False, lookup_from_codebook=True, force_upcast=True,
    )
    with torch.no_grad():  # spread the codebook so codes are well separated
        vq.quantize.embedding.weight.normal_(0.0, 1.0)
    vq.save_pretrained(str(path))
    return Path(path)


def write_tiny_dimoo(
    path: str | os.PathLike, seed: int = 0, n_layers: int = 2, d_model: int = 64, n_heads: int = 4,
    text_vocab_size: int = 512, num_image_codes: int = 32, max_sequence_length: int = 1024,
    init_std: float = 0.02, dtype=torch.bfloat16, n_shards: int = 3, with_vq: bool = True,
) -> Path:
    """A random DiMOO directory: text ids [0, text_vocab_size), image codes after them, the
    layout token ids in config.json, and (``with_vq``, needs diffusers) a VQModel in vqvae/."""
    path = Path(path)
    layout = [t for t in DIMOO_SPECIALS.values() if t not in LLADA_SPECIALS]
    hf = build_tokenizer(LLADA_SPECIALS + layout + DIMOO_PROMPT_TAGS)
    if len(hf) > text_vocab_size:
        raise ValueError(f"tokenizer has {len(hf)} tokens, more than text_vocab_size {text_vocab_size}")
    extra = {k: hf.convert_tokens_to_ids(t) for k, t in DIMOO_SPECIALS.items()}
    extra.update(image_code_offset=text_vocab_size, num_image_codes=num_image_codes, init_std=init_std)
    size = text_vocab_size + num_image_codes
    cfg = _tiny_config(DiMOOConfig, hf, size, size, n_layers, d_model, n_heads, None, None,
                       max_sequence_length, extra)
    _save(DiMOOBackbone.from_config(cfg, seed=seed), hf, path, dtype, n_shards)
    if with_vq:
        write_tiny_vq(path / "vqvae", num_codes=num_image_codes, seed=seed)
    return path
