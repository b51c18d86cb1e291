"""Can RM's turns fix another model's errors when they cannot fix its own? (issue 15, diagnostic)

For each seed s: vanilla SFT ``sft_s<s>`` and RM ``rm_s<s>`` each draft every validation problem
with the low-confidence sampler (``--draft-steps``, RM's configured draft length by default),
then RM ``rm_s<s>`` runs its configured T turns of Eq. 1 (History Reference as configured) from
either draft. Reports, per task, the draft's accuracy, the accuracy after RM's turns, and the
answers the turns fixed (wrong -> right) and broke (right -> wrong). If RM fixes SFT's drafts but
not its own, its revision works and its own errors are the ones it believes; if it fixes neither,
the revision skill itself is missing. Not a method: RM is judged from its own draft everywhere else.

    python bench/text_cross_revision.py --results results --config config/mini_full.yaml --seeds 0 1 2
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
from text_budget import emit


def load(root: Path, name: str, dtype: str):
    model, tok = load_reference(root / "models" / name / "model.json", dtype)
    return model.eval(), tok


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--config", nargs="*", default=[], help="config overlays (over config.yaml)")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--draft-steps", type=int, default=None, help="default: text.rm.eval.draft_steps")
    ap.add_argument("--out", default=None, help="append the rows as JSON lines here")
    args = ap.parse_args()
    cfg = load_config(*args.config)["text"]
    configure_code_sandbox(cfg["eval"]["unsafe_code_exec"])
    root = Path(args.results) / "text"
    info = json.loads((root / "data" / "tasks.json").read_text())
    D = args.draft_steps or int(cfg["rm"]["eval"]["draft_steps"])
    draft_cfg = merge(cfg, {"eval": {"low_confidence": {"steps": D}}})
    turns_cfg = merge(cfg, {"rm": {"eval": {"init": "mask"}}})  # "mask": Eq. 1 starts from the state it is given
    dtype = cfg["backbone"]["dtype"]
    for seed in args.seeds:
        rm_model, tok = load(root, f"rm_s{seed}", dtype)
        turns_lm = make_lm(rm_model, tok, turns_cfg, "rm")
        for drafter in (f"sft_s{seed}", f"rm_s{seed}"):
            d_model = rm_model if drafter.startswith("rm") else load(root, drafter, dtype)[0]
            draft_lm = make_lm(d_model, tok, draft_cfg, "low_confidence")
            for task, docs in generation_docs(info, None, args.split).items():
                grade, before, after, changed = _grader(task), [], [], []
                for _, part, x0, ed, at, width in doc_batches(cfg, tok, draft_lm, docs):
                    xd, _ = draft_lm._sample(x0, ed, at)
                    xr, _ = turns_lm._sample(xd.to(x0.device), ed, at)
                    for j in range(len(part)):
                        doc, key = part["doc"].iloc[j], part["prompt_id"].iloc[j]
                        before.append(grade(doc, draft_lm._decode_answer(xd[j, width:].tolist())[0], key))
                        after.append(grade(doc, turns_lm._decode_answer(xr[j, width:].tolist())[0], key))
                        changed.append(int((xd[j, width:] != xr[j, width:]).sum()))
                b, a = np.array(before), np.array(after)
                row = {"seed": seed, "drafter": drafter, "reviser": f"rm_s{seed}", "task": task, "split": args.split,
                       "draft_steps": D, "turns": int(cfg["rm"]["eval"]["turns"]), "n": len(b),
                       "draft_acc": 100.0 * b.mean(), "after_turns_acc": 100.0 * a.mean(),
                       "fixed": int((~b & a).sum()), "broken": int((b & ~a).sum()),
                       "answers_changed_pct": 100.0 * float(np.mean(np.array(changed) > 0))}
                emit(row, args.out)


if __name__ == "__main__":
    main()
