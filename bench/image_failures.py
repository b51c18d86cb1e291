"""Where do the image models fail? Per edit kind, at code level, from the saved edits.

Reads ``<results>/image/eval_val/<model>_outputs.parquet`` (or ``eval/`` with ``--split test``)
and the token grids of ``<results>/image/tokens/edits.parquet``; no model is run. The edit region
is the set of grid positions whose target code differs from the source code. Per model and edit
kind it prints the share of edits decoded exactly, the share left unchanged, the share of region
codes set to the target code and changed at all, and the mean number of codes changed wrongly
outside the region per edit (collateral edits):

    python bench/image_failures.py --results results sft_s0 rm_s0
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def failures(tokens: pd.DataFrame, outputs: pd.DataFrame) -> pd.DataFrame:
    """One row per edit: kind, exact, unchanged, region_right, region_changed, outside_wrong."""
    tok = tokens.set_index("id")
    rows = []
    for rec in outputs.itertuples():
        src, tgt = np.asarray(tok.at[rec.id, "source_codes"]), np.asarray(tok.at[rec.id, "target_codes"])
        out, region = np.asarray(rec.codes), src != tgt
        rows.append({"kind": tok.at[rec.id, "kind"], "exact": bool((out == tgt).all()),
                     "unchanged": bool((out == src).all()),
                     "region_right": float((out[region] == tgt[region]).mean()),
                     "region_changed": float((out[region] != src[region]).mean()),
                     "outside_wrong": int((out[~region] != tgt[~region]).sum())})  # 0 when every code changes
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("models", nargs="+", help="e.g. base sft_s0 rm_s0")
    args = ap.parse_args()
    tokens = pd.read_parquet(f"{args.results}/image/tokens/edits.parquet")
    folder = "eval_val" if args.split == "val" else "eval"
    for m in args.models:
        d = failures(tokens, pd.read_parquet(f"{args.results}/image/{folder}/{m}_outputs.parquet"))
        print(f"== {m} ({len(d)} edits)")
        print(d.groupby("kind").mean().round(3).to_string())
        print("all", d.drop(columns="kind").mean().round(3).to_dict())


if __name__ == "__main__":
    main()
