"""``rm-core text-*`` entry points (registered in rm_core.cli.COMMANDS): thin wrappers that parse
the rule's arguments and call the stage functions of the text track."""

from __future__ import annotations


def _text_data(cfg, a):
    from . import text
    text.make_data(cfg, a.seed, a.out_dir)


def _text_base(cfg, a):
    from . import text_train
    text_train.prepare_base(cfg, a.seed, a.pairs, a.out)


def _text_probe(cfg, a):
    from . import text
    text.probe(cfg, a.base, a.pairs, a.out)


def _text_train(cfg, a):
    from . import text_train
    probe = None if a.probe in ("", "none") else a.probe
    text_train.train(cfg, a.objective, a.seed, a.pairs, a.base, probe, a.out)


def _text_eval(cfg, a):
    from . import text_eval
    text_eval.evaluate(cfg, a.model, a.name, a.sampler, a.tasks, a.samples, a.summary,
                       out_scaling=_opt(a.scaling), out_traj=_opt(a.trajectories), split=a.split)


def _opt(path: str):
    """'none' (or empty) for an output the rule does not have."""
    return None if path in ("", "none") else path


def _text_report(cfg, a):
    from . import text_report
    text_report.report(cfg, a.scale, a.tasks, a.summaries, a.samples, a.scaling, a.trajectories,
                       a.table3, a.table4, a.fig_scaling, a.fig_trajectory)


def _text_validation(cfg, a):
    from . import text_report
    text_report.validation_table(a.scale, a.summaries, a.table)


TEXT_COMMANDS = {
    "text-data": (_text_data, [("--seed", int), ("--out-dir", str)]),
    "text-base": (_text_base, [("--seed", int), ("--pairs", str), ("--out", str)]),
    "text-probe": (_text_probe, [("--base", str), ("--pairs", str), ("--out", str)]),
    "text-train": (_text_train, [("--objective", str), ("--seed", int), ("--pairs", str), ("--base", str),
                                 ("--probe", str), ("--out", str)]),
    "text-eval": (_text_eval, [("--model", str), ("--name", str), ("--sampler", str), ("--tasks", str),
                               ("--samples", str), ("--summary", str), ("--scaling", str),
                               ("--trajectories", str), ("--split", str)]),
    "text-report": (_text_report, [("--scale", str), ("--tasks", str), ("--summaries", list), ("--samples", list),
                                   ("--scaling", list), ("--trajectories", str), ("--table3", str), ("--table4", str),
                                   ("--fig-scaling", str), ("--fig-trajectory", str)]),
    "text-validation": (_text_validation, [("--scale", str), ("--summaries", list), ("--table", str)]),
}
