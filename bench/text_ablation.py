"""RM training settings compared on the validation split, from one DAG's base (issue 15's ablation).

Every variant is a config overlay over the text section (JSON). For each variant and seed it
probes the frozen base when the variant's probe settings differ from the DAG's (cached), trains
RM from the DAG's base with the DAG's pairs and steps x batch (the same compute as SFT), decodes
the validation split as Table 3 decodes the test split, and measures how often RM's first turn
re-masks its own draft errors (``bench/text_remask.py``). One JSON line per (variant, seed).

    python bench/text_ablation.py --results results --work results/text_ablation --seeds 0 1 2 \\
        --variant paper='{}' draft50='{"probe": {"draft_share": 0.5}}' \\
                  mdm25='{"rm_mix": {"mdm_share": 0.25}}' --out ablation.jsonl

The test split is never read here.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from rm_core.backbones.load import load_reference
from rm_core.config import load_config
from rm_core.method import merge
from rm_core.pipeline.text import probe as text_probe
from rm_core.pipeline.text import train as text_train
from rm_core.pipeline.text.evaluate import evaluate
from rm_core.pipeline.text.report import model_family, model_seed, task_score
from text_remask import remask_rates


def val_scores(results: dict) -> dict:
    """{task: accuracy %} from lm-eval results, with Table 3's metric per task."""
    return {t: round(task_score({"results": results}, t), 2) for t in results}


def emit(row: dict, out: str) -> None:
    print(json.dumps(row), flush=True)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def run_variant(cfg: dict, name: str, seed: int, root: Path, work: Path, limit: int | None) -> dict:
    """Train (or reuse) one RM variant and seed; its validation accuracy and re-mask rates."""
    pairs, base = str(root / "data" / "train_pairs.parquet"), str(root / "models" / "base" / "model.json")
    probe = work / name / "probe.parquet"
    text_probe.probe(cfg, base, pairs, str(probe))  # reuses its cache when the fingerprint matches
    ref = work / name / f"rm_s{seed}" / "model.json"
    if not ref.exists():
        text_train.train(cfg, "rm", seed, pairs, base, str(ref), str(probe))
    tasks = str(root / "data" / "tasks.json")
    res = evaluate(cfg, str(ref), f"{name}_s{seed}", "rm", tasks, str(ref.parent / "val_samples.parquet"),
                   str(ref.parent / "val_summary.json"), split="val", limit=limit)
    model, tok = load_reference(ref, cfg["backbone"]["dtype"])
    model.eval()
    info = json.loads(Path(tasks).read_text())
    remask = remask_rates(cfg, model, tok, info, "val", limit)
    row = {"variant": name, "seed": seed, "split": "val", **val_scores(res)}
    for task, r in remask.items():
        row.update({f"{task}_{k}": round(v, 2) for k, v in r.items() if k != "n"})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results", help="a DAG's results folder (its text base, pairs, tasks)")
    ap.add_argument("--work", required=True, help="where the variants' probes and models go")
    ap.add_argument("--config", nargs="*", default=[], help="config overlays (over config.yaml), as the DAG ran")
    ap.add_argument("--variant", nargs="*", default=[], help="NAME=JSON overlay of the text section")
    ap.add_argument("--baselines", nargs="*", default=[],
                    help="DAG models decoded with the low-confidence sampler on validation too (e.g. base sft_s0)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of this process (1, as the DAG's jobs run)")
    ap.add_argument("--out", required=True, help="append one JSON line per variant and seed here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cfg0 = load_config(*args.config)["text"]
    root, work = Path(args.results) / "text", Path(args.work)
    for name in args.baselines:
        res = evaluate(cfg0, str(root / "models" / name / "model.json"), name, "low_confidence",
                       str(root / "data" / "tasks.json"), str(work / name / "val_samples.parquet"),
                       str(work / name / "val_summary.json"), split="val", limit=args.limit)
        emit({"variant": model_family(name), "seed": model_seed(name), "split": "val", **val_scores(res)}, args.out)
    for spec in args.variant:
        name, _, overlay = spec.partition("=")
        cfg = merge(cfg0, json.loads(overlay or "{}"))
        for seed in args.seeds:
            emit({**run_variant(cfg, name, seed, root, work, args.limit), "overlay": json.loads(overlay or "{}")}, args.out)


if __name__ == "__main__":
    main()
