"""The Sudoku track, report: Table 2 (mean over seeds with a 95 % interval, the paper's numbers
beside ours) and the two figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...io import read_parquet
from ...metrics.sudoku import summarize
from .data import spec_of



TABLE2_COLUMNS = {"Exact Acc (%)": "exact_acc", "Valid Rate (%)": "valid_rate",
                  "Replay Mistake (%)": "replay_mistake", "Conflict Cells / board": "conflict_cells_per_board"}


def seed_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per variant (rows in first-seen order): the mean of each Table 2 metric over seeds, then
    "<metric> ± 95%": the half-width t_{0.975, n-1} * sd / sqrt(n) (NaN with one seed), and the
    per-seed exact accuracies."""
    from scipy import stats

    rows = {}
    for variant, part in per_seed.groupby("variant", sort=False):
        n = len(part)
        r = {col: float(part[col].mean()) for col in TABLE2_COLUMNS}
        for col in TABLE2_COLUMNS:
            r[f"{col} ± 95%"] = (float(stats.t.ppf(0.975, n - 1) * part[col].std(ddof=1) / np.sqrt(n))
                                 if n > 1 else float("nan"))
        r["Exact per seed"] = ", ".join(f"s{int(s)}: {v:.1f}" for s, v in zip(part["seed"], part["Exact Acc (%)"]))
        rows[variant] = r
    return pd.DataFrame.from_dict(rows, orient="index")


def report(cfg: dict, scale: str, metrics: list[str], scaling: list[str], trajectories: str, table: str,
           fig_trajectory: str, fig_scaling: str) -> pd.DataFrame:
    """Table 2 beside the paper's numbers, a trajectory figure and the turns-vs-accuracy curve.

    The three out paths are stems: any suffix is dropped and every format is written.
    """
    from ... import figures
    from ...tables import PAPER_TABLE2, VARIANT_NAMES, side_by_side, write_table

    table_stem, fig_traj_stem, fig_scaling_stem = (Path(p).with_suffix("") for p in
                                                    (table, fig_trajectory, fig_scaling))

    per_seed = []
    for p in metrics:
        df = read_parquet(p)
        s = summarize(df)
        per_seed.append({"variant": df["variant"].iloc[0], "seed": int(df["seed"].iloc[0]) if "seed" in df else -1,
                         **{col: s[key] for col, key in TABLE2_COLUMNS.items()}})
    ours = seed_summary(pd.DataFrame(per_seed))
    paired = side_by_side(ours[list(TABLE2_COLUMNS)], PAPER_TABLE2)
    frame = pd.DataFrame(index=paired.index)
    for col in TABLE2_COLUMNS:
        frame[f"{col} (ours)"] = paired[f"{col} (ours)"]
        frame[f"{col} ± 95%"] = ours[f"{col} ± 95%"]
        frame[f"{col} (paper)"] = paired[f"{col} (paper)"]
    frame["Exact per seed"] = ours["Exact per seed"]
    frame.index = [VARIANT_NAMES.get(v, v) for v in frame.index]
    spec = spec_of(cfg)
    n_boards = len(read_parquet(metrics[0]))
    seeds = sorted({r["seed"] for r in per_seed})
    notes = (f"Ours: {spec.n}x{spec.n} boards ({spec.box_rows}x{spec.box_cols} boxes), {n_boards} test boards "
             f"({cfg['n_test']} solutions x {cfg['test_corruptions']} corruptions) with "
             f"{cfg['test_wrong'][0]}-{cfg['test_wrong'][1]} wrong digits, T = {cfg['rm']['eval']['turns']} turns, "
             f"{cfg['train']['steps']} training steps of batch {cfg['train']['batch_size']}; (ours) is the mean over "
             f"seeds {seeds}, ± the half-width of its 95 % t-interval. Paper: 9x9 boards with "
             "4-20 wrong digits, 500 test boards, a 0.81M-parameter 4-layer Transformer.")
    write_table(frame, table_stem, "Table 2: Sudoku revision, History Reference ablation.", scale, notes, digits=3,
                index_name="Variant")

    curve = pd.concat([read_parquet(p) for p in scaling], ignore_index=True)
    curve = curve.groupby(["variant", "turns"], sort=False, as_index=False).mean(numeric_only=True)  # over seeds
    figures.scaling_curve(curve, "exact_acc", fig_scaling_stem, f"Sudoku ({scale}): exact accuracy vs turns",
                          names=VARIANT_NAMES, mark_turn=int(cfg["rm"]["eval"]["turns"]), ylabel="Exact Acc (%)")
    trajs = read_parquet(trajectories)
    # the most instructive board: one the model fixed with the most re-masks
    shown = [np.asarray(t).reshape(-1, spec.n_cells)[: int(cfg["rm"]["eval"]["turns"]) + 1] for t in trajs["trajectory"]]
    mask_counts = [int((t == spec.mask_id).sum()) for t in shown]
    solved = [bool((t[-1] == np.asarray(s)).all()) for t, s in zip(shown, trajs["solution"])]
    i = sorted(range(len(trajs)), key=lambda k: (not solved[k], -mask_counts[k]))[0]
    traj = shown[i]
    figures.sudoku_trajectory(traj, np.asarray(trajs["solution"].iloc[i]), spec.n, spec.mask_id, fig_traj_stem,
                              f"{trajs['variant'].iloc[i]}, test board {int(trajs['board_id'].iloc[i])}")
    return frame
