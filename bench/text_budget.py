"""Accuracy against forward passes: base, vanilla SFT and RM at several decoding budgets.

For a budget of F forward passes per answer: base and SFT run LLaDA's low-confidence sampler
for F steps (38 steps = one token per step for the mini answer region; fewer steps reveal
several tokens at once, i.e. parallel decoding); RM drafts for F − T steps with the same sampler
and then runs T turns of Eq. 1 (the configured ``rm.eval``; ``--rm-turns`` gives other splits k,
a draft of F − k steps + k turns, so budgets at or under T get RM rows too; k = 0 is RM's draft
alone), so every model gets F passes; the row ``rm (from MASK)`` runs F turns of Eq. 1 from an
all-MASK answer instead. Graded with the tasks' own graders on the generation tasks (math, code)
of the chosen split (default: validation; choices are made there).

    python bench/text_budget.py --results results --budgets 8 12 19 38 --out budget.jsonl
    python bench/text_budget.py --results results --budgets 2 4 8 --rm-turns 0 1 2 6
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from rm_core.backbones.load import load_reference
from rm_core.config import load_config
from rm_core.method import merge
from rm_core.metrics.code_sandbox import configure as configure_code_sandbox
from rm_core.pipeline.text.evaluate import _grader, doc_batches, generation_docs, make_lm


@torch.no_grad()
def accuracy(cfg: dict, model, tok, sampler: str, info: dict, split: str, limit: int | None,
             tasks: list[str] | None = None) -> dict:
    """{task: accuracy %} of one model and sampler over the generation docs of ``split`` (``tasks``: only those)."""
    lm = make_lm(model, tok, cfg, sampler)
    out = {}
    for task, docs in generation_docs(info, limit, split).items():
        if tasks and task not in tasks:
            continue
        grade, ok = _grader(task), []
        for _, part, x0, ed, at, width in doc_batches(cfg, tok, lm, docs):
            x, _ = lm._sample(x0, ed, at)
            for j in range(len(part)):
                text, _ = lm._decode_answer(x[j, width:].tolist())
                ok.append(grade(part["doc"].iloc[j], text, part["prompt_id"].iloc[j]))
        out[task] = 100.0 * float(np.mean(ok))
    return out


def emit(row: dict, out: str | None) -> None:
    """Print ``row`` (floats rounded) and append it, unrounded, as a JSON line to ``out``."""
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--config", nargs="*", default=[], help="config overlays (over config.yaml)")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--budgets", type=int, nargs="+", default=[8, 12, 19, 38])
    ap.add_argument("--models", nargs="+", default=None, help="model folders under text/models (default: all)")
    ap.add_argument("--rm-turns", type=int, nargs="+", default=None,
                    help="RM rows: a draft of F - k steps + k turns for each k < F; 0: the draft alone (default: the configured T)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--tasks", nargs="+", default=None, help="generation tasks to decode (default: all)")
    ap.add_argument("--out", default=None, help="append the rows as JSON lines here")
    args = ap.parse_args()
    cfg0 = load_config(*args.config)["text"]
    configure_code_sandbox(cfg0["eval"]["unsafe_code_exec"])
    root = Path(args.results) / "text"
    info = json.loads((root / "data" / "tasks.json").read_text())
    ks = args.rm_turns or [int(cfg0["rm"]["eval"]["turns"])]
    names = args.models or sorted(p.name for p in (root / "models").iterdir() if (p / "model.json").exists())
    for name in names:
        model, tok = load_reference(root / "models" / name / "model.json", cfg0["backbone"]["dtype"])
        model.eval()
        for F in args.budgets:
            runs, lc_F = [], merge(cfg0, {"eval": {"low_confidence": {"steps": F}}})  # the sampler for all F passes
            if name.startswith("rm"):
                for k in ks:
                    if k == 0:  # RM's draft alone
                        runs.append(("low_confidence", f"draft {F} + 0 turns", lc_F))
                    elif k < F:
                        runs.append(("rm", f"draft {F - k} + {k} turns",
                                     merge(cfg0, {"rm": {"eval": {"init": "draft", "draft_steps": F - k, "turns": k}}})))
                runs.append(("rm", f"{F} turns from MASK",
                             merge(cfg0, {"rm": {"eval": {"init": "mask", "turns": F, "early_stop": False}}})))
            else:
                runs.append(("low_confidence", f"{F} steps", lc_F))
            for sampler, label, c in runs:
                row = {"model": name, "budget": F, "decoding": label, "split": args.split,
                       **accuracy(c, model, tok, sampler, info, args.split, args.limit, args.tasks)}
                emit(row, args.out)


if __name__ == "__main__":
    main()
