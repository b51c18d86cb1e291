"""Does RM's first turn find the cell an edit names? Re-mask margins per edit kind (issue 13).

Eq. 1 re-masks a visible code when p(MASK) > p(code), i.e. when the margin
log p(MASK) - log p(code) is positive. This runs the first turn of the image RM sampler (Eq. 1
from the source image's tokens, CFG and History Reference as configured) on the validation edits
and reports, per edit kind, the margins inside the edit region (target code != source code)
and outside it, and how often the edit's largest margin falls inside its region. A kind whose
region margins sit at the level of the other cells is not a threshold problem: the model does
not locate the cell. No test edit is read.

    python bench/image_margins.py --results results --config config/image_long.yaml --seeds 0 1 2 \\
        --out docs/results/image_margins_val.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rm_core.config import load_config
from rm_core.history import HistoryBuffer, model_input
from rm_core.io import read_parquet
from rm_core.pipeline.image.data import load_layout, sequences
from rm_core.pipeline.image.evaluate import cfg_denoiser
from rm_core.pipeline.image.model import load_model, pad_attention_mask, rm_settings


@torch.no_grad()
def first_turn_margins(cfg: dict, model, spec, df: pd.DataFrame) -> np.ndarray:
    """(B, n) log p(MASK) - log p(source code) on the target grid at RM's first turn (> 0: re-mask)."""
    den = cfg_denoiser(model, spec, cfg["eval"])
    seqs = sequences(df, spec, with_target=False)
    x0 = seqs["src"]
    editable = seqs["editable"].expand(len(df), -1)
    e = den.embed(x0)
    a = HistoryBuffer(rm_settings(cfg).history).update(e)  # the history of one state (Eq. 2)
    logp = torch.log_softmax(den.logits(model_input(a, e, editable),
                                        attention_mask=pad_attention_mask(x0, spec, cfg["model"])).float(), -1)
    margin = logp[..., model.mask_id] - logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    codes = seqs["editable"].reshape(-1).bool()  # the target grid's code positions, row-major
    if int(codes.sum()) != spec.grid_h * spec.grid_w:
        raise ValueError("the editable positions are not the target grid")
    return margin[:, codes].numpy()


def margin_summary(margins: np.ndarray, src: np.ndarray, tgt: np.ndarray, kinds: np.ndarray) -> pd.DataFrame:
    """Per kind: median margin in / out of the region, share > 0 in / out, and the share of edits
    (with cells on both sides) whose largest margin is inside the region."""
    rows = []
    for k in sorted(set(kinds)):
        sel = kinds == k
        m, region = margins[sel], (src != tgt)[sel]
        inside, outside = m[region], m[~region]
        both = region.any(1) & (~region).any(1)
        top = [mi[ri].max() > mi[~ri].max() for mi, ri in zip(m[both], region[both])]
        rows.append({"kind": k, "edits": int(sel.sum()),
                     "median_in": float(np.median(inside)) if inside.size else np.nan,
                     "median_out": float(np.median(outside)) if outside.size else np.nan,
                     "remask_in": float((inside > 0).mean()) if inside.size else np.nan,
                     "remask_out": float((outside > 0).mean()) if outside.size else np.nan,
                     "top_in_region": float(np.mean(top)) if top else np.nan})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--config", nargs="*", default=[], help="config overlays (over config.yaml)")
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="RM seeds (default: image.seeds)")
    ap.add_argument("--out", default=None, help="CSV of the per-seed, per-kind rows")
    args = ap.parse_args()
    cfg = load_config(*args.config)["image"]
    root = Path(args.results) / "image"
    spec, _ = load_layout(root / "tokens", cfg)
    toks = read_parquet(root / "tokens" / "edits.parquet")
    df = toks[toks.split == "val"].reset_index(drop=True)
    src = np.stack([np.asarray(x) for x in df["source_codes"]])
    tgt = np.stack([np.asarray(x) for x in df["target_codes"]])
    parts = []
    for s in args.seeds if args.seeds is not None else cfg["seeds"]:
        model = load_model(cfg, root / "models" / f"rm_s{s}").eval()
        parts.append(margin_summary(first_turn_margins(cfg, model, spec, df), src, tgt,
                                    df["kind"].to_numpy()).assign(seed=s))
    out = pd.concat(parts, ignore_index=True)
    print(out.round(3).to_string(index=False))
    print(out.drop(columns="seed").groupby("kind").mean().round(3).to_string())
    if args.out:
        out.round(4).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
