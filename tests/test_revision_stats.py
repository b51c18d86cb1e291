"""bench/revision_stats.py on trajectories worked out by hand."""

import numpy as np

from bench.revision_stats import revision_stats

M = 9


def test_revision_stats_by_hand():
    sol = np.array([[1, 2, 3, 4]] * 3)
    states = np.array([
        [[5, 2, 3, 4], [M, 2, M, 4], [6, 2, 3, 4], [M, 2, 3, 4]],  # wrong 5 re-masked, revealed wrong 6, re-masked; 3 revealed right
        [[1, 7, 3, 4], [1, M, 3, 4], [1, 8, 3, 4], [1, 8, 3, 4]],  # wrong 7 re-masked, revealed wrong 8 kept
        [[1, 2, 3, 4], [M, 2, 3, 4], [1, 2, 3, 4], [M, 2, 3, 4]],  # right 1 re-masked, revealed right, re-masked again
    ])
    out = revision_stats(states, sol, M)
    assert out == {"initial_wrong": 2, "initial_wrong_remasked": 1.0,
                   "revealed_wrong": 2, "revealed_wrong_remasked": 0.5,
                   "revealed_right": 2, "revealed_right_remasked": 0.5,
                   "final_wrong_digits": 1}
