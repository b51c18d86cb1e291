"""Training throughput of the Sudoku RM model, CPU vs CUDA side by side in one run.

Trains one Table-2 variant with the pipeline's own code (``rm_core.pipeline.sudoku.train.train_variant``:
the real data, objective, History Reference and trainer) for a few steps on each device, each in
its own process (``CUDA_VISIBLE_DEVICES=""`` hides the GPU from the CPU run), and reports steps/s
and boards/s after the first logged step (so start-up and CUDA initialisation are left out), and
the CUDA/CPU ratio. Without a GPU only the CPU row is written.

    python bench/train_throughput.py --config config/paper.yaml --steps-cuda 300 --steps-cpu 20 \
        --out results/bench/train_throughput.csv
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def worker(config: str, variant: str, steps: int, threads: int, work: str, n_train: int) -> dict:
    """In this process: data, then ``steps`` training steps; returns the measured rates."""
    import torch

    from rm_core.config import load_config
    from rm_core.io import read_parquet
    from rm_core.pipeline.sudoku import data as sudoku_data
    from rm_core.pipeline.sudoku import train as sudoku_train

    torch.set_num_threads(threads)
    cfg = load_config(config)["sudoku"]
    cfg.update(n_train=n_train, n_test=10)  # throughput does not depend on the data size
    warm = max(1, steps // 10)
    cfg["train"].update(steps=steps, log_every=warm, checkpoint_every=10 * steps, warmup_steps=min(warm, 10))
    work = Path(work)
    sudoku_data.make_data(cfg, 0, str(work / "train.parquet"), str(work / "test.parquet"))
    sudoku_train.train_variant(cfg, variant, 0, str(work / "train.parquet"), str(work / "model" / "model.safetensors"))
    log = read_parquet(work / "model" / "train_log.parquet")
    first, last = log.iloc[0], log.iloc[-1]
    rate = (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"])
    return {"device": "cuda" if torch.cuda.is_available() else "cpu",
            "name": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu x{threads} threads",
            "steps": int(last["step"] - first["step"]), "steps_per_s": rate,
            "boards_per_s": rate * cfg["train"]["batch_size"], "final_loss": float(last["loss"])}


def run(device: str, args) -> dict:
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    steps = args.steps_cpu if device == "cpu" else args.steps_cuda
    with tempfile.TemporaryDirectory() as work:
        out = subprocess.run([sys.executable, __file__, "--worker", "--config", args.config, "--variant", args.variant,
                              "--steps", str(steps), "--threads", str(args.cpu_threads), "--work", work,
                              "--n-train", str(args.n_train)],
                             env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{device} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config/paper.yaml")
    ap.add_argument("--variant", default="rm_hr_decay_her")
    ap.add_argument("--steps-cuda", type=int, default=300)
    ap.add_argument("--steps-cpu", type=int, default=20)
    ap.add_argument("--cpu-threads", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=2000, help="training boards to generate (not the config's)")
    ap.add_argument("--out", default="results/bench/train_throughput.csv")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.config, args.variant, args.steps, args.threads, args.work, args.n_train)))
        return
    import torch

    rows = [run("cpu", args)] + ([run("cuda", args)] if torch.cuda.is_available() else [])
    df = pd.DataFrame(rows)
    if len(df) == 2:
        df["ratio_vs_cpu"] = df["steps_per_s"] / df["steps_per_s"].iloc[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
