"""bench/revision_stats.py on trajectories worked out by hand."""

import numpy as np

from bench.revision_stats import revision_stats

M = 9


def test_revision_stats_by_hand():
    sol = np.array([[1, 2, 3, 4]] * 4)
    states = np.array([
        # 5 re-masked; 6 revealed wrong, re-masked; 3 revealed right, kept; 7 revealed wrong at the end
        [[5, 2, 3, 4], [M, 2, M, 4], [6, 2, 3, 4], [M, 2, 3, 4], [7, 2, 3, 4]],
        # 7 re-masked; 8 revealed wrong, kept to the end
        [[1, 7, 3, 4], [1, M, 3, 4], [1, 8, 3, 4], [1, 8, 3, 4], [1, 8, 3, 4]],
        # a right 1 re-masked, revealed right and re-masked again, revealed right at the end
        [[1, 2, 3, 4], [M, 2, 3, 4], [1, 2, 3, 4], [M, 2, 3, 4], [1, 2, 3, 4]],
        # 6 re-masked; 5 revealed wrong, re-masked two turns later
        [[6, 2, 3, 4], [M, 2, 3, 4], [5, 2, 3, 4], [5, 2, 3, 4], [M, 2, 3, 4]],
    ])
    out = revision_stats(states, sol, M)
    assert out == {"initial_wrong": 3, "initial_wrong_remasked": 1.0,
                   "revealed_wrong": 4, "revealed_wrong_remasked": 0.5,
                   "revealed_right": 3, "revealed_right_remasked": 1 / 3,
                   "final_wrong_digits": 2}


def test_failure_breakdown_by_hand():
    """4x4 boards (box 2x2): one solved, one valid grid other than the solution (two rows
    swapped, reached by keeping a wrong digit and changing correct cells), one with a MASK left
    and a wrong digit turned into another wrong digit."""
    from bench.revision_stats import failure_breakdown
    from rm_core.tasks.sudoku import SudokuSpec

    spec = SudokuSpec(2, 2)
    K = spec.mask_id
    sol = np.array([0, 1, 2, 3, 2, 3, 0, 1, 1, 0, 3, 2, 3, 2, 1, 0])  # token ids (digit - 1), a valid 4x4
    other = sol.copy()
    other[:4], other[4:8] = sol[4:8], sol[:4]  # rows 0 and 1 swapped (both in box row 0): still valid
    start_b = sol.copy()
    start_b[0] = other[0]  # wrong digit, kept in the final "other" grid
    start_c = sol.copy()
    start_c[5] = 0  # wrong digit (solution 3), becomes 1, also wrong
    final_c = sol.copy()
    final_c[5], final_c[9] = 1, K
    states = np.stack([
        np.stack([sol, sol]),
        np.stack([start_b, other]),
        np.stack([start_c, final_c]),
    ])
    out = failure_breakdown(states, np.stack([sol] * 3), spec, turn=1)
    assert (out["solved"], out["other_grid"], out["broken"]) == (1, 1, 1)
    assert out["other_grid_differ"] == 8.0  # two rows of 4 cells, none equal to the solution
    assert out["other_grid_kept_wrong"] == 1.0 and out["other_grid_changed_correct"] == 7.0
    assert out["other_grid_wrong_to_other_wrong"] == 0.0 and out["other_grid_mask"] == 0.0
    assert out["broken_differ"] == 2.0 and out["broken_wrong_to_other_wrong"] == 1.0
    assert out["broken_mask"] == 1.0 and out["broken_kept_wrong"] == 0.0 and out["broken_changed_correct"] == 0.0
