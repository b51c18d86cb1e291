"""The text track, data stage: the training pairs and the evaluation inputs of every split
(mini: generated tasks; paper: MBPP 30/70, MATH500, Minerva MATH, ARC-Challenge), with a
validation split held out of the training side."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ...io import write_json, write_parquet, write_text

log = logging.getLogger(__name__)


PAIRS_SCHEMA = """id: str, the benchmark's own id of the training example (task-prefixed at the mini scale)
task: str, mini: math|code|mc; paper: math|mbpp|arc
prompt: str, the raw prompt (the chat template, if any, is applied when encoding)
response: str, the training target (SFT target; RM's clean sequence x*)"""


SPLIT_DOC = """MBPP split (JSON): {"seed", "train_frac", "train": [task ids], "test": [task ids]}"""


TASK_NAMES = {  # Table 3 row -> lm-eval task per data kind
    "mini": {"MATH500": "mini_math", "MBPP": "mini_code", "ARC-Challenge": "mini_mc"},
    "benchmarks": {"MATH500": "math500_rm", "MBPP": "mbpp_rm", "ARC-Challenge": "arc_challenge_rm"},
}


def make_data(cfg: dict, seed: int, pairs: str, tasks: str) -> dict:
    """Write the track's data beside ``pairs`` (``text.data.kind``: mini | benchmarks).

    Always: ``train_pairs.parquet`` (PAIRS_SCHEMA) and ``tasks.json`` ({"kind", "paths": inputs of
    ``lm_eval_tasks.build.build_task_dir``, "table3": {row: task}, "subjects": ...}).
    ``tasks.json`` also holds "val_paths": the same inputs for the validation split.
    mini: ``mini_<kind>_{train,val,test}.parquet`` (mini.SCHEMA_DOC). benchmarks:
    ``mbpp_split.json`` (the task ids of each side), ``mbpp_{train,val,test}.parquet``,
    ``math_val.jsonl``, ``arc_val.jsonl`` (validation, held out of the training sides),
    ``math500.parquet``, ``math_test.parquet`` (with subject_key, for Table 4),
    ``math_train.parquet`` (the MATH training source, ``data.math_train``), ``arc_{train,test}.parquet``.
    """
    out_dir = Path(pairs).parent
    if (Path(tasks).parent, Path(pairs).name, Path(tasks).name) != (out_dir, "train_pairs.parquet", "tasks.json"):
        raise ValueError(f"text data: pairs and tasks must be <dir>/train_pairs.parquet and <dir>/tasks.json, "
                         f"got {pairs}, {tasks}")
    data = cfg["data"]
    out = Path(out_dir)
    if data["kind"] == "mini":
        return _make_mini(cfg, seed, out)
    if data["kind"] == "benchmarks":
        return _make_benchmarks(cfg, seed, out)
    raise ValueError(f"text.data.kind must be mini|benchmarks, got {data['kind']!r}")


def _make_mini(cfg: dict, seed: int, out: Path) -> dict:
    from ...tasks.text.mini import MATH_SUBJECTS, SCHEMA_DOC, make_mini

    m = cfg["data"]["mini"]
    kw = {"math": {"n_ops": tuple(m["math_n_ops"]), "ops": m["math_ops"], "max_digit": int(m["math_max_digit"]),
                   "balanced": bool(m["math_balanced"]), "check": bool(m["math_check"])},
          "code": {"n_steps": tuple(m["code_steps"]), "ops": m["code_ops"], "prompt": m["code_prompt"],
                   "check": bool(m["code_check"])},
          "mc": {"max_value": int(m["mc_max_value"]), "answer": m["mc_answer"]}}
    pairs, paths, val_paths = [], {}, {}
    for i, kind in enumerate(cfg["tasks"]):
        n_train = m["n_train"][kind] if isinstance(m["n_train"], dict) else m["n_train"]
        d = make_mini(kind, int(n_train), int(m["n_test"]), seed=seed + 101 * i, n_val=int(cfg["data"]["n_val"]),
                      **kw[kind])
        for side, df in d.items():
            write_parquet(df, out / f"mini_{kind}_{side}.parquet", SCHEMA_DOC[kind])
        tr = d["train"]
        ids = tr["unique_id"] if kind == "math" else tr["task_id"] if kind == "code" else tr["id"]
        pairs.append(pd.DataFrame({"id": [f"{kind}/{x}" for x in ids], "task": kind,
                                   "prompt": tr["prompt"], "response": tr["response"]}))
        paths[f"mini_{kind}"] = str((out / f"mini_{kind}_test.parquet").resolve())
        val_paths[f"mini_{kind}"] = str((out / f"mini_{kind}_val.parquet").resolve())
        log.info("mini %s: %d train, %d validation, %d test", kind, len(d["train"]), len(d["val"]), len(d["test"]))
    pairs = pd.concat(pairs, ignore_index=True)
    write_parquet(pairs, out / "train_pairs.parquet", PAIRS_SCHEMA)
    table3 = {row: t for row, t in TASK_NAMES["mini"].items() if t in {f"mini_{k}" for k in cfg["tasks"]}}
    info = {"kind": "mini", "paths": paths, "val_paths": val_paths, "table3": table3,
            "subjects": {"source": "mini_math", "names": MATH_SUBJECTS}}
    write_json(info, out / "tasks.json")
    return info


def _local(cfg: dict, key: str) -> str:
    files = cfg["data"]["files"]
    p = files.get(key)
    if not p or not Path(p).exists():
        raise FileNotFoundError(f"text.data.files.{key}: {p!r} does not exist (the benchmark files are in "
                                "../shared/data; see its README)")
    return str(Path(p).resolve())


def _make_benchmarks(cfg: dict, seed: int, out: Path) -> dict:
    """MBPP 30/70 split, MATH500, MATH test by subject, ARC-Challenge, and the training pairs.

    The validation split (``data.n_val`` problems per task, seeded by ``seed``) is held out of the
    training side, never the test side: of MBPP's 30 % (the split file's "val" ids), of the MATH
    training source (``math_val.jsonl``, MATH-500's format) and of ARC-Challenge-Train
    (``arc_val.jsonl``); held-out problems are not in the training pairs."""
    from ...tasks.text import benchmarks as B
    from ...tasks.text.prompts import sft_pairs

    data = cfg["data"]
    src = data.get("source", "local")
    if src == "hub":
        raw = _hub_files(cfg, out)
    elif src == "local":
        raw = {k: _local(cfg, k) for k in ("mbpp", "math500", "math_test", "arc_train", "arc_test")}
    else:
        raise ValueError(f"text.data.source must be local|hub, got {src!r}")
    mbpp = B.load_mbpp(raw["mbpp"])
    n_val = int(data["n_val"])
    split = B.mbpp_split(mbpp, float(data["mbpp_train_frac"]), seed=int(data["mbpp_split_seed"]))
    split["train"], split["val"] = B.holdout(split["train"], n_val, seed)
    write_json(split, out / "mbpp_split.json")
    for side in ("train", "val", "test"):
        write_parquet(mbpp[mbpp["task_id"].isin(split[side])].reset_index(drop=True), out / f"mbpp_{side}.parquet")
    m500 = B.load_math500(raw["math500"])
    write_parquet(m500, out / "math500.parquet")
    mtest = B.load_math_test(raw["math_test"], raw["math500"])
    write_parquet(mtest, out / "math_test.parquet")
    mtrain = B.load_math_train(data["math_train"], hub_name=data.get("hub", {}).get("math_train"),
                               hub_configs=list(B.HENDRYCKS_MATH_CONFIGS), math_test_path=raw["math_test"],
                               math500_path=raw["math500"])
    _, math_val = B.holdout(list(mtrain["id"]), n_val, seed)
    is_val = mtrain["id"].isin(math_val)
    mval, mtrain = mtrain[is_val].reset_index(drop=True), mtrain[~is_val].reset_index(drop=True)
    write_parquet(mtrain, out / "math_train.parquet")
    _write_jsonl([{"unique_id": r.id, "problem": r.problem, "solution": r.solution, "answer": r.answer,
                   "subject": r.subject, "level": int(r.level)} for r in mval.itertuples()], out / "math_val.jsonl")
    arc_tr, arc_te = B.load_arc(raw["arc_train"]), B.load_arc(raw["arc_test"])
    _, arc_val = B.holdout(list(arc_tr["id"]), n_val, seed)
    _write_jsonl([r for r in B.read_jsonl(raw["arc_train"]) if r["id"] in set(arc_val)], out / "arc_val.jsonl")
    arc_tr = arc_tr[~arc_tr["id"].isin(arc_val)].reset_index(drop=True)
    write_parquet(arc_tr, out / "arc_train.parquet")
    write_parquet(arc_te, out / "arc_test.parquet")
    frames = {"math": mtrain, "mbpp": mbpp[mbpp["task_id"].isin(split["train"])], "arc": arc_tr}
    limit = data.get("max_train_per_task")
    pairs = []
    for task in cfg["tasks"]:
        p = sft_pairs(task, frames[task].reset_index(drop=True))
        if limit:
            p = p.iloc[: int(limit)]
        p.insert(1, "task", task)
        p["id"] = task + "/" + p["id"]
        pairs.append(p)
    pairs = pd.concat(pairs, ignore_index=True)
    write_parquet(pairs, out / "train_pairs.parquet", PAIRS_SCHEMA)
    split_path = str((out / "mbpp_split.json").resolve())
    paths = {"math500": raw["math500"], "math_test": raw["math_test"], "mbpp": raw["mbpp"],
             "mbpp_split": split_path, "arc_test": raw["arc_test"]}
    val_paths = {"math500": str((out / "math_val.jsonl").resolve()), "mbpp": raw["mbpp"], "mbpp_split": split_path,
                 "arc_test": str((out / "arc_val.jsonl").resolve())}
    kinds = {"math": ("MATH500",), "mbpp": ("MBPP",), "arc": ("ARC-Challenge",)}
    rows = [r for t in cfg["tasks"] for r in kinds[t]]
    table3 = {r: TASK_NAMES["benchmarks"][r] for r in rows}
    info = {"kind": "benchmarks", "paths": paths, "val_paths": val_paths, "table3": table3,
            "subjects": {"source": "minerva_math_rm", "names": SUBJECT_NAMES} if "math" in cfg["tasks"] else None,
            "counts": {"train_pairs": {t: int((pairs["task"] == t).sum()) for t in cfg["tasks"]},
                       "mbpp_train": len(split["train"]), "mbpp_val": len(split["val"]),
                       "mbpp_test": len(split["test"]), "val_per_task": n_val}}
    write_json(info, out / "tasks.json")
    log.info("benchmarks: %s", info["counts"])
    return info


def _write_jsonl(rows: list[dict], path: Path) -> None:
    write_text("".join(json.dumps(r) + "\n" for r in rows), path)


SUBJECT_NAMES = {  # Minerva subject key -> Table 4 column
    "algebra": "Algebra", "counting_and_prob": "Counting & Probability", "geometry": "Geometry",
    "intermediate_algebra": "Intermediate Algebra", "num_theory": "Number Theory", "prealgebra": "Prealgebra",
    "precalc": "Precalculus",
}


def _hub_files(cfg: dict, out: Path) -> dict:
    """Paper scale through ``datasets`` (hub names in ``text.data.hub``): written as JSONL in the
    local files' formats, so the loaders and the lm-eval tasks read them the same way."""
    import datasets

    hub = cfg["data"]["hub"]
    raw_dir = out / "hub"
    raw_dir.mkdir(parents=True, exist_ok=True)

    def dump(rows, name):
        path = raw_dir / name
        with open(path, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        return str(path.resolve())

    mbpp = datasets.load_dataset(hub["mbpp"], "full")
    mbpp_rows = sorted((dict(r) for split in mbpp.values() for r in split), key=lambda r: r["task_id"])
    m500 = datasets.load_dataset(hub["math500"], split="test")
    mt = []
    for config in hub.get("math_test_configs") or []:
        for r in datasets.load_dataset(hub["math_test"], config, split="test"):
            mt.append({"question": r["problem"], "answer": r["solution"], "type": r["type"], "level": r["level"]})
    arc = datasets.load_dataset(hub["arc"], "ARC-Challenge")

    def arc_rows(ds):
        return [{"id": r["id"], "question": {"stem": r["question"], "choices": [
            {"text": t, "label": lab} for t, lab in zip(r["choices"]["text"], r["choices"]["label"])]},
            "answerKey": r["answerKey"]} for r in ds]

    return {"mbpp": dump(mbpp_rows, "mbpp.jsonl"), "math500": dump([dict(r) for r in m500], "math500.jsonl"),
            "math_test": dump(mt, "math_test.jsonl"), "arc_train": dump(arc_rows(arc["train"]), "arc_train.jsonl"),
            "arc_test": dump(arc_rows(arc["test"]), "arc_test.jsonl")}
