"""The text track, part 3: evaluation through lm-eval, test-time scaling and trajectories.

``evaluate`` wraps one model in the ``rm_mdm`` lm-eval class (rm_core.lm_eval_model) and runs
the track's lm-eval tasks (``lm_eval_tasks``: local files, math-verify, the MBPP sandbox,
forward-only multiple choice). The base and vanilla SFT decode with LLaDA's low-confidence
sampler, RM with the Eq. 1 rule and History Reference (``eval.rm``). One row per (task, doc) goes
to Parquet (``SAMPLES_SCHEMA``). For an RM model it also runs ``rm.eval.scaling_turns`` turns once
on the generation tasks, grades the state after every turn (accuracy vs turns) and keeps the
trajectories (for the revision figure).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...io import read_parquet, write_json, write_parquet
from ...lm_eval_tasks.run import SAMPLES_SCHEMA_DOC
from ...method import RMEval
from ...metrics.code_sandbox import configure as configure_code_sandbox
from ...backbones.load import load_reference
from .model import forbid_ids, prompt_formatter

log = logging.getLogger(__name__)

SAMPLES_SCHEMA = ("model: str, model name (base, sft_s<seed>, rm_s<seed>)\n"
                  "sampler: str, low_confidence | rm\n" + SAMPLES_SCHEMA_DOC)

SCALING_SCHEMA = """model: str; task: str lm-eval task of the generation docs
turns: int, RM turns run (0..rm.eval.scaling_turns; 0 = the first state, e.g. the low-confidence draft)
accuracy: float, % of docs correct after that many turns (same grader as the lm-eval task)
n: int, docs"""

TRAJ_SCHEMA = """model: str; task: str; prompt_id: str; prompt: str
prompt_len: int, ids before the answer region
states: list<int64>, (turns+1) * gen_length answer-region ids, state s = states[s*G:(s+1)*G] (s = 0 is the start)
gen_length: int
correct: list<bool>, per state (0..turns), graded like the task"""


def _hf_env(tmp: str) -> None:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HOME", str(Path(tmp) / "hf_home"))


def eval_tasks(info: dict) -> list[str]:
    """The lm-eval tasks of Table 3 (and Minerva MATH for Table 4 at the paper scale)."""
    tasks = list(info["table3"].values())
    subj = info.get("subjects") or {}
    if subj.get("source") == "minerva_math_rm":
        tasks.append("minerva_math_rm")
    return tasks


def low_confidence_options(ev: dict, tok) -> dict:
    """text.eval.low_confidence.suppress_eos_eot -> the ids whose confidence is suppressed (EOS, EOT)."""
    if not ev["low_confidence"]["suppress_eos_eot"]:
        return {"suppress_ids": None}
    ids = [tok.eos_id] + ([tok.eot_id] if getattr(tok, "eot_id", None) is not None else [])
    return {"suppress_ids": ids}


def make_lm(model, tok, cfg: dict, sampler: str):
    from ...lm_eval_model import RMDiffusionLM

    ev, lay = cfg["eval"], cfg["layout"]
    common = dict(model=model, tokenizer=tok, gen_length=int(lay["gen_length"]),
                  prompt_len=lay["prompt_len"], prompt_formatter=prompt_formatter(tok, cfg),
                  forbid_ids=forbid_ids(tok), batch_size=int(ev["batch_size"]), mc_num=int(ev["mc_num"]),
                  mc_batch_size=int(ev["mc_batch_size"]), ll_eos_fill=bool(ev["ll_eos_fill"]),
                  ll_fill_visible=bool(ev["ll_fill_visible"]), seed=int(ev["seed"]),
                  ll_cfg=float(ev["ll_cfg"]), **low_confidence_options(ev, tok))
    if sampler == "low_confidence":
        lc = ev["low_confidence"]
        return RMDiffusionLM(sampler="low_confidence", steps=int(lc["steps"]), block_length=lc["block_length"],
                             **common)
    if sampler == "rm":
        rm = cfg["rm"]["eval"]
        RMEval.from_dict(rm, "text.rm.eval").check_track("text.rm.eval", ("draft", "mask"), draft=True, early_stop=True)
        return RMDiffusionLM(sampler="rm", steps=int(rm["turns"]), history=dict(cfg["rm"]["history"]),
                             rm_init=rm["init"], draft_steps=int(rm["draft_steps"]),
                             early_stop=bool(rm["early_stop"]), **common)
    raise ValueError(f"sampler must be low_confidence|rm, got {sampler!r}")


def split_paths(info: dict, split: str) -> dict:
    """The task inputs of one split of ``tasks.json``: "test" (the tables) or "val" (every choice)."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be test|val, got {split!r}")
    return info["paths"] if split == "test" else info["val_paths"]


