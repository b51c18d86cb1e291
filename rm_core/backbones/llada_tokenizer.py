"""The LLaDA tokenizer: a local tokenizer.json read by PreTrainedTokenizerFast, plus the
official Llama-3-style chat template written out in Python (shared/notes/llada-format.md §4).

Prompt: BOS, then per message ``<|start_header_id|>ROLE<|end_header_id|>\\n\\n`` + the
stripped content + ``<|eot_id|>``, then the assistant header. Text is encoded with
``add_special_tokens=False`` (the template already holds BOS).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import torch
from transformers import PreTrainedTokenizerFast

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MASK = "<|mdm_mask|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
REQUIRED = (BOS, EOS, MASK, START_HEADER, END_HEADER, EOT)


class LLaDATokenizer:
    """Wraps a PreTrainedTokenizerFast (``.hf``) with the special ids and the chat template."""

    def __init__(self, hf: PreTrainedTokenizerFast, source: str = "tokenizer"):
        vocab = hf.get_vocab()
        absent = [t for t in REQUIRED if t not in vocab]
        if absent:
            raise ValueError(f"{source}: special token(s) {absent} not in the vocabulary")
        hf.mask_token = MASK
        if hf.pad_token is None:
            hf.pad_token = EOS
        self.hf = hf
        self.bos_id = vocab[BOS]
        self.eos_id = vocab[EOS]
        self.pad_id = hf.pad_token_id
        self.mask_id = vocab[MASK]
        self.eot_id = vocab[EOT]
        self.start_header_id = vocab[START_HEADER]
        self.end_header_id = vocab[END_HEADER]

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "LLaDATokenizer":
        """Load tokenizer.json (+ tokenizer_config.json) from a local directory, offline."""
        path = Path(path)
        if not (path / "tokenizer.json").exists():
            raise FileNotFoundError(f"tokenizer.json not found in {path}")
        hf = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
        return cls(hf, source=str(path))

    def save_pretrained(self, path: str | os.PathLike) -> None:
        self.hf.save_pretrained(str(path))

    def __len__(self) -> int:
        return len(self.hf)

    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        """The official template; ``add_generation_prompt=False`` omits the trailing assistant
        header (the official one always adds it), for templating a finished conversation."""
        parts = [BOS]
        for m in messages:
            parts.append(f"{START_HEADER}{m['role']}{END_HEADER}\n\n{m['content'].strip()}{EOT}")
        if add_generation_prompt:
            parts.append(f"{START_HEADER}assistant{END_HEADER}\n\n")
        return "".join(parts)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def encode_chat(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> list[int]:
        return self.encode(self.apply_chat_template(messages, add_generation_prompt))

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        return self.hf.decode(_as_list(ids), skip_special_tokens=skip_special_tokens)

    def decode_response(self, ids: Iterable[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Decode generated ids up to (not including) the first EOS or EOT."""
        ids = _as_list(ids)
        stops = [i for i, t in enumerate(ids) if t in (self.eos_id, self.eot_id)]
        return self.decode(ids[: stops[0]] if stops else ids, skip_special_tokens=skip_special_tokens)


def _as_list(ids) -> list[int]:
    return ids.tolist() if isinstance(ids, torch.Tensor) else [int(i) for i in ids]
