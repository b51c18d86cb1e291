"""bench/table2_paper.py --merge: runs made in separate processes joined into one Table 2."""

import pandas as pd
import pytest

from bench.table2_paper import merge_runs
from rm_core.config import load_config


def _run(prefix, variant, exact, steps=5000, seed=0):
    row = {"variant": variant, "seed": seed, "steps": steps, "wall_s": 1.0, "exact": exact, "valid": exact, "replay": 1.0,
           "conflicts": 0.5, "paper_exact": 90.0, "paper_valid": 90.0, "paper_replay": 0.1, "paper_conflicts": 0.3,
           "schedule_steps": 5000, "hardware": "cpu", "config": "config/paper.yaml + config/sudoku_cpu.yaml",
           "command": f"python bench/table2_paper.py --variants {variant}"}
    pd.DataFrame([row]).to_csv(f"{prefix}.csv", index=False)
    pd.DataFrame([{"variant": variant, "seed": seed, "steps": s, "split": "val", "exact": exact * s / steps}
                  for s in (steps, steps // 2)]).to_csv(f"{prefix}_curve.csv", index=False)


def test_merge_orders_rows_by_the_config_and_keeps_every_run(tmp_path):
    cfg = load_config("config/paper.yaml")["sudoku"]
    _run(tmp_path / "a", "rm_hr_decay_her", 79.2)
    _run(tmp_path / "b", "rm_no_hr", 70.0)
    final = merge_runs([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "t", cfg)
    assert final["variant"].tolist() == ["rm_no_hr", "rm_hr_decay_her"]  # the config's order, not the arguments'
    curve = pd.read_csv(tmp_path / "t_curve.csv")
    assert curve[["variant", "steps"]].values.tolist() == [["rm_no_hr", 2500], ["rm_no_hr", 5000],
                                                          ["rm_hr_decay_her", 2500], ["rm_hr_decay_her", 5000]]
    md = (tmp_path / "t.md").read_text()
    assert "every run to the end of its 5000-step schedule" in md
    assert md.count("python bench/table2_paper.py --variants") == 2
    assert "| 79.2 | 90.0 |" in md and "| 70.0 | 90.0 |" in md
    assert all((tmp_path / f"t_curve.{ext}").stat().st_size > 1000 for ext in ("png", "pdf"))  # the curve's figure


def test_merge_says_when_a_run_stopped_early_and_refuses_duplicates(tmp_path):
    cfg = load_config("config/paper.yaml")["sudoku"]
    _run(tmp_path / "a", "rm_hr", 50.0, steps=1200)
    _run(tmp_path / "b", "rm_no_hr", 60.0)
    merge_runs([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "t", cfg)
    assert "NOT the converged numbers" in (tmp_path / "t.md").read_text()
    _run(tmp_path / "c", "rm_hr", 51.0)
    with pytest.raises(SystemExit, match="rm_hr"):
        merge_runs([str(tmp_path / "a"), str(tmp_path / "c")], tmp_path / "t", cfg)
    pd.read_csv(tmp_path / "c.csv").drop(columns="command").to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(SystemExit, match="command"):
        merge_runs([str(tmp_path / "c")], tmp_path / "t", cfg)


def test_merge_gives_the_mean_and_t_interval_over_seeds(tmp_path):
    cfg = load_config("config/paper.yaml")["sudoku"]
    _run(tmp_path / "a", "rm_hr_decay_her", 79.0)
    _run(tmp_path / "b", "rm_hr_decay_her", 83.0, seed=1)
    _run(tmp_path / "c", "rm_no_hr", 70.0)
    merge_runs([str(tmp_path / p) for p in "abc"], tmp_path / "t", cfg)
    md = (tmp_path / "t.md").read_text()
    # two seeds 79 and 83: mean 81, sd 2*sqrt(2), half-width t(0.975, 1) * 2 = 12.706 * 2 = 25.41
    assert "| RM + HR + decay + HER | 2 | 81.0 ± 25.4 | 93.4 |" in md
    assert "| RM w/o HR | 1 | 70.0 | 82.4 |" in md  # one seed: no interval
