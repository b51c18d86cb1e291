"""Accuracy curve of one Sudoku RM variant during training (e.g. the 9x9 paper config on CPU).

Trains in chunks with the pipeline's own resumable trainer (each chunk resumes from the
checkpoint the previous one left, exactly as a requeued cluster job would) and evaluates
the test boards after each chunk. Writes a CSV of (step, wall seconds, Table 2 metrics).

    python bench/sudoku_curve.py --config config/paper.yaml --variant rm_hr_decay_her \
        --steps 2000 --every 200 --n-test 200 --out results/bench/sudoku9x9_curve.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from rm_core.config import load_config
from rm_core.pipeline.sudoku import data as sudoku_data
from rm_core.pipeline.sudoku import evaluate as sudoku_eval
from rm_core.pipeline.sudoku import train as sudoku_train
from rm_core.io import write_text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config/paper.yaml")
    ap.add_argument("--variant", default="rm_hr_decay_her")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="results/bench/sudoku_curve")
    ap.add_argument("--out", default="results/bench/sudoku_curve.csv")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)["sudoku"]
    cfg["n_test"] = args.n_test
    cfg["test_corruptions"] = 1
    if args.n_train:
        cfg["n_train"] = args.n_train
    cfg["train"] = {**cfg["train"], "steps": args.steps, "checkpoint_every": args.every}
    work = Path(args.work)
    train_p, test_p = work / "train.parquet", work / "test.parquet"
    if not test_p.exists():
        sudoku_data.make_data(cfg, 0, train_p, test_p)
    rows, t0, done = [], time.time(), 0
    while done < args.steps:
        chunk = min(args.every, args.steps - done)
        sudoku_train.train_variant(cfg, args.variant, 0, train_p, Path(work / "model") / "model.safetensors", stop_after=chunk if done + chunk < args.steps else None)
        done += chunk
        model_dir = work / "model" / ("checkpoint" if done < args.steps else "")
        s = sudoku_eval.evaluate(cfg, args.variant, Path(model_dir) / "model.safetensors", test_p, work / "m.parquet", work / "t.parquet", work / "s.parquet")
        rows.append({"step": done, "wall_s": round(time.time() - t0, 1), **{k: s[k] for k in
                     ("exact_acc", "valid_rate", "replay_mistake", "conflict_cells_per_board")}})
        print(rows[-1], flush=True)
        write_text(pd.DataFrame(rows).to_csv(index=False), args.out)


if __name__ == "__main__":
    main()
