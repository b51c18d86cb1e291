"""The text track's model inputs: the prompt format, the ids never revealed, and the layout of
training pairs (identical to evaluation's). Backbones and model references are loaded by
``rm_core.backbones.load``."""

from __future__ import annotations

import numpy as np
import pandas as pd


def prompt_formatter(tok, cfg: dict):
    """The prompt string the model reads: the chat template for LLaDA, the raw prompt otherwise."""
    if cfg["layout"].get("chat_template") and hasattr(tok, "apply_chat_template"):
        return lambda p: tok.apply_chat_template([{"role": "user", "content": p}])
    return lambda p: p


def forbid_ids(tok) -> list[int]:
    """Ids never revealed in the answer region: PAD and SEP when they are not EOS."""
    out = []
    for name in ("pad_id", "sep_id"):
        i = getattr(tok, name, None)
        if i is not None and i != tok.eos_id and i != tok.mask_id:
            out.append(int(i))
    return out


def response_fits(tok, responses, gen_length: int) -> np.ndarray:
    """Which responses fit the answer region (response ids <= gen_length)."""
    return np.array([len(tok.encode(r)) <= gen_length for r in responses])


class PairEncoder:
    """Training/probe layout of (prompt, response) pairs, identical to evaluation's
    (``tasks/text/layout.batch_layout``): [PAD]* prompt ([SEP]) | response + EOS fill."""

    def __init__(self, tok, cfg: dict, pairs: pd.DataFrame):
        from ...tasks.text.layout import batch_layout

        self._layout = batch_layout
        self.tok = tok
        self.gen_length = int(cfg["layout"]["gen_length"])
        self.prompt_len = cfg["layout"].get("prompt_len")
        fmt = prompt_formatter(tok, cfg)
        self.prompts = [fmt(p) for p in pairs["prompt"]]
        self.responses = list(pairs["response"])
        self.ids = list(pairs["id"])
        self._cache = None
        if self.prompt_len is not None:  # fixed layout: encode everything once
            self._cache = batch_layout(tok, self.prompts, self.gen_length, responses=self.responses,
                                       prompt_len=self.prompt_len, truncate=True)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx, device=None) -> dict:
        idx = [int(i) for i in idx]
        if self._cache is not None:
            out = {k: self._cache[k][idx] for k in ("ids", "editable", "attention_mask")}
        else:
            out = self._layout(self.tok, [self.prompts[i] for i in idx], self.gen_length,
                               responses=[self.responses[i] for i in idx], truncate=True)
        return {k: v.to(device) if device is not None else v for k, v in out.items() if k != "truncated"}
