"""rm-core: one command line per stage, read from the stage function's signature; every command a
rule of the workflow writes parses (mini and paper scale), so rules and stage functions agree."""

import shlex

import pytest
from workflow_copy import run_snakemake

from rm_core.cli import STAGES, build_parser, stage_function


def test_each_stage_takes_its_parameters_by_name():
    p = build_parser()
    a = p.parse_args(["text-eval", "--params", "{}", "--model", "m.json", "--name", "base", "--sampler", "rm",
                      "--tasks", "t.json", "--samples", "s.parquet", "--summary", "s.json"])
    assert (a.model, a.scaling, a.trajectories, a.split, a.limit) == ("m.json", None, None, "test", None)
    a = p.parse_args(["sudoku-report", "--params", "{}", "--scale", "mini", "--metrics", "a", "b", "--scaling", "c",
                      "--trajectories", "t", "--table", "x.md", "--fig-trajectory", "f.png", "--fig-scaling", "g.png"])
    assert a.metrics == ["a", "b"] and a.fig_trajectory == "f.png"
    a = p.parse_args(["sudoku-train", "--params", "{}", "--variant", "v", "--seed", "3", "--train", "t", "--model", "m"])
    assert a.seed == 3 and a.stop_after is None
    with pytest.raises(SystemExit):  # a missing required input
        p.parse_args(["sudoku-train", "--params", "{}", "--variant", "v", "--seed", "3", "--train", "t"])
    with pytest.raises(SystemExit):  # text-validation takes no config section
        p.parse_args(["text-validation", "--params", "{}", "--scale", "mini", "--summaries", "a", "--table", "t"])
    assert all(callable(stage_function(s)) for s in STAGES)


@pytest.mark.parametrize("args", [["all"], ["--profile", "slurm", "all"], ["validation"]])
def test_every_command_the_rules_write_parses(workdir, args):
    r = run_snakemake(["-n", "-p", *args], workdir)
    assert r.returncode == 0, r.out[-3000:]
    commands = [line.split("Shell command: ", 1)[1] for line in r.stdout.splitlines() if "Shell command: " in line]
    commands = [c for c in commands if "rm-core" in c or "rm_core.cli" in c]
    assert len(commands) > 10
    parser = build_parser()
    for c in commands:
        words = shlex.split(c.split(" 2> ")[0])
        start = words.index("rm-core") + 1 if "rm-core" in words else words.index("rm_core.cli") + 1
        parser.parse_args(words[start:])  # SystemExit (a failing test) on an unknown or missing flag
