"""Table 2 over seeds: mean and the half-width of the 95 % t-interval, by hand."""

import math

import pandas as pd
import pytest

from rm_core.pipeline.sudoku.report import TABLE2_COLUMNS, seed_summary


def test_seed_summary_mean_and_interval_by_hand():
    rows = []
    for seed, exact in zip((0, 1, 2), (80.0, 82.0, 84.0)):
        rows.append({"variant": "rm_hr", "seed": seed, "Exact Acc (%)": exact, "Valid Rate (%)": 90.0,
                     "Replay Mistake (%)": 1.0 + seed, "Conflict Cells / board": 0.5})
    rows.append({"variant": "rm_no_hr", "seed": 0, "Exact Acc (%)": 70.0, "Valid Rate (%)": 75.0,
                 "Replay Mistake (%)": 2.0, "Conflict Cells / board": 1.0})
    out = seed_summary(pd.DataFrame(rows))
    assert list(out.index) == ["rm_hr", "rm_no_hr"]
    t975_df2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (tables)
    assert out.loc["rm_hr", "Exact Acc (%)"] == pytest.approx(82.0)
    assert out.loc["rm_hr", "Exact Acc (%) ± 95%"] == pytest.approx(t975_df2 * 2.0 / math.sqrt(3))
    assert out.loc["rm_hr", "Replay Mistake (%) ± 95%"] == pytest.approx(t975_df2 * 1.0 / math.sqrt(3))
    assert out.loc["rm_hr", "Valid Rate (%) ± 95%"] == pytest.approx(0.0)
    assert math.isnan(out.loc["rm_no_hr", "Exact Acc (%) ± 95%"])  # one seed: no interval
    assert out.loc["rm_hr", "Exact per seed"] == "s0: 80.0, s1: 82.0, s2: 84.0"
    assert set(TABLE2_COLUMNS) <= set(out.columns)
