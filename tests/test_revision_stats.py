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
