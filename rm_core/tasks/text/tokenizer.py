"""Character tokenizer for the mini text scale.

Ids 0-3 are the specials [PAD], [EOS], [MASK], [SEP]; then "\\n" and the 95 printable ASCII
characters (space to "~"), 100 ids in all. ``encode`` maps characters only (a special's name
in the text is encoded character by character) and raises on a character outside the set.
``decode`` renders specials by name unless ``skip_special_tokens``. The interface matches
what the lm-eval model class and the trainers use of the LLaDA tokenizer wrapper:
``encode``, ``decode``, ``mask_id``, ``eos_id``, ``pad_id``, ``vocab_size``, ``save``/``load``.
"""

from __future__ import annotations

import json
from pathlib import Path

from rm_core.io import write_json

SPECIALS = ("[PAD]", "[EOS]", "[MASK]", "[SEP]")
CHARSET = "\n" + "".join(chr(c) for c in range(32, 127))
FILENAME = "char_tokenizer.json"


class CharTokenizer:
    def __init__(self, charset: str = CHARSET, specials: tuple[str, ...] = SPECIALS):
        if len(set(charset)) != len(charset):
            raise ValueError("charset has repeated characters")
        if tuple(specials[:4]) != SPECIALS:
            raise ValueError(f"the first specials must be {SPECIALS}")
        self.specials = tuple(specials)
        self.charset = charset
        self.itos = list(self.specials) + list(charset)
        self._stoi = {c: i + len(self.specials) for i, c in enumerate(charset)}
        self.pad_id, self.eos_id, self.mask_id, self.sep_id = 0, 1, 2, 3

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def special_ids(self) -> list[int]:
        return list(range(len(self.specials)))

    def encode(self, text: str) -> list[int]:
        try:
            return [self._stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the tokenizer's charset") from None

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        n = len(self.specials)
        out = []
        for i in ids:
            i = int(i)
            if i < n:
                if not skip_special_tokens:
                    out.append(self.specials[i])
            else:
                out.append(self.itos[i])
        return "".join(out)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILENAME
        write_json({"type": "CharTokenizer", "specials": list(self.specials), "charset": self.charset}, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "CharTokenizer":
        path = Path(directory) / FILENAME
        if not path.exists():
            raise FileNotFoundError(f"no {FILENAME} in {directory}")
        spec = json.loads(path.read_text())
        return cls(charset=spec["charset"], specials=tuple(spec["specials"]))
