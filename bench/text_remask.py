"""Does RM re-mask its own errors? The first turn of Eq. 1 on RM's own draft, on validation.

For every RM model (and the generation tasks of the chosen split, default validation), decode
the first state exactly as evaluation does (``rm.eval.init`` = draft: ``rm.eval.draft_steps``
low-confidence steps of the model itself), run one turn of Eq. 1, and compare with the reference
response laid out like training (response + EOS fill):
- ``own_errors``: answer tokens of the draft that differ from the reference (% of tokens);
- ``remask_errors``: of those, the share the first turn sends back to MASK (recall on its own
  errors: what issue 15 asks a corruption proposal to raise);
- ``remask_correct``: of the correct draft tokens, the share it re-masks (false alarms);
- ``fixed``: of the drafts graded wrong, the share graded right after all ``rm.eval.turns`` turns.

    python bench/text_remask.py --results results --models rm_s0 rm_s1 --out remask.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from rm_core.backbones.load import load_reference
from rm_core.config import load_config
from rm_core.metrics.code_sandbox import configure as configure_code_sandbox
from rm_core.pipeline.text.evaluate import _grader, generation_docs, make_lm
from rm_core.pipeline.text.model import PairEncoder


@torch.no_grad()
def remask_rates(cfg: dict, model, tok, info: dict, split: str, limit: int | None) -> dict:
    """{task: {own_errors, remask_errors, remask_correct, fixed, n}} of one RM model."""
    lm = make_lm(model, tok, cfg, "rm")
    G, T, bs = int(cfg["layout"]["gen_length"]), int(cfg["rm"]["eval"]["turns"]), int(cfg["eval"]["batch_size"])
    out = {}
    for task, docs in generation_docs(info, limit, split).items():
        grade = _grader(task)
        refs = pd.DataFrame({"id": docs["prompt_id"], "prompt": docs["prompt"],
                             "response": [d["response"] for d in docs["doc"]]})
        enc = PairEncoder(tok, cfg, refs)
        n_err = n_err_remask = n_ok = n_ok_remask = n_wrong = n_fixed = 0
        for s in range(0, len(enc), bs):
            rows = list(range(s, min(s + bs, len(enc))))
            b = enc.batch(rows)
            x0 = torch.where(b["editable"], torch.full_like(b["ids"], tok.mask_id), b["ids"])
            traj = lm.sample_trajectory(x0, b["editable"], b["attention_mask"], T)  # (B, T+1, N)
            draft, first, last = traj[:, 0, -G:], traj[:, 1, -G:], traj[:, -1, -G:]
            err = draft != b["ids"][:, -G:]
            remasked = first == tok.mask_id
            n_err += int(err.sum())
            n_err_remask += int((err & remasked).sum())
            n_ok += int((~err).sum())
            n_ok_remask += int((~err & remasked).sum())
            for j, r in enumerate(rows):
                doc, key = docs["doc"].iloc[r], docs["prompt_id"].iloc[r]
                if not grade(doc, lm._decode_answer(draft[j].tolist())[0], key):
                    n_wrong += 1
                    n_fixed += bool(grade(doc, lm._decode_answer(last[j].tolist())[0], key))
        out[task] = {"own_errors": 100.0 * n_err / max(n_err + n_ok, 1),
                     "remask_errors": 100.0 * n_err_remask / max(n_err, 1),
                     "remask_correct": 100.0 * n_ok_remask / max(n_ok, 1),
                     "fixed": 100.0 * n_fixed / max(n_wrong, 1), "n": len(enc)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--config", nargs="*", default=[], help="config overlays (over config.yaml)")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--models", nargs="+", default=None, help="RM model folders under text/models (default: rm_*)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--label", default="", help="a name for the setting, copied into every row")
    ap.add_argument("--out", default=None, help="append the rows as JSON lines here")
    args = ap.parse_args()
    cfg = load_config(*args.config)["text"]
    configure_code_sandbox(cfg["eval"]["unsafe_code_exec"])
    root = Path(args.results) / "text"
    info = json.loads((root / "data" / "tasks.json").read_text())
    names = args.models or sorted(p.name for p in (root / "models").iterdir()
                                  if p.name.startswith("rm") and (p / "model.json").exists())
    for name in names:
        model, tok = load_reference(root / "models" / name / "model.json", cfg["backbone"]["dtype"])
        model.eval()
        for task, r in remask_rates(cfg, model, tok, info, args.split, args.limit).items():
            row = {"model": name, "label": args.label, "split": args.split, "task": task,
                   **{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}}
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
