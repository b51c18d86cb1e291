"""Grouped training (rm_core.grouped) vs one model at a time, side by side in one run.

The Table 2 variants (x seeds) of a config are trained for ``--steps`` steps twice with the
same data, objective and History Reference: each model alone with ``rm_core.train.train`` (as
the ``sudoku_train`` rule does, one after another), then all together with
``rm_core.grouped.train_grouped``. Reported: model-steps per second for each and their ratio
(the rate counts from the first logged step, so start-up is left out).

    python bench/grouped_throughput.py --config config.yaml --box 2 3 --steps 40 --seeds 0 1 \
        --out results/bench/grouped_throughput.csv
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from rm_core.config import load_config
from rm_core.grouped import train_grouped
from rm_core.pipeline.sudoku import build_model, variant_history, rm_sudoku_loss, rm_sudoku_parts
from rm_core.tasks.sudoku import SudokuSpec, generate_solved_boards, to_tokens
from rm_core.train import TrainConfig, train


def rate(log: pd.DataFrame) -> float:
    first, last = log.iloc[0], log.iloc[-1]
    return (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--box", nargs=2, type=int, default=None)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/bench/grouped_throughput.csv")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)["sudoku"]
    if args.box:
        cfg["box"] = args.box
    log_every = max(1, args.steps // 4)
    cfg["train"] = {**cfg["train"], "steps": args.steps, "log_every": log_every, "checkpoint_every": 10 * args.steps}
    if args.batch_size:
        cfg["train"]["batch_size"] = args.batch_size
    spec = SudokuSpec(*cfg["box"])
    solutions = torch.as_tensor(to_tokens(generate_solved_boards(500, spec, seed=0), spec))
    runs = [(v, s) for v in cfg["variants"] for s in args.seeds]

    def setup(variant, seed):
        torch.manual_seed(seed)
        return (build_model(cfg, spec), variant_history(cfg, variant),
                TrainConfig.from_dict({**cfg["train"], "seed": seed}))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        sep_rates = []
        for i, (v, s) in enumerate(runs):
            model, hist, tcfg = setup(v, s)
            sep_rates.append(rate(train(model, rm_sudoku_loss(cfg, hist, solutions, spec), tcfg, Path(tmp) / str(i),
                                        progress=False)))
        t_sep = time.time() - t0
        models, parts, cfgs = [], [], []
        for v, s in runs:
            model, hist, tcfg = setup(v, s)
            models.append(model)
            parts.append(rm_sudoku_parts(cfg, hist, solutions, spec))
            cfgs.append(tcfg)
        t0 = time.time()
        glog = train_grouped(models, parts, cfgs)[0]
        t_grp = time.time() - t0
    sep = 1.0 / sum(1.0 / r for r in sep_rates) * len(runs)  # model-steps/s, one after another
    grp = rate(glog) * len(runs)
    row = {"board": f"{spec.n}x{spec.n}", "models": len(runs), "batch": cfg["train"]["batch_size"], "steps": args.steps,
           "threads": args.threads, "separate_model_steps_per_s": sep, "grouped_model_steps_per_s": grp,
           "ratio": grp / sep, "separate_wall_s": t_sep, "grouped_wall_s": t_grp}
    print(row, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame([row])
    if Path(args.out).exists():
        df = pd.concat([pd.read_csv(args.out), df], ignore_index=True)
    df.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
