"""The token layout of one text example, shared by the trainers and the lm-eval model.

    [PAD]*k  prompt ids  ([SEP])  | answer region: gen_length ids
    left padding                  | training: response ids + [EOS] fill; evaluation: [MASK]s

The prompt block is left-padded to ``prompt_len`` (fixed at the mini scale, so positions match
between training and evaluation) or, when None, to the longest prompt of the batch. A prompt
longer than ``prompt_len`` keeps its last ``prompt_len`` ids when ``truncate`` is true, else
raises. ``attention_mask`` is 0 on the left padding only; ``editable`` marks the answer region.
[SEP] is appended when the tokenizer has a ``sep_id`` (the character tokenizer), unless
``append_sep`` says otherwise.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch


def prompt_ids(tok, prompt: str, append_sep: Optional[bool] = None) -> list[int]:
    sep = getattr(tok, "sep_id", None)
    if append_sep is None:
        append_sep = sep is not None
    ids = list(tok.encode(prompt))
    return ids + [sep] if append_sep else ids


def batch_layout(
    tok,
    prompts: Sequence[str],
    gen_length: int,
    responses: Optional[Sequence[str]] = None,
    prompt_len: Optional[int] = None,
    append_sep: Optional[bool] = None,
    truncate: bool = False,
) -> dict:
    """Tensors (B, N) ``ids``, ``editable``, ``attention_mask`` and (B,) ``truncated``."""
    blocks = [prompt_ids(tok, p, append_sep) for p in prompts]
    width = prompt_len if prompt_len is not None else max(len(b) for b in blocks)
    truncated = torch.tensor([len(b) > width for b in blocks])
    if truncated.any() and not truncate:
        i = int(truncated.nonzero()[0])
        raise ValueError(f"prompt {i} has {len(blocks[i])} ids > prompt_len {width}")
    rows, attn = [], []
    for i, b in enumerate(blocks):
        b = b[-width:] if width else []
        pad = width - len(b)
        if responses is None:
            ans = [tok.mask_id] * gen_length
        else:
            r = list(tok.encode(responses[i]))
            if len(r) > gen_length:
                raise ValueError(f"response {i} has {len(r)} ids > gen_length {gen_length}")
            ans = r + [tok.eos_id] * (gen_length - len(r))
        rows.append([tok.pad_id] * pad + b + ans)
        attn.append([0] * pad + [1] * (len(b) + gen_length))
    ids = torch.tensor(rows, dtype=torch.long)
    editable = torch.zeros_like(ids, dtype=torch.bool)
    editable[:, width:] = True
    return {"ids": ids, "editable": editable, "attention_mask": torch.tensor(attn, dtype=torch.long), "truncated": truncated}
