"""bench/image_failures.py and rm_core.metrics.image_edit.region_stats on edits worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from bench.image_failures import failures


def test_failures_by_hand():
    tokens = pd.DataFrame({"id": ["a", "b", "c"], "kind": ["add", "remove", "move"],
                           "source_codes": [[1, 1, 1, 1], [5, 1, 6, 1], [7, 1, 1, 1]],
                           "target_codes": [[1, 9, 1, 1], [5, 1, 1, 1], [1, 1, 1, 7]]})
    outputs = pd.DataFrame({"id": ["c", "a", "b"],
                            "codes": [[1, 1, 1, 1],    # move: removed, not placed
                                      [1, 1, 1, 1],    # add: left unchanged
                                      [1, 1, 1, 1]]})  # remove: the wrong object removed as well
    d = failures(tokens, outputs).set_index("kind")
    assert d.loc["add"].tolist() == [False, True, 0.0, 0.0, 0]
    assert d.loc["remove"].tolist() == [False, False, 1.0, 1.0, 1]
    assert d.loc["move"].tolist() == [False, False, 0.5, 0.5, 0]
    exact = failures(tokens, pd.DataFrame({"id": ["a"], "codes": [[1, 9, 1, 1]]}))
    assert exact.iloc[0].tolist() == ["add", True, False, 1.0, 1.0, 0]
    # a background edit changes every code: nothing lies outside its region
    bg = pd.DataFrame({"id": ["d"], "kind": ["background"], "source_codes": [[1, 1]], "target_codes": [[2, 2]]})
    assert failures(bg, pd.DataFrame({"id": ["d"], "codes": [[2, 1]]})).iloc[0].tolist() == [
        "background", False, False, 0.5, 0.5, 0]


def test_region_stats_hand_worked():
    """Two edits of 4 codes, worked by hand: region = {1, 3} and {2}; 5 codes outside it."""
    from rm_core.metrics.image_edit import region_stats

    src = np.array([[1, 1, 2, 2], [3, 3, 3, 3]])
    tgt = np.array([[1, 5, 2, 6], [3, 3, 7, 3]])
    codes = np.array([[1, 5, 2, 2], [3, 4, 3, 3]])  # edit 0: one region code right; edit 1: one collateral
    traj = [[1, 1, 2, 2, 1, -1, 2, 2, 1, 5, 2, 2],    # T = 2: turn 1 masks region code 1, never code 3
            [3, 3, 3, 3, 3, 3, 3, 3, 3, 4, -1, 3]]    # turn 2 masks the region code
    s = region_stats(codes, traj, src, tgt)
    assert s["changed"] == pytest.approx(1 / 3) and s["exact"] == pytest.approx(1 / 3)
    assert s["outside"] == pytest.approx(1 / 5) and s["unchanged_edits"] == 0.0
    assert s["remask_t1"] == pytest.approx(1 / 3) and s["remask_any"] == pytest.approx(2 / 3)
    assert s["restored"] == pytest.approx(1 / 3)  # edit 1 position 2 came back; edit 0 position 3 never left
    assert region_stats(src, None, src, tgt)["unchanged_edits"] == 1.0


def test_margin_summary_hand_worked():
    """bench/image_margins.py's summary on two 'add' edits and one 'background' edit of 3 cells."""
    from bench.image_margins import margin_summary

    src = np.array([[0, 0, 0], [0, 0, 5], [1, 1, 1]])
    tgt = np.array([[0, 7, 0], [7, 0, 5], [2, 2, 2]])          # regions {1}, {0}, {0, 1, 2}
    margins = np.array([[-1.0, 2.0, 3.0],                       # region 2.0 > 0, but cell 2 is higher
                        [-0.5, -4.0, -9.0],                     # region highest, not re-masked
                        [1.0, 2.0, -1.0]])
    d = margin_summary(margins, src, tgt, np.array(["add", "add", "background"])).set_index("kind")
    assert d.loc["add", "edits"] == 2 and d.loc["add", "median_in"] == pytest.approx(0.75)
    assert d.loc["add", "median_out"] == pytest.approx(-2.5)    # median of -1, 3, -4, -9
    assert d.loc["add", "remask_in"] == 0.5 and d.loc["add", "remask_out"] == 0.25
    assert d.loc["add", "top_in_region"] == 0.5
    assert d.loc["background", "remask_in"] == pytest.approx(2 / 3)
    assert np.isnan(d.loc["background", "median_out"]) and np.isnan(d.loc["background", "top_in_region"])
