"""Table 2 metrics (Sudoku revision) from a recorded trajectory of token ids.

Paper, Table 2: Exact Acc (every cell equals the solution), Valid Rate (the final board
satisfies all constraints), Replay Mistake (of the erroneous cells that were re-masked, the
share later decoded back to their previous wrong digit), Conflict Cells per final board.

A re-mask event is a (cell, step t) with a wrong digit w at t and MASK at t+1; it is a replay
if the first non-MASK value after that MASK run is w again (a cell still MASK at the end is
no replay). Replay Mistake counts CELLS, as the paper defines it: the denominator is the
cells re-masked while holding a wrong digit (at least once; a wrong digit the model itself
wrote counts too), the numerator those of them decoded back to the wrong digit they held
before at least one of their re-masks. The per-event counts are kept beside it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from rm_core.tasks.sudoku import SudokuSpec, conflict_cells


def _next_visible(trajectory: np.ndarray, mask_id: int) -> np.ndarray:
    """nxt[:, s] = first non-MASK value at a step >= s, or -1 if MASK up to the end."""
    nxt = np.full_like(trajectory, -1)
    carry = np.full_like(trajectory[:, 0], -1)
    for s in range(trajectory.shape[1] - 1, -1, -1):
        carry = np.where(trajectory[:, s] != mask_id, trajectory[:, s], carry)
        nxt[:, s] = carry
    return nxt


def board_metrics(solution: np.ndarray, initial: np.ndarray, trajectory: np.ndarray, mask_id: int,
                  spec: Optional[SudokuSpec] = None) -> pd.DataFrame:
    """One row per board from token ids: solution, initial (B, N) and trajectory (B, T+1, N).

    trajectory[:, 0] must equal ``initial``; trajectory[:, -1] is the final board. Digits are
    token ids 0..n-1 (id + 1 is the digit) and ``mask_id`` is MASK. Columns:
    exact, valid, conflict_cells (of the final board; a MASK cell counts as a conflict),
    n_wrong_initial, n_remasked_wrong (cells), n_replay (cells), n_remask_events, n_replay_events,
    n_changed_correct (initially correct cells
    that ever left their digit), n_broken_correct (initially correct cells not correct at the
    end), turns_to_fixed_point (the last step t with x^(t) != x^(t-1); 0 if nothing changed,
    T if the last step still changed).
    """
    solution = np.asarray(solution, dtype=np.int64)
    initial = np.asarray(initial, dtype=np.int64)
    traj = np.asarray(trajectory, dtype=np.int64)
    if traj.ndim != 3 or traj.shape[0] != solution.shape[0] or traj.shape[2] != solution.shape[1]:
        raise ValueError(f"trajectory {traj.shape} does not match solution {solution.shape} as (B, T+1, N)")
    if initial.shape != solution.shape or not np.array_equal(traj[:, 0], initial):
        raise ValueError("trajectory[:, 0] must equal initial")
    final = traj[:, -1]
    digits = np.where(final == mask_id, 0, final + 1)
    conflicts = conflict_cells(digits, spec)

    before, after = traj[:, :-1], traj[:, 1:]
    wrong = (before != mask_id) & (before != solution[:, None])
    remask = wrong & (after == mask_id)
    replay = remask & (_next_visible(traj, mask_id)[:, 1:] == before)

    correct0 = initial == solution
    changed = (traj != initial[:, None]).any(axis=1)
    moved = (after != before).any(axis=2)
    steps = np.arange(1, traj.shape[1])
    return pd.DataFrame({
        "exact": (final == solution).all(axis=1),
        "valid": conflicts == 0,
        "conflict_cells": conflicts.astype(np.int64),
        "n_wrong_initial": (~correct0).sum(axis=1),
        "n_remasked_wrong": remask.any(axis=1).sum(axis=1),
        "n_replay": replay.any(axis=1).sum(axis=1),
        "n_remask_events": remask.sum(axis=(1, 2)),
        "n_replay_events": replay.sum(axis=(1, 2)),
        "n_changed_correct": (correct0 & changed).sum(axis=1),
        "n_broken_correct": (correct0 & (final != solution)).sum(axis=1),
        "turns_to_fixed_point": np.where(moved, steps, 0).max(axis=1, initial=0),
    })


def summarize(df: pd.DataFrame) -> dict:
    """Table 2 numbers: exact_acc %, valid_rate %, replay_mistake % (100 * replayed cells /
    re-masked wrong cells over all boards, 0 without any), conflict_cells_per_board (mean), plus counts."""
    events = int(df["n_remasked_wrong"].sum())
    replays = int(df["n_replay"].sum())
    return {
        "n_boards": int(len(df)),
        "exact_acc": 100.0 * float(df["exact"].mean()),
        "valid_rate": 100.0 * float(df["valid"].mean()),
        "replay_mistake": 100.0 * replays / events if events else 0.0,
        "conflict_cells_per_board": float(df["conflict_cells"].mean()),
        "n_remasked_wrong": events,
        "n_replay": replays,
    }
