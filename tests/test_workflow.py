"""The Snakemake workflow: config validation, dry run, lint, and the mini DAG end to end."""

import pandas as pd
import pytest
import yaml
from workflow_copy import run_snakemake


def snakemake(args, cwd, timeout=600):
    return run_snakemake(args, cwd, timeout=timeout)


def write_override(workdir, override):
    path = workdir / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    return path.name


def test_unknown_key_is_an_error_naming_it(workdir):
    r = snakemake(["all", "-n", "--configfile", write_override(workdir, {"sudoku": {"n_trian": 5}})], workdir)
    assert r.returncode != 0
    assert "n_trian" in r.stderr + r.stdout


def test_wrong_type_is_an_error_naming_the_key(workdir):
    r = snakemake(["all", "-n", "--configfile", write_override(workdir, {"rm": {"T": "six"}})], workdir)
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert "'six' is not of type 'integer'" in out and "T" in out


def test_bad_history_kind_is_rejected(workdir):
    bad = {"sudoku": {"variants": {"rm_hr": {"kind": "rotary"}}}}
    r = snakemake(["all", "-n", "--configfile", write_override(workdir, bad)], workdir)
    assert r.returncode != 0 and "rotary" in r.stderr + r.stdout


def test_dry_run_lists_every_stage_and_lint_is_clean(workdir):
    r = snakemake(["-n", "all"], workdir)
    assert r.returncode == 0, r.stderr
    for rule in ("sudoku_data", "sudoku_train", "sudoku_eval", "table2"):
        assert rule in r.stdout
    lint = snakemake(["--lint"], workdir)
    assert lint.returncode == 0 and "good condition" in lint.stdout + lint.stderr


TINY = {
    "sudoku": {"n_train": 48, "n_val": 12, "n_test": 12, "test_corruptions": 2, "rm": {"eval": {"scaling_turns": 7}},
               "model": {"d_model": 32, "n_layers": 1, "n_heads": 2},
               "train": {"steps": 6, "batch_size": 8, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 3}},
    "text": {"data": {"mini": {"n_train": 16, "n_test": 6}},  # the text track, tiny (tests/test_text_pipeline.py)
             "backbone": {"model": {"d_model": 32, "n_layers": 1, "n_heads": 2}},
             "base": {"train": {"steps": 4, "batch_size": 4, "lr": 3.0e-3, "warmup_steps": 1, "log_every": 2}},
             "finetune": {"train": {"steps": 2, "batch_size": 4, "lr": 1.0e-3, "warmup_steps": 1, "log_every": 1}},
             "probe": {"top_k": 4},
             "eval": {"low_confidence": {"steps": 4, "block_length": None}},
             "rm": {"eval": {"turns": 2, "scaling_turns": 3, "init": "draft", "draft_steps": 2}}},
    "image": {"seeds": [0, 1],
              "data": {"n_train": 48, "n_test": 6, "scenes": {"n_base": 48}},  # tests/test_image_pipeline.py
              "model": {"small": {"d_model": 32, "n_layers": 1, "n_heads": 2}},
              "base": {"noise_steps": 1, "train": {"steps": 3, "batch_size": 4, "log_every": 1}},
              "train": {"steps": 2, "batch_size": 4, "log_every": 1},
              "eval": {"maskgit_steps": 2, "batch_size": 8, "n_figure": 2},
              "rm": {"eval": {"turns": 2}}},
}


@pytest.mark.slow
def test_mini_dag_end_to_end_and_param_edit_reruns_only_dependents(workdir):
    tiny = write_override(workdir, TINY)
    r = snakemake(["all", "-c2", "--configfile", tiny], workdir, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_csv(workdir / "results/tables/table2.csv")
    assert len(table) == 4 and (table["scale"] == "mini").all()
    assert table["Exact Acc (%) (ours)"].between(0, 100).all()
    assert (table["Exact Acc (%) (paper)"] == [82.4, 91.4, 89.4, 93.4]).all()
    for fig in ("sudoku_trajectory", "sudoku_turns"):
        for ext in ("png", "pdf"):
            assert (workdir / f"results/figures/{fig}.{ext}").stat().st_size > 1000
    metrics = pd.read_parquet(workdir / "results/sudoku/eval/rm_hr_s0.parquet")
    assert len(metrics) == 24 and metrics["board_id"].is_unique
    t1 = pd.read_csv(workdir / "results/tables/table1.csv")  # the image track: SFT and RM over two seeds
    assert len(t1) == 3 and t1["Seeds"].tolist() == ["0", "0, 1", "0, 1"]
    assert t1["Coverage 95% CI"].str.match(r"^\[-?[\d.]+, -?[\d.]+\]$").all()
    # the HTML report gathers every table and figure of the run, with its caption
    r = snakemake(["--report", "report.html", "--configfile", tiny], workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    for name in ("table1.csv", "table2.csv", "table3.csv", "table4.csv", "sudoku_trajectory.png",
                 "sudoku_turns.png", "text_turns.png", "text_trajectory.png", "image_edits.png"):
        assert name in html, f"{name} missing from the report"
    assert "Table 1: image editing" in html and "paper" in html
    # editing an evaluation parameter reruns evaluation and the table, not data or training
    TINY2 = {**TINY, "sudoku": {**TINY["sudoku"], "rm": {"eval": {"scaling_turns": 8}}}}
    r = snakemake(["all", "-n", "--configfile", write_override(workdir, TINY2)], workdir)
    assert r.returncode == 0, r.stderr
    assert "sudoku_eval" in r.stdout and "table2" in r.stdout
    assert "sudoku_train" not in r.stdout and "sudoku_data" not in r.stdout
