"""A word-level instruction vocabulary for the mini image-editing scale (ours).

The mini instructions ("make the red circle at the top left blue") come from a handful of
templates, so a word vocabulary built from the training instructions keeps them to about a
dozen tokens; the character vocabulary of :func:`rm_core.tasks.image.layout.mini_spec`
needs ~80 slots for the longest one, which would make every training step ~40% slower on
a CPU. Layout: the ten mini specials, ``<unk>``, the words (sorted), then the image codes.
Lumina-DiMOO's own tokenizer plays this role at paper scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from .layout import MINI_SPECIALS, LayoutSpec

UNK = "<unk>"


@dataclass(frozen=True)
class WordVocab:
    words: tuple

    @classmethod
    def build(cls, texts: Iterable[str]) -> "WordVocab":
        return cls(tuple(sorted({w for t in texts for w in t.lower().split()})))

    @property
    def word_offset(self) -> int:
        return len(MINI_SPECIALS) + 1

    @property
    def unk_id(self) -> int:
        return len(MINI_SPECIALS)

    def encode(self, text: str) -> list[int]:
        index = {w: i for i, w in enumerate(self.words)}
        return [self.word_offset + index[w] if w in index else self.unk_id for w in text.lower().split()]

    def decode(self, ids: Sequence[int]) -> str:
        lo, n = self.word_offset, len(self.words)
        return " ".join(self.words[i - lo] if lo <= i < lo + n else UNK for i in map(int, ids)
                        if i == self.unk_id or lo <= i < lo + n)

    def spec(self, grid_h: int, grid_w: int, codebook_size: int, text_len: int) -> LayoutSpec:
        sid = {name: i for i, name in enumerate(MINI_SPECIALS)}
        code_offset = self.word_offset + len(self.words)
        return LayoutSpec(
            grid_h=grid_h, grid_w=grid_w, codebook_size=codebook_size, code_offset=code_offset,
            vocab_size=code_offset + codebook_size, mask_id=sid["<mask>"], pad_id=sid["<pad>"],
            boi_id=sid["<boi>"], eoi_id=sid["<eoi>"], row_sep_id=sid["<row>"], boa_id=sid["<boa>"],
            eoa_id=sid["<eoa>"], uncond_id=sid["<uncond>"], text_len=text_len,
            prompt_prefix=(sid["<user>"],), prompt_suffix=(sid["</user>"],), char_offset=None,
        )
