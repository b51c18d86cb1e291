"""The image track's models and settings: the mini small MDM or Lumina-DiMOO (loaded by
``rm_core.backbones.load``), the RM settings, and the attention mask of the instruction slot."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...backbones.load import load_backbone
from ...method import RMConfig
from ...tasks.image.layout import LayoutSpec, key_padding_mask

MODELS = ("base", "sft", "rm")


MODEL_NAMES = {"base": "Base, no tuning (Lumina)", "sft": "Base + vanilla SFT", "rm": "Base + RM"}


def is_mini(cfg: dict) -> bool:
    return cfg["model"]["kind"] == "small"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def rm_settings(cfg: dict) -> RMConfig:
    return RMConfig.from_dict(cfg["rm"], "image.rm")


def build_small(cfg: dict, spec: LayoutSpec):
    from ...backbones.small_transformer import SmallTransformer, SmallTransformerConfig
    m = cfg["model"]["small"]
    return SmallTransformer(SmallTransformerConfig(vocab_size=spec.vocab_size, n_positions=spec.seq_len,
                                                   mask_id=spec.mask_id, **m))


def load_model(cfg: dict, model_dir: str):
    """A trained model folder (or, for the paper base, the checkpoint) -> Denoiser, in
    ``model.dtype``."""
    return load_backbone("small" if is_mini(cfg) else "dimoo", model_dir, cfg["model"]["dtype"])


def base_path(base_dir: str) -> str:
    """The folder holding the base weights (mini: ``base_dir``; paper: the checkpoint)."""
    return json.loads((Path(base_dir) / "run.json").read_text())["path"]


def pad_attention_mask(ids: torch.Tensor, spec: LayoutSpec, model_cfg: dict):
    """``model.mask_padding``: an attention mask hiding the instruction slot's PAD positions (the
    real DiMOO never saw pad inside its prompt), else None (every position visible)."""
    return key_padding_mask(ids, spec) if model_cfg["mask_padding"] else None