def evaluate(cfg: dict, model: str, name: str, sampler: str, tasks: str, samples: str, summary: str,
             scaling: str | None = None, trajectories: str | None = None, split: str = "test",
             limit: int | None = None, device: str | None = None) -> dict:
    """lm-eval on the track's tasks of ``split`` (test | val); per-sample Parquet + summary JSON
    (+ scaling for RM)."""
    from ...lm_eval_tasks.build import build_task_dir
    from ...lm_eval_tasks.run import run_tasks

    configure_code_sandbox(cfg["eval"]["unsafe_code_exec"])
    info = json.loads(Path(tasks).read_text())
    limit = limit if limit is not None else cfg["eval"]["limit"]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    net, tok = load_reference(model, cfg["backbone"]["dtype"], device)
    net.eval()
    lm = make_lm(net, tok, cfg, sampler)
    with tempfile.TemporaryDirectory(prefix="rm_text_eval_") as tmp:
        _hf_env(tmp)
        task_dir = Path(tmp) / "tasks"
        names = build_task_dir(task_dir, split_paths(info, split), cache_dir=Path(tmp) / "hf_cache", split=split)
        results, frame = run_tasks(lm, task_dir, [t for t in eval_tasks(info) if t in names], limit=limit)
    frame.insert(0, "model", name)
    frame.insert(1, "sampler", sampler)
    write_parquet(frame, samples, SAMPLES_SCHEMA)
    write_json({"model": name, "sampler": sampler, "split": split, "limit": limit, "results": results}, summary)
    log.info("%s (%s): %s", name, sampler, {t: {k: round(v, 4) for k, v in s.items() if k != "n"} for t, s in results.items()})
    if scaling:
        curve, traj = scaling_run(cfg, net, tok, name, info, limit, split)
        write_parquet(curve, scaling, SCALING_SCHEMA)
        if trajectories:
            write_parquet(traj, trajectories, TRAJ_SCHEMA)
    return results


# ------------------------------------------------------------------------------ scaling


def generation_docs(info: dict, limit: int | None = None, split: str = "test") -> dict:
    """{task: DataFrame(prompt_id, prompt, doc)} for the generation tasks of ``split``, in lm-eval's
    doc order, with ``doc`` the record the task's process_results receives."""
    from ...tasks.text import benchmarks as B
    from ...tasks.text.prompts import math_prompt, mbpp_prompt

    out = {}
    paths = split_paths(info, split)
    if info["kind"] == "mini":
        for key, idf in (("mini_math", "unique_id"), ("mini_code", "task_id")):
            if key in paths:
                df = read_parquet(paths[key])
                out[key] = pd.DataFrame({"prompt_id": df[idf].astype(str), "prompt": df["prompt"],
                                         "doc": df.to_dict("records")})
    else:
        if "math500" in paths and "math500_rm" in info["table3"].values():
            df = B.load_math500(paths["math500"])
            out["math500_rm"] = pd.DataFrame({"prompt_id": df["unique_id"], "prompt": df["problem"].map(math_prompt),
                                              "doc": df.to_dict("records")})
        if "mbpp" in paths and "mbpp_rm" in info["table3"].values():
            df = B.load_mbpp(paths["mbpp"])
            keep = set(json.loads(Path(paths["mbpp_split"]).read_text())[split])
            df = df[df["task_id"].isin(keep)].reset_index(drop=True)
            out["mbpp_rm"] = pd.DataFrame({"prompt_id": df["task_id"].astype(str),
                                           "prompt": [mbpp_prompt(t, tl) for t, tl in zip(df["text"], df["test_list"])],
                                           "doc": df.to_dict("records")})
    if limit:
        out = {k: v.head(int(limit)).reset_index(drop=True) for k, v in out.items()}
    return out


