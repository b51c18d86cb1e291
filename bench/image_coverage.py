"""What holds RM's coverage back on the image track? Code-level diagnosis on the validation edits.

The edit region, at code level, is the set of target-grid positions whose target code differs
from the source code (the positions RM was trained to re-mask: ``rm.p_wrong`` 1.0, the source
token is the wrong token). For the trained RM model this runs the evaluation sampler
(``pipeline.image.evaluate.sample_edits``, Eq. 1 from the source tokens) under several settings
and reports, over the validation edits:

- ``remask_t1``: share of region codes re-masked at the first turn (source code -> MASK);
- ``remask_any``: share of region codes re-masked at any turn;
- ``changed``: share of region codes whose final code differs from the source code;
- ``exact``: share of region codes whose final code is the target code;
- ``restored``: share of region codes re-masked and then revealed back to the source code;
- ``outside``: share of non-region codes that changed (collateral edits);
- ``unchanged_edits``: share of edits whose final codes equal the source codes (and per edit
  kind, ``unchanged_by_kind``).

The SFT and base models (MaskGIT from an all-MASK target) get ``changed``/``exact``/``outside``
for comparison. Every row also has Table 1's pixel precision and coverage (``prec_px``,
``coverage_px``) of the decoded edit, and an ``oracle`` row decodes the target codes themselves:
the coverage a perfect model reaches through this VQ. Run after the mini DAG (or on any results folder of the same config):

    python bench/image_coverage.py --results results --split val
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rm_core.config import load_config
from rm_core.io import read_parquet
from rm_core.method import merge
from rm_core.metrics.image_edit import aggregate, region_stats
from rm_core.pipeline.image.data import load_layout, load_pixels
from rm_core.pipeline.image.evaluate import edit_rows, sample_edits
from rm_core.pipeline.image.model import base_path, load_model
from rm_core.tasks.image.vq import Codec


def pixel_stats(cfg: dict, codes: np.ndarray, codec: Codec, src_px, region_px, grid) -> dict:
    """Table 1's precision and coverage (%) of the decoded codes against the input image."""
    edited = codec.decode(codes.reshape(len(codes), *grid))
    a = aggregate(pd.DataFrame(edit_rows(cfg["eval"], src_px, edited, region_px)), cfg["eval"]["psnr_cap"])
    return {"prec_px": a["precision"], "coverage_px": a["coverage"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results", help="results folder of a finished image track")
    ap.add_argument("--config", nargs="*", default=[], help="config overlays (over config.yaml)")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--seed", type=int, default=None, help="the SFT/RM training seed (default: the first of image.seeds)")
    ap.add_argument("--limit", type=int, default=None, help="first N edits only")
    ap.add_argument("--out", default=None, help="write the rows as JSON lines here")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = load_config(*args.config)["image"]
    root = Path(args.results) / "image"
    spec, _ = load_layout(root / "tokens", cfg)
    toks = read_parquet(root / "tokens" / "edits.parquet")
    df = toks[toks.split == args.split].reset_index(drop=True)
    if args.limit:
        df = df.iloc[: args.limit]
    src = np.stack([np.asarray(x) for x in df["source_codes"]])
    tgt = np.stack([np.asarray(x) for x in df["target_codes"]])
    seed = args.seed if args.seed is not None else int(cfg["seeds"][0])
    codec = Codec(root / "vq")
    edits = read_parquet(root / "data" / "edits.parquet").set_index("id", drop=False)
    src_px, _, region_px = load_pixels(cfg, root / "data", edits.loc[df["id"]])
    grid = (spec.grid_h, spec.grid_w)
    T = int(cfg["rm"]["eval"]["turns"])
    ev = cfg["eval"]
    rows = [{"model": "oracle", "setting": "the target codes", "n": len(df),
             **region_stats(tgt, None, src, tgt), **pixel_stats(cfg, tgt, codec, src_px, region_px, grid)}]
    print(json.dumps(rows[0]), flush=True)
    settings = [
        ("rm", "as configured", {}),
        ("rm", f"turns {2 * T}", {"rm": {"eval": {"turns": 2 * T}}}),
        ("rm", "no final reveal", {"rm": {"eval": {"final_reveal": False}}}),
        ("rm", "CFG off (text 0, image 0)", {"eval": {"text_scale": 0.0, "image_scale": 0.0}}),
        ("rm", f"CFG text {2 * ev['text_scale'] + 1:g}", {"eval": {"text_scale": 2 * ev["text_scale"] + 1}}),
        ("sft", "as configured", {}),
        ("base", "as configured", {}),
    ]
    for which, label, over in settings:
        c = merge(cfg, over)
        mdir = root / "models" / (which if which == "base" else f"{which}_s{seed}")
        model = load_model(c, base_path(mdir) if which == "base" else mdir).eval()
        out = sample_edits(c, which, model, spec, df)
        row = {"model": which, "seed": None if which == "base" else seed, "setting": label, "n": len(df),
               **region_stats(out["codes"], out["trajectory"], src, tgt),
               **pixel_stats(cfg, out["codes"], codec, src_px, region_px, grid),
               "unchanged_by_kind": {k: round(float((out["codes"] == src).all(1)[(df["kind"] == k).to_numpy()].mean()), 3)
                                     for k in sorted(df["kind"].unique())}}
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        del model
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
