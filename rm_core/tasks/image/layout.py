"""The Lumina-DiMOO edit sequence (shared/notes/dimoo-imgedit-format.md §2), paper Table 1.

    prompt_prefix + instruction slot + suffix[:-1] + [source image] + suffix[-1:]
      + BOA + [target image] + EOA,
    image = BOI + (W codes + ROW_SEP) per row, the last row included, + EOI.

Image code c is token ``code_offset + c``; MASK is one id shared by text and image.
Only target-image code positions are editable (Eq. 1's E). The instruction occupies a
fixed slot of ``text_len`` tokens, right-padded with PAD (ours: DiMOO's prompt has no
slot; a fixed slot keeps every position aligned across the CFG branches). The
unconditional prompt puts UNCOND first in the slot (DiMOO's ``<uncondition>`` user text).

``mini_spec`` builds the mini-scale vocabulary (specials, a character vocabulary for the
instructions, then the VQ codes); ``dimoo_spec`` holds DiMOO's ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
import torch

SEG_PROMPT, SEG_TEXT, SEG_SRC_MARK, SEG_SRC, SEG_TGT_MARK, SEG_TGT = range(6)

CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 -,.'"
MINI_SPECIALS = ("<pad>", "<mask>", "<boi>", "<eoi>", "<row>", "<boa>", "<eoa>", "<uncond>", "<user>", "</user>")
DIMOO_IDS = dict(
    mask_id=126336, row_sep_id=126084, code_offset=126356, boi_id=126349, eoi_id=126350,
    uncond_id=126351, boa_id=126354, eoa_id=126355, pad_id=126339,
)


@dataclass(frozen=True)
class LayoutSpec:
    """Special ids, code offset, grid size and prompt frame of the edit sequence."""

    grid_h: int
    grid_w: int
    codebook_size: int
    code_offset: int
    vocab_size: int
    mask_id: int
    pad_id: int
    boi_id: int
    eoi_id: int
    row_sep_id: int
    boa_id: int
    eoa_id: int
    uncond_id: int
    text_len: int
    prompt_prefix: tuple = ()
    prompt_suffix: tuple = ()
    char_offset: Optional[int] = None  # mini vocabulary only: id of CHARS[0]

    @property
    def seq_len(self) -> int:
        return len(_template(self)[0])


def mini_spec(grid_h: int = 8, grid_w: int = 8, codebook_size: int = 512, text_len: int = 96) -> LayoutSpec:
    """Mini vocabulary: 10 specials, then ``CHARS``, then the image codes."""
    sid = {name: i for i, name in enumerate(MINI_SPECIALS)}
    char_offset = len(MINI_SPECIALS)
    code_offset = char_offset + len(CHARS)
    return LayoutSpec(
        grid_h=grid_h, grid_w=grid_w, codebook_size=codebook_size, code_offset=code_offset,
        vocab_size=code_offset + codebook_size, mask_id=sid["<mask>"], pad_id=sid["<pad>"],
        boi_id=sid["<boi>"], eoi_id=sid["<eoi>"], row_sep_id=sid["<row>"], boa_id=sid["<boa>"],
        eoa_id=sid["<eoa>"], uncond_id=sid["<uncond>"], text_len=text_len,
        prompt_prefix=(sid["<user>"],), prompt_suffix=(sid["</user>"],), char_offset=char_offset,
    )


def dimoo_spec(
    grid_h: int,
    grid_w: int,
    prompt_prefix: Sequence[int],
    prompt_suffix: Sequence[int],
    text_len: int,
    vocab_size: int = 134548,
    **overrides,
) -> LayoutSpec:
    """DiMOO ids (fact sheet §2); prefix/suffix come from the real tokenizer
    (``tok(prompt)`` around the user text; the source goes before the last suffix token).
    PAD = 126339 (MMU padding) is our choice for the slot padding."""
    ids = dict(DIMOO_IDS, **overrides)
    return LayoutSpec(
        grid_h=grid_h, grid_w=grid_w, codebook_size=8192, vocab_size=vocab_size, text_len=text_len,
        prompt_prefix=tuple(prompt_prefix), prompt_suffix=tuple(prompt_suffix), **ids,
    )


def encode_text(text: str, spec: LayoutSpec) -> list[int]:
    """Mini character vocabulary: lowercase text -> ids (unknown characters raise)."""
    if spec.char_offset is None:
        raise ValueError("encode_text needs a mini_spec; tokenize DiMOO prompts with its tokenizer")
    bad = sorted(set(text.lower()) - set(CHARS))
    if bad:
        raise ValueError(f"characters {bad} are not in the mini vocabulary {CHARS!r}")
    return [spec.char_offset + CHARS.index(ch) for ch in text.lower()]


def decode_text(ids: Sequence[int], spec: LayoutSpec) -> str:
    """Inverse of :func:`encode_text`; PAD and non-character ids are skipped."""
    lo = spec.char_offset
    return "".join(CHARS[i - lo] for i in map(int, ids) if lo <= i < lo + len(CHARS))


def _image_block(spec: LayoutSpec, seg_mark: int, seg_code: int):
    ids, seg = [spec.boi_id], [seg_mark]
    for _ in range(spec.grid_h):
        ids += [-1] * spec.grid_w + [spec.row_sep_id]
        seg += [seg_code] * spec.grid_w + [seg_mark]
    return ids + [spec.eoi_id], seg + [seg_mark]


@lru_cache(maxsize=32)
def _template(spec: LayoutSpec) -> tuple[np.ndarray, np.ndarray]:
    """(ids with -1 at text/code slots, segment ids) of the fixed layout."""
    pre, suf = list(spec.prompt_prefix), list(spec.prompt_suffix)
    src_ids, src_seg = _image_block(spec, SEG_SRC_MARK, SEG_SRC)
    tgt_ids, tgt_seg = _image_block(spec, SEG_TGT_MARK, SEG_TGT)
    ids = pre + [-1] * spec.text_len + suf[:-1] + src_ids + suf[-1:] + [spec.boa_id] + tgt_ids + [spec.eoa_id]
    seg = (
        [SEG_PROMPT] * len(pre) + [SEG_TEXT] * spec.text_len + [SEG_PROMPT] * len(suf[:-1]) + src_seg
        + [SEG_PROMPT] * len(suf[-1:]) + [SEG_PROMPT] + tgt_seg + [SEG_PROMPT]
    )
    return np.asarray(ids, dtype=np.int64), np.asarray(seg, dtype=np.int64)


def segments(spec: LayoutSpec) -> torch.Tensor:
    """(N,) segment id of every position (SEG_* constants)."""
    return torch.as_tensor(_template(spec)[1])


def positions(spec: LayoutSpec, segment: int) -> torch.Tensor:
    """(N,) bool: the positions of one segment (e.g. SEG_TEXT for CFG's text drop)."""
    return segments(spec) == segment


def text_slot_ids(instr_ids: Sequence[int], spec: LayoutSpec) -> torch.Tensor:
    """(text_len,) instruction ids right-padded with PAD."""
    instr = list(map(int, instr_ids))
    if len(instr) > spec.text_len:
        raise ValueError(f"instruction of {len(instr)} tokens exceeds text_len={spec.text_len}")
    return torch.tensor(instr + [spec.pad_id] * (spec.text_len - len(instr)), dtype=torch.long)


def uncond_text_ids(spec: LayoutSpec) -> torch.Tensor:
    """(text_len,) the unconditional prompt's slot: UNCOND then PAD."""
    return text_slot_ids([spec.uncond_id], spec)


def _codes(codes, spec: LayoutSpec) -> torch.Tensor:
    c = torch.as_tensor(np.asarray(codes), dtype=torch.long)
    if c.shape != (spec.grid_h, spec.grid_w):
        raise ValueError(f"codes must be ({spec.grid_h}, {spec.grid_w}), got {tuple(c.shape)}")
    if c.numel() and (c.min() < 0 or c.max() >= spec.codebook_size):
        raise ValueError(f"codes must lie in [0, {spec.codebook_size})")
    return c.flatten() + spec.code_offset


def build_sequence(instr_ids: Sequence[int], src_codes, tgt_codes, spec: LayoutSpec):
    """-> (ids (N,), editable (N,) bool, segments (N,)); ``tgt_codes=None`` puts MASK on
    every target code (the start of generation). Editable = target code positions only."""
    tmpl, seg = _template(spec)
    ids = torch.as_tensor(tmpl).clone()
    seg = torch.as_tensor(seg)
    ids[seg == SEG_TEXT] = text_slot_ids(instr_ids, spec)
    ids[seg == SEG_SRC] = _codes(src_codes, spec)
    tgt = seg == SEG_TGT
    ids[tgt] = spec.mask_id if tgt_codes is None else _codes(tgt_codes, spec)
    return ids, tgt.clone(), seg


def build_batch(instrs: Sequence[Sequence[int]], src_codes, tgt_codes, spec: LayoutSpec):
    """Stacked :func:`build_sequence` over a batch -> (ids (B, N), editable (B, N), segments (B, N))."""
    tgt = [None] * len(instrs) if tgt_codes is None else tgt_codes
    rows = [build_sequence(i, s, t, spec) for i, s, t in zip(instrs, src_codes, tgt)]
    return tuple(torch.stack(x) for x in zip(*rows))


def extract_grid(ids: torch.Tensor, spec: LayoutSpec, segment: int = SEG_TGT) -> torch.Tensor:
    """(..., N) ids -> (..., grid_h, grid_w) codes of the source or target image; -1 where
    the id is not an image code (e.g. MASK)."""
    sel = ids[..., positions(spec, segment).to(ids.device)]
    codes = sel - spec.code_offset
    codes = torch.where((codes >= 0) & (codes < spec.codebook_size), codes, torch.full_like(codes, -1))
    return codes.reshape(*ids.shape[:-1], spec.grid_h, spec.grid_w)


def extract_target(ids: torch.Tensor, spec: LayoutSpec) -> torch.Tensor:
    """(..., N) -> (..., grid_h, grid_w) target codes (-1 at non-code ids)."""
    return extract_grid(ids, spec, SEG_TGT)


def aligned_source(ids: torch.Tensor, spec: LayoutSpec) -> torch.Tensor:
    """(..., N) ids with each target code position holding the source token of the same
    grid cell (Appendix C step 3: image editing's wrong token); other positions unchanged."""
    seg = segments(spec).to(ids.device)
    out = ids.clone()
    out[..., seg == SEG_TGT] = ids[..., seg == SEG_SRC]
    return out


def uncond_sequence(ids: torch.Tensor, spec: LayoutSpec, drop_text: bool = True, drop_image: bool = False) -> torch.Tensor:
    """The CFG variants at the id level: text slot -> UNCOND + PAD; source codes -> MASK
    (so their embedding is wte(MASK), as in Appendix C step 8's image drop)."""
    seg = segments(spec).to(ids.device)
    out = ids.clone()
    if drop_text:
        out[..., seg == SEG_TEXT] = uncond_text_ids(spec).to(ids.device)
    if drop_image:
        out[..., seg == SEG_SRC] = spec.mask_id
    return out


def non_code_ids(spec: LayoutSpec) -> list[int]:
    """Every id that is not an image code: ``forbid_ids`` so that a sampler reveals codes only.
    MASK is included (samplers never reveal it anyway)."""
    return [i for i in range(spec.vocab_size) if not spec.code_offset <= i < spec.code_offset + spec.codebook_size]


def key_padding_mask(ids: torch.Tensor, spec: LayoutSpec) -> torch.Tensor:
    """(..., N) bool, False at the instruction slot's PAD positions (optional attention mask)."""
    seg = segments(spec).to(ids.device)
    return ~((seg == SEG_TEXT) & (ids == spec.pad_id))