def _grader(task: str):
    from ...lm_eval_tasks import utils as U

    fn = {"mini_math": U.process_mini_math, "mini_code": U.process_code, "math500_rm": U.process_math_answer,
          "mbpp_rm": U.process_code}[task]
    key = "pass_at_1" if "code" in task or "mbpp" in task else "math_verify"
    cache: dict = {}

    def grade(doc: dict, text: str, doc_key) -> bool:
        k = (doc_key, text)
        if k not in cache:
            cache[k] = bool(fn(doc, [text])[key])
        return cache[k]

    return grade


def doc_batches(cfg: dict, tok, lm, docs: pd.DataFrame):
    """Batches of ``eval.batch_size`` generation docs laid out as evaluation lays them out:
    (start, docs, x0, editable, attention mask, prompt width), tensors on ``lm.device``."""
    from ...tasks.text.layout import batch_layout

    G, bs, fmt = int(cfg["layout"]["gen_length"]), int(cfg["eval"]["batch_size"]), prompt_formatter(tok, cfg)
    for s in range(0, len(docs), bs):
        part = docs.iloc[s: s + bs]
        lay = batch_layout(tok, [fmt(p) for p in part["prompt"]], G, prompt_len=lay_prompt_len(cfg), truncate=True)
        x0, ed, at = (lay[k].to(lm.device) for k in ("ids", "editable", "attention_mask"))
        yield s, part, x0, ed, at, x0.shape[1] - G


@torch.no_grad()
def scaling_run(cfg: dict, model, tok, name: str, info: dict, limit: int | None = None, split: str = "test"):
    """One RM run of ``rm.eval.scaling_turns`` turns per generation doc; accuracy after every turn."""
    configure_code_sandbox(cfg["eval"]["unsafe_code_exec"])
    lm = make_lm(model, tok, cfg, "rm")
    turns = max(int(cfg["rm"]["eval"]["scaling_turns"]), int(cfg["rm"]["eval"]["turns"]))
    G = int(cfg["layout"]["gen_length"])
    rows, trajs = [], []
    for task, docs in generation_docs(info, limit, split).items():
        grade = _grader(task)
        correct = np.zeros((len(docs), turns + 1), dtype=bool)
        for s, part, x0, ed, at, width in doc_batches(cfg, tok, lm, docs):
            traj = lm.sample_trajectory(x0, ed, at, turns)  # (B, turns+1, N)
            for j in range(len(part)):
                doc, pid = part["doc"].iloc[j], part["prompt_id"].iloc[j]
                states = traj[j, :, width:]
                for t in range(turns + 1):
                    text, _ = lm._decode_answer(states[t].tolist())
                    correct[s + j, t] = grade(doc, text, pid)
                trajs.append({"model": name, "task": task, "prompt_id": pid, "prompt": part["prompt"].iloc[j],
                              "prompt_len": width, "states": states.reshape(-1).tolist(), "gen_length": G,
                              "correct": correct[s + j].tolist()})
        for t in range(0, turns + 1):  # 0: the first state (the draft, or all MASK)
            rows.append({"model": name, "task": task, "turns": t, "accuracy": 100.0 * correct[:, t].mean(),
                         "n": len(docs)})
        log.info("%s scaling on %s: %s", name, task, [round(100 * correct[:, t].mean(), 1) for t in range(turns + 1)])
    return pd.DataFrame(rows), pd.DataFrame(trajs)


def lay_prompt_len(cfg: dict):
    return cfg["layout"].get("prompt_len")
