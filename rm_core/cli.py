"""``rm-core <stage> --params JSON --<name> VALUE ...``: one entry point for every stage the rules call.

A stage is a function of ``rm_core.pipeline`` whose first parameter ``cfg`` receives the rule's
config section (``--params``, JSON) and whose other parameters are the rule's inputs, outputs and
values, by the names the rule uses (``--fig-scaling`` is ``fig_scaling``). The command line of a
stage is read from the function's signature: a parameter with a default is optional (an optional
output the rule does not have is simply not given), a ``list`` parameter takes several values.
Every stage logs to stderr (the rule sends it to ``logs/``) and writes its outputs atomically.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import sys

STAGES = {
    "sudoku-data": "rm_core.pipeline.sudoku.data:make_data",
    "sudoku-train": "rm_core.pipeline.sudoku.train:train_variant",
    "sudoku-eval": "rm_core.pipeline.sudoku.evaluate:evaluate",
    "sudoku-report": "rm_core.pipeline.sudoku.report:report",
    "text-data": "rm_core.pipeline.text.data:make_data",
    "text-base": "rm_core.pipeline.text.train:prepare_base",
    "text-probe": "rm_core.pipeline.text.probe:probe",
    "text-train": "rm_core.pipeline.text.train:train",
    "text-eval": "rm_core.pipeline.text.evaluate:evaluate",
    "text-report": "rm_core.pipeline.text.report:report",
    "text-validation": "rm_core.pipeline.text.report:validation_table",
    "image-data": "rm_core.pipeline.image.data:make_data",
    "image-vq": "rm_core.pipeline.image.data:make_vq",
    "image-tokens": "rm_core.pipeline.image.data:make_tokens",
    "image-base": "rm_core.pipeline.image.train:train_base",
    "image-train": "rm_core.pipeline.image.train:train_model",
    "image-eval": "rm_core.pipeline.image.evaluate:evaluate",
    "image-report": "rm_core.pipeline.image.report:report",
    "image-validation": "rm_core.pipeline.image.report:validation_table",
    "fetch": "rm_core.fetch:fetch_stage",
}


def stage_function(name: str):
    module, func = STAGES[name].split(":")
    return getattr(importlib.import_module(module), func)


def _scalar_type(annotation):
    """The argparse type of a parameter annotation (the modules use ``from __future__ import
    annotations``, so annotations are strings)."""
    text = str(annotation)
    for name, typ in (("int", int), ("float", float)):
        if text.split("|")[0].strip() == name:
            return typ
    return str


def add_stage(sub, name: str, fn) -> None:
    p = sub.add_parser(name, help=(inspect.getdoc(fn) or "").split("\n")[0].replace("%", "%%"))
    p.add_argument("--threads", default=1, type=int, help="torch threads")
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "cfg":
        p.add_argument("--params", required=True, help="the rule's config section as JSON")
        params = params[1:]
    for prm in params:
        flag = "--" + prm.name.replace("_", "-")
        optional = prm.default is not inspect.Parameter.empty
        if str(prm.annotation).startswith("list"):
            p.add_argument(flag, dest=prm.name, nargs="+", required=not optional, default=None)
        else:
            p.add_argument(flag, dest=prm.name, type=_scalar_type(prm.annotation), required=not optional,
                           default=prm.default if optional else None)
    p.set_defaults(stage=name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rm-core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        add_stage(sub, name, stage_function(name))
    return parser


def main(argv=None) -> None:
    args = vars(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch

    torch.set_num_threads(max(1, int(args.pop("threads"))))
    fn = stage_function(args.pop("stage"))
    args.pop("command")
    if "params" in args:
        args = {"cfg": json.loads(args.pop("params")), **args}
    fn(**args)


if __name__ == "__main__":
    main()
