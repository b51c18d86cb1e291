"""Mini Sudoku settings sweep on VALIDATION boards (choose the mini config without the test set).

Each setting is a JSON dict merged (two levels deep) into ``config.yaml``'s ``sudoku`` section;
every variant x seed is trained with the pipeline's own code (``train_variant``) and evaluated
(``evaluate``, Eq. 1 for T turns) on the validation split written by ``make_data``. One CSV row per
(setting, variant, seed) with the Table 2 metrics, training steps and wall seconds.

    python bench/sudoku_sweep.py --setting '{"box": [2, 3], "test_wrong": [2, 8]}' \
        --seeds 0 1 --out results/bench/sudoku_sweep.csv
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import pandas as pd
import torch

from rm_core.config import load_config
from rm_core.io import write_text
from rm_core.pipeline.sudoku import data as sudoku_data
from rm_core.pipeline.sudoku import evaluate as sudoku_eval
from rm_core.pipeline.sudoku import train as sudoku_train


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) and k != "variants" else v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--setting", action="append", required=True, help="JSON overrides of the sudoku section")
    ap.add_argument("--variants", nargs="*", default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="results/bench/sudoku_sweep")
    ap.add_argument("--out", default="results/bench/sudoku_sweep.csv")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_config(args.config)["sudoku"]
    out = Path(args.out)
    rows = pd.read_csv(out).to_dict("records") if out.exists() else []
    for k, text in enumerate(args.setting):
        over = json.loads(text)
        cfg = merged(base, {"n_val": 80, **over})
        work = Path(args.work) / hashlib.sha1(text.encode()).hexdigest()[:10]
        tr, te, va = work / "train.parquet", work / "test.parquet", work / "val.parquet"
        if not va.exists():
            sudoku_data.make_data(cfg, 0, tr, te, va)
        for variant in args.variants or list(cfg["variants"]):
            for seed in args.seeds:
                if any(r["setting"] == text and r["variant"] == variant and r["seed"] == seed for r in rows):
                    continue
                t0 = time.time()
                mdir = work / f"{variant}_s{seed}"
                sudoku_train.train_variant(cfg, variant, seed, tr, Path(mdir) / "model.safetensors")
                t_train = time.time() - t0
                s = sudoku_eval.evaluate(cfg, variant, Path(mdir) / "model.safetensors", va, work / "m.parquet", work / "t.parquet", work / "s.parquet")
                rows.append({"setting": text, "variant": variant, "seed": seed, "steps": cfg["train"]["steps"],
                             "train_s": round(t_train, 1), "eval_s": round(time.time() - t0 - t_train, 1),
                             **{m: s[m] for m in ("exact_acc", "valid_rate", "replay_mistake",
                                                  "conflict_cells_per_board", "n_boards")}})
                print(rows[-1], flush=True)
                write_text(pd.DataFrame(rows).to_csv(index=False), out)


if __name__ == "__main__":
    main()
