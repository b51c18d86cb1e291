"""Lumina-DiMOO: the LLaDA transformer over text ids + image codes, and its VQ tokenizer.

Transformer (shared/notes/dimoo-imgedit-format.md §1): LLaDA blocks and weight names; only
the config differs. Logits/embedding width 134548 = 126356 text ids + 8192 image codes; code
c is token ``image_code_offset + c``; MASK is 126336. The layout token ids below are the
Lumina-DiMOO constants (§2); the published config.json does not carry them, so they default
to those values and a config.json may override them (the tiny checkpoints do).

VQ (§1): the aMUSEd-style diffusers ``VQModel`` under ``vqvae/`` with lookup_from_codebook;
pixels in [0, 1], downsampling 16, one code per 16x16 patch, row-major.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from rm_core.backbones.llada import LLaDABackbone, LLaDAConfig

DIFFUSERS_HINT = (
    "the DiMOO VQ needs the `diffusers` package: pip install diffusers==0.36.0 (see requirements.txt)"
)


@dataclass
class DiMOOConfig(LLaDAConfig):
    """LLaDAConfig plus the image-code range and the edit-layout token ids."""

    image_code_offset: int = 126356
    num_image_codes: int = 8192
    newline_token_id: int = 126084
    boi_token_id: int = 126349
    eoi_token_id: int = 126350
    uncondition_token_id: int = 126351
    boa_token_id: int = 126354
    eoa_token_id: int = 126355
    mmu_pad_token_id: int = 126339

    def __post_init__(self):
        super().__post_init__()
        end = self.image_code_offset + self.num_image_codes
        if end > self.embedding_size:
            raise ValueError(f"image codes end at {end}, beyond embedding_size {self.embedding_size}")
        if self.image_code_offset <= self.mask_token_id < end:
            raise ValueError(f"mask_token_id {self.mask_token_id} falls inside the image-code range")


class DiMOOBackbone(LLaDABackbone):
    """Denoiser over DiMOO weights, with helpers between image codes and token ids."""

    config_class = DiMOOConfig

    def __init__(self, config: DiMOOConfig):
        super().__init__(config)
        self.image_code_offset = config.image_code_offset
        self.num_image_codes = config.num_image_codes

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """VQ codes in [0, num_image_codes) -> token ids."""
        return codes + self.image_code_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids of image codes -> VQ codes (raises if any id is not an image code)."""
        codes = ids - self.image_code_offset
        if bool(((codes < 0) | (codes >= self.num_image_codes)).any()):
            raise ValueError("ids_to_codes: some ids are not image-code tokens")
        return codes

    def is_image_code(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.image_code_offset) & (ids < self.image_code_offset + self.num_image_codes)

    def image_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The (…, num_image_codes) slice of logits over image codes, indexed by code."""
        return logits[..., self.image_code_offset : self.image_code_offset + self.num_image_codes]


def vq_model_class():
    """diffusers' VQModel, or an ImportError that names the package to install."""
    try:
        from diffusers.models.autoencoders.vq_model import VQModel
    except ImportError as e:
        raise ImportError(DIFFUSERS_HINT) from e
    return VQModel


def load_vq(path: str | os.PathLike, dtype=torch.float32, device="cpu"):
    """``VQModel.from_pretrained(path, subfolder="vqvae")``, local files only, eval, frozen."""
    vq = vq_model_class().from_pretrained(str(path), subfolder="vqvae", local_files_only=True)
    if not vq.config.lookup_from_codebook:
        raise ValueError(f"{path}/vqvae: lookup_from_codebook must be true to decode code ids")
    vq = vq.to(device=device, dtype=dtype).eval()
    vq.requires_grad_(False)
    return vq


def vq_downsample(vq) -> int:
    """Pixels per code along each side: 2^(number of encoder blocks - 1), 16 for DiMOO."""
    return 2 ** (len(vq.config.block_out_channels) - 1)


@torch.no_grad()
def encode_images(vq, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels (B, 3, H, W) in [0, 1] -> code ids (B, H/f, W/f), row-major (f = vq_downsample)."""
    f = vq_downsample(vq)
    B, _, H, W = pixels.shape
    if H % f or W % f:
        raise ValueError(f"image size {H}x{W} is not a multiple of the VQ downsampling {f}")
    if pixels.min() < 0 or pixels.max() > 1:
        raise ValueError("encode_images expects pixels in [0, 1] (no [-1, 1] normalisation)")
    latents = vq.encode(pixels.to(device=vq.device, dtype=vq.dtype)).latents
    _, _, (_, _, idx) = vq.quantize(latents)
    return idx.view(B, H // f, W // f)


@torch.no_grad()
def decode_codes(vq, codes: torch.Tensor) -> torch.Tensor:
    """Code ids (B, h, w) -> pixels (B, 3, h*f, w*f) in [0, 1], via the codebook lookup."""
    B, h, w = codes.shape
    dim = vq.quantize.embedding.weight.shape[1]
    out = vq.decode(codes.to(vq.device).reshape(B, h * w), force_not_quantize=True, shape=(B, h, w, dim))
    return out.sample.clamp(0, 1)
