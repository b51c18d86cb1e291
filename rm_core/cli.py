"""Command-line entry points called by the Snakemake rules (``rm-core <command> ...``).

Every command takes the relevant config section as JSON (``--params``), its input and
output paths, logs to stderr (the rule sends it to ``logs/``) and writes atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import torch


def _setup(args) -> dict:
    """Logging to stderr, the torch thread count, and the rule's config section (``--params``)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(max(1, int(args.threads)))
    return json.loads(args.params)


def _sudoku_data(cfg, a):
    from .pipeline import sudoku
    sudoku.make_data(cfg, a.seed, a.train, a.test, a.val)


def _sudoku_train(cfg, a):
    from .pipeline import sudoku
    sudoku.train_variant(cfg, a.variant, a.seed, a.train, a.out_dir)


def _sudoku_eval(cfg, a):
    from .pipeline import sudoku
    sudoku.evaluate(cfg, a.variant, a.model_dir, a.test, a.metrics, a.trajectories, a.scaling)


def _sudoku_report(cfg, a):
    from .pipeline import sudoku
    sudoku.report(cfg, a.scale, a.metrics, a.scaling, a.trajectories, a.table, a.fig_trajectory, a.fig_scaling)


COMMANDS = {
    "sudoku-data": (_sudoku_data, [("--seed", int), ("--train", str), ("--test", str), ("--val", str)]),
    "sudoku-train": (_sudoku_train, [("--seed", int), ("--variant", str), ("--train", str), ("--out-dir", str)]),
    "sudoku-eval": (_sudoku_eval, [("--variant", str), ("--model-dir", str), ("--test", str), ("--metrics", str),
                                   ("--trajectories", str), ("--scaling", str)]),
    "sudoku-report": (_sudoku_report, [("--scale", str), ("--metrics", list), ("--scaling", list),
                                       ("--trajectories", str), ("--table", str), ("--fig-trajectory", str),
                                       ("--fig-scaling", str)]),
}


from .pipeline.text_cli import TEXT_COMMANDS  # noqa: E402  (text track: rm-core text-*)

COMMANDS.update(TEXT_COMMANDS)
from .pipeline.image_cli import IMAGE_COMMANDS  # noqa: E402  (image track: rm-core image-*)

COMMANDS.update(IMAGE_COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rm-core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, opts) in COMMANDS.items():
        p = sub.add_parser(name)
        p.add_argument("--params", required=True, help="the config section as JSON")
        p.add_argument("--threads", default=1, type=int)
        for flag, typ in opts:
            if typ is list:
                p.add_argument(flag, nargs="+", required=True)
            else:
                p.add_argument(flag, type=typ, required=True)
        p.set_defaults(fn=fn)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    args.fn(_setup(args), args)


if __name__ == "__main__":
    main()
