"""Fakes for the text tests: a byte tokenizer and an oracle Denoiser that reads its prompt."""

import torch
from torch import nn


class ByteTokenizer:
    """[PAD] [EOS] [MASK] [SEP] then the 256 bytes; any text encodes (UTF-8)."""

    pad_id, eos_id, mask_id, sep_id = 0, 1, 2, 3
    vocab_size = 260

    def encode(self, text):
        return [b + 4 for b in text.encode("utf-8")]

    def decode(self, ids, skip_special_tokens=False):
        return bytes(int(i) - 4 for i in ids if int(i) >= 4).decode("utf-8", "replace")


class OracleDenoiser(nn.Module):
    """One-hot embeddings; after the first [SEP], logits favour ``table[prompt]`` + [EOS] fill.

    ``table`` maps the decoded prompt (PAD and SEP removed) to its response; unknown prompts
    favour EOS. Visible prompt positions favour their own token. Needs no history mixing.
    """

    def __init__(self, tok, table, strength=8.0):
        super().__init__()
        self.tok, self.table, self.strength = tok, dict(table), strength
        self.vocab_size = self.hidden_size = tok.vocab_size
        self.mask_id = tok.mask_id
        self.calls = 0

    def embed(self, ids):
        return nn.functional.one_hot(ids, self.vocab_size).float()

    def logits(self, inputs_embeds, attention_mask=None):
        self.calls += 1
        ids = inputs_embeds.argmax(-1)
        out = self.strength * nn.functional.one_hot(ids, self.vocab_size).float()
        for b in range(ids.shape[0]):
            row = ids[b].tolist()
            sep = row.index(self.tok.sep_id)
            prompt = self.tok.decode([t for t in row[:sep] if t != self.tok.pad_id])
            target = self.tok.encode(self.table.get(prompt, ""))
            n = len(row) - sep - 1
            target = (target + [self.tok.eos_id] * n)[:n]
            out[b, sep + 1 :] = 0.0
            out[b, torch.arange(sep + 1, len(row)), torch.tensor(target, dtype=torch.long)] = self.strength
        return out
