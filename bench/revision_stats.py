"""What a Sudoku model does with its own reveals: read from the evaluation's trajectories.

For every cell of every board in a trajectories file (the ``sudoku_eval`` output: ``trajectory`` =
the states x^(0..S-1) flattened, ``solution``), counts
- initial wrong digits, and the share re-masked at some later turn;
- reveals (MASK at turn k-1, a digit at turn k) that are wrong, and the share of them re-masked at
  a later turn; the same for reveals that are right (a false alarm when re-masked).
A model that trusts its own reveals re-masks few of them, right or wrong. In the paper's Appendix C
every digit that follows a MASK is the target, so the history tells a model that reads it that a
revealed digit is right; this measures whether the trained models act on that.

With ``--at-turn T`` it also says how the boards that are not solved at turn T fail
(``failure_breakdown``): a valid grid other than the solution, or a board that breaks a rule, and
per such board the cells that differ from the solution, split into initial wrong digits kept,
initial wrong digits replaced by another wrong digit, initially correct cells changed, and MASKs.

    python bench/revision_stats.py --box 3 3 t_rm_no_hr.parquet t_rm_hr.parquet --out stats.csv
    python bench/revision_stats.py --box 3 3 --at-turn 6 t_rm_hr_decay_her.parquet --out fail.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from rm_core.io import read_parquet
from rm_core.metrics.sudoku import board_metrics
from rm_core.tasks.sudoku import SudokuSpec


def revision_stats(states: np.ndarray, solution: np.ndarray, mask_id: int) -> dict:
    """states: (B, S, N) token ids per turn; solution: (B, N). Counts and shares (see module doc)."""
    S = states.shape[1]
    masked_later = np.zeros(states.shape, dtype=bool)  # (B, S, N): MASK at some turn after k
    for k in range(S - 2, -1, -1):
        masked_later[:, k] = masked_later[:, k + 1] | (states[:, k + 1] == mask_id)
    init_wrong = states[:, 0] != solution
    revealed = (states[:, :-1] == mask_id) & (states[:, 1:] != mask_id)  # reveal at turn k = 1..S-1
    right = revealed & (states[:, 1:] == solution[:, None])
    wrong = revealed & ~right
    later = masked_later[:, 1:]
    n_wrong, n_right = int(wrong.sum()), int(right.sum())
    return {
        "initial_wrong": int(init_wrong.sum()),
        "initial_wrong_remasked": float((init_wrong & masked_later[:, 0]).sum() / max(int(init_wrong.sum()), 1)),
        "revealed_wrong": n_wrong,
        "revealed_wrong_remasked": float((wrong & later).sum() / max(n_wrong, 1)),
        "revealed_right": n_right,
        "revealed_right_remasked": float((right & later).sum() / max(n_right, 1)),
        "final_wrong_digits": int(((states[:, -1] != solution) & (states[:, -1] != mask_id)).sum()),
    }


def failure_breakdown(states: np.ndarray, solution: np.ndarray, spec: SudokuSpec, turn: int) -> dict:
    """How the boards that are not solved at ``turn`` fail. states: (B, S, N) token ids per turn
    (state 0 = the given board); solution: (B, N). Boards: solved, a valid grid other than the
    solution ("other grid"; no MASK, no rule broken), or broken (a rule broken or a MASK left).
    Per unsolved board of each kind, the mean number of cells: differing from the solution,
    an initial wrong digit kept, an initial wrong digit turned into another wrong digit, an
    initially correct cell holding another digit, MASK."""
    init, final = states[:, 0], states[:, turn]
    masked = final == spec.mask_id
    table2 = board_metrics(solution, init, states[:, : turn + 1], spec.mask_id, spec)  # Table 2's exact / valid
    solved, valid = table2["exact"].to_numpy(), table2["valid"].to_numpy()  # valid: no rule broken, no MASK
    other_grid = ~solved & valid
    broken = ~solved & ~other_grid
    wrong0 = init != solution
    off = (final != solution) & ~masked
    cells = {"differ": final != solution, "kept_wrong": wrong0 & (final == init),
             "wrong_to_other_wrong": wrong0 & off & (final != init), "changed_correct": ~wrong0 & off,
             "mask": masked}
    out = {"at_turn": turn, "solved": int(solved.sum()), "other_grid": int(other_grid.sum()), "broken": int(broken.sum())}
    for kind, sel in (("other_grid", other_grid), ("broken", broken)):
        for name, c in cells.items():
            out[f"{kind}_{name}"] = float(c[sel].sum(axis=1).mean()) if sel.any() else float("nan")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trajectories", nargs="+")
    ap.add_argument("--box", nargs=2, type=int, required=True)
    ap.add_argument("--at-turn", type=int, default=None, help="also break the unsolved boards at this turn down")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    spec = SudokuSpec(*args.box)
    rows = []
    for path in args.trajectories:
        df = read_parquet(path, ["variant", "trajectory", "solution"])
        for variant, part in df.groupby("variant", sort=False):
            sol = np.stack([np.asarray(x) for x in part["solution"]])
            states = np.stack([np.asarray(x) for x in part["trajectory"]]).reshape(len(part), -1, spec.n_cells)
            rows.append({"file": path, "variant": variant, "boards": len(part), "turns": states.shape[1] - 1,
                         **revision_stats(states, sol, spec.mask_id),
                         **({} if args.at_turn is None else failure_breakdown(states, sol, spec, args.at_turn))})
    out = pd.DataFrame(rows)
    print(out.to_string(index=False))
    if args.out:
        out.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
