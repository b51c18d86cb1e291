"""Evaluate an lm-eval model on the rendered text tasks; summary + one row per example.

``run_tasks`` runs ``lm_eval.simple_evaluate`` offline on a folder written by
``build.build_task_dir`` (custom tasks only, code execution confirmed, no bootstrap) and joins
lm-eval's per-sample metrics with the model's own records (generation, turns).

The per-sample frame has one row per (task, doc); its columns are in ``SAMPLES_SCHEMA_DOC``
(pass it to ``rm_core.io.write_parquet``).
"""

from __future__ import annotations

import os

import pandas as pd

SAMPLES_SCHEMA_DOC = """task: str lm-eval task name
doc_id: int position in the task's (filtered) test docs
prompt_id: str the benchmark's own id (unique_id / id / task_id)
prompt: str the context given to the model
generation: str generated text (generate tasks) or the chosen choice (multiple choice)
correct: bool the task's metric (math_verify / pass_at_1 / acc) is 1
metric: str which metric 'correct' is
turns: float RM turns used (NaN for low-confidence sampling and multiple choice)
masks_left: float MASKs left in the final state (NaN for multiple choice)"""

_METRICS = ("math_verify", "pass_at_1", "acc")
_ID_FIELDS = ("unique_id", "id", "task_id")


def _prompt_id(doc: dict) -> str:
    for f in _ID_FIELDS:
        if f in doc and doc[f] is not None:
            return str(doc[f])
    return ""


def run_tasks(lm, task_dir, tasks: list[str], limit: int | float | None = None) -> tuple[dict, pd.DataFrame]:
    """Returns ({task: {metric: value, "n": count}}, per-sample DataFrame)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_dir), include_defaults=False)
    lm.records.clear()
    out = lm_eval.simple_evaluate(
        model=lm, tasks=list(tasks), task_manager=tm, limit=limit, bootstrap_iters=0,
        log_samples=True, confirm_run_unsafe_code=True,
    )
    frame = samples_frame(out.get("samples", {}), lm.records)
    counts = frame["task"].value_counts().to_dict()
    for group, subtasks in out.get("group_subtasks", {}).items():
        counts.setdefault(group, sum(counts.get(t, 0) for t in subtasks))
    summary = {}
    for task, res in out["results"].items():
        summary[task] = {k.split(",")[0]: v for k, v in res.items() if "," in k and "stderr" not in k}
        summary[task]["n"] = int(counts.get(task, 0))
    return summary, frame


def samples_frame(samples: dict, records: list[dict]) -> pd.DataFrame:
    """Join lm-eval's logged samples with the model's per-request records."""
    gen = {(r["task"], r["doc_id"]): r for r in records if r["request"] == "generate_until"}
    rows = []
    for task, items in samples.items():
        for s in items:
            metric = next(m for m in _METRICS if m in s)
            rec = gen.get((task, s["doc_id"]))
            if rec is not None:
                generation = rec["generation"]
            else:
                lls = [r[0] for r in s["filtered_resps"]]
                choices = [a[1] for a in s["arguments"]]
                generation = choices[max(range(len(lls)), key=lls.__getitem__)]
            rows.append({
                "task": task,
                "doc_id": int(s["doc_id"]),
                "prompt_id": _prompt_id(s["doc"]),
                "prompt": s["arguments"][0][0],
                "generation": generation,
                "correct": bool(s[metric]),
                "metric": metric,
                "turns": float("nan") if rec is None or rec["turns"] is None else float(rec["turns"]),
                "masks_left": float("nan") if rec is None else float(rec["masks_left"]),
            })
    cols = ["task", "doc_id", "prompt_id", "prompt", "generation", "correct", "metric", "turns", "masks_left"]
    return pd.DataFrame(rows, columns=cols)
