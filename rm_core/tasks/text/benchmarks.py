"""Loaders for the text benchmarks of Tables 3-4, from local files or (paper scale) the hub.

Every loader returns a pandas DataFrame; one row per problem. Schemas:

MBPP (``load_mbpp``; ``shared/data/mbpp/mbpp.jsonl``, 974 tasks)
  task_id: int              1..974
  text: str                 problem statement
  code: str                 reference solution, CRLF / CR normalised to LF (as Python reads source)
  test_list: list[str]      3 assert statements
  test_setup_code: str      run after ``code``, before the asserts (tasks 367, 927)
  challenge_test_list: list[str]

MATH-500 (``load_math500``)
  unique_id: str            e.g. "test/precalculus/807.json"
  problem, solution: str    solution holds ``\\boxed{}``
  answer: str               the short final answer (gold)
  subject: str              original name, e.g. "Counting & Probability"
  subject_key: str          one of MINERVA_SUBJECTS
  level: int                1..5

MATH test set (``load_math_test``; 5000 problems, file fields renamed back)
  id: str                   "math_test/<row>" (the file has no id; row order is fixed by its sha256)
  problem, solution: str
  answer: str               content of the last ``\\boxed{}`` of the solution
  subject, subject_key: str
  level: int
  math500_id: str | None    the MATH-500 unique_id of the same problem, when ``math500_path`` is given

ARC-Challenge (``load_arc``; one file per split)
  id: str
  question: str             the stem
  choices: list[str]        3-5 texts
  labels: list[str]         "A".."E" or "1".."4"
  answer_key: str
  answer_index: int         position of answer_key in labels

MATH training data (``load_math_train``, source chosen by config):
  "hub"                 the MATH *train* split (7500 problems, disjoint from the MATH test set)
                        via ``datasets.load_dataset(hub_name, config, split="train")`` per config
                        (e.g. EleutherAI/hendrycks_math with HENDRYCKS_MATH_CONFIGS); the
                        paper-scale choice, clean for Tables 3 and 4. Never called in tests.
  "test_minus_math500"  offline fallback: the 4500 MATH test problems that are not in MATH-500.
                        Disjoint from MATH-500 (Table 3 stays clean), but these 4500 problems are
                        part of the 5000-problem set that Table 4 evaluates on: Table 4 numbers of
                        a model trained on this source are contaminated on 90% of the problems and
                        only its MATH-500 slice is a held-out evaluation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rm_core.metrics.math_grade import extract_boxed

MINERVA_SUBJECTS = (
    "algebra",
    "counting_and_prob",
    "geometry",
    "intermediate_algebra",
    "num_theory",
    "prealgebra",
    "precalc",
)
_SUBJECT_ALIASES = {
    "counting_and_probability": "counting_and_prob",
    "number_theory": "num_theory",
    "precalculus": "precalc",
}
MATH_TRAIN_SOURCES = ("hub", "test_minus_math500")
# configs of the hub copy EleutherAI/hendrycks_math (fields problem, level, type, solution)
HENDRYCKS_MATH_CONFIGS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


def read_jsonl(path: str | Path) -> list[dict]:
    """One dict per non-empty line (CRLF tolerated)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def subject_key(name: str) -> str:
    """Map a MATH subject name ("Counting & Probability", "number_theory", ...) to a Minerva key."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower().replace("&", "and")).strip("_")
    key = _SUBJECT_ALIASES.get(key, key)
    if key not in MINERVA_SUBJECTS:
        raise ValueError(f"unknown MATH subject {name!r}")
    return key


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (balanced braces), else None."""
    return extract_boxed(text)


def normalise_newlines(text: str) -> str:
    """CRLF and lone CR to LF (Python's universal newlines)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _level(value) -> int:
    return int(re.search(r"\d+", str(value)).group())


def load_mbpp(path: str | Path) -> pd.DataFrame:
    rows = read_jsonl(path)
    df = pd.DataFrame(
        {
            "task_id": [int(r["task_id"]) for r in rows],
            "text": [r["text"] for r in rows],
            "code": [normalise_newlines(r["code"]) for r in rows],
            "test_list": [list(r["test_list"]) for r in rows],
            "test_setup_code": [r.get("test_setup_code") or "" for r in rows],
            "challenge_test_list": [list(r.get("challenge_test_list") or []) for r in rows],
        }
    )
    return df.sort_values("task_id", ignore_index=True)


def mbpp_split(df: pd.DataFrame, train_frac: float = 0.3, seed: int = 0) -> dict:
    """Seeded random split of all MBPP task ids (the paper: random 30% train / 70% test).

    Returns ``{"seed", "train_frac", "train": [ids], "test": [ids]}`` with sorted id lists;
    the permutation is ``numpy.random.default_rng(seed).permutation`` of the sorted ids and
    the first ``round(train_frac * n)`` go to train.
    """
    ids = np.array(sorted(int(i) for i in df["task_id"]))
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate task ids")
    perm = np.random.default_rng(seed).permutation(ids)
    n_train = int(round(train_frac * len(ids)))
    return {
        "seed": int(seed),
        "train_frac": float(train_frac),
        "train": sorted(int(i) for i in perm[:n_train]),
        "test": sorted(int(i) for i in perm[n_train:]),
    }


def holdout(ids, n: int, seed: int) -> tuple[list, list]:
    """(kept, held out): ``n`` of ``ids`` held out at random (``numpy.random.default_rng(seed)``
    permutation of the sorted ids), both sides sorted. The validation split of a training side."""
    ids = sorted(ids)
    if not 0 <= n < len(ids):
        raise ValueError(f"cannot hold out {n} of {len(ids)} examples for validation")
    perm = np.random.default_rng(seed).permutation(len(ids))
    held = {ids[i] for i in perm[:n]}
    return [i for i in ids if i not in held], sorted(held)


def load_math500(path: str | Path) -> pd.DataFrame:
    rows = read_jsonl(path)
    return pd.DataFrame(
        {
            "unique_id": [r["unique_id"] for r in rows],
            "problem": [r["problem"] for r in rows],
            "solution": [r["solution"] for r in rows],
            "answer": [r["answer"] for r in rows],
            "subject": [r["subject"] for r in rows],
            "subject_key": [subject_key(r["subject"]) for r in rows],
            "level": [_level(r["level"]) for r in rows],
        }
    )


def _norm_ws(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _math_frame(problems, solutions, subjects, levels, ids) -> pd.DataFrame:
    answers = [last_boxed(s) for s in solutions]
    missing = [i for i, a in zip(ids, answers) if a is None]
    if missing:
        raise ValueError(f"no \\boxed answer in {len(missing)} solutions, e.g. {missing[:3]}")
    return pd.DataFrame(
        {
            "id": list(ids),
            "problem": list(problems),
            "solution": list(solutions),
            "answer": answers,
            "subject": list(subjects),
            "subject_key": [subject_key(s) for s in subjects],
            "level": [_level(v) for v in levels],
        }
    )


def load_math_test(path: str | Path, math500_path: str | Path | None = None) -> pd.DataFrame:
    """The 5000-problem MATH test set; ``math500_id`` links the MATH-500 copies (whitespace-insensitive)."""
    rows = read_jsonl(path)
    df = _math_frame(
        [r["question"] for r in rows],
        [r["answer"] for r in rows],
        [r["type"] for r in rows],
        [r["level"] for r in rows],
        [f"math_test/{i:04d}" for i in range(len(rows))],
    )
    link = {}
    if math500_path is not None:
        m500 = load_math500(math500_path)
        link = dict(zip(m500["problem"].map(_norm_ws), m500["unique_id"]))
    df["math500_id"] = [link.get(_norm_ws(p)) for p in df["problem"]]
    return df


def load_math_train(
    source: str,
    *,
    hub_name: str | None = None,
    hub_configs: list[str] | None = None,
    math_test_path: str | Path | None = None,
    math500_path: str | Path | None = None,
) -> pd.DataFrame:
    """MATH training problems in the ``load_math_test`` schema; ``source`` is one of MATH_TRAIN_SOURCES.

    See the module docstring for what each source overlaps with.
    """
    if source == "hub":
        return _load_math_train_hub(hub_name, hub_configs)
    if source == "test_minus_math500":
        if math_test_path is None or math500_path is None:
            raise ValueError("test_minus_math500 needs math_test_path and math500_path")
        df = load_math_test(math_test_path, math500_path)
        if df["math500_id"].notna().sum() != len(load_math500(math500_path)):
            raise ValueError("not every MATH-500 problem was found in the MATH test set")
        return df[df["math500_id"].isna()].reset_index(drop=True)
    raise ValueError(f"unknown MATH train source {source!r}; expected one of {MATH_TRAIN_SOURCES}")


def _load_math_train_hub(hub_name: str | None, hub_configs: list[str] | None) -> pd.DataFrame:
    """MATH train split from the hub (paper scale; needs network or a warm HF cache)."""
    import datasets

    if not hub_name:
        raise ValueError("source 'hub' needs hub_name (e.g. EleutherAI/hendrycks_math)")
    parts = []
    for config in hub_configs or [None]:
        ds = datasets.load_dataset(hub_name, config, split="train")
        parts.append(ds.to_pandas())
    raw = pd.concat(parts, ignore_index=True)
    return _math_frame(
        raw["problem"],
        raw["solution"],
        raw["type"],
        raw["level"],
        [f"math_train/{i:04d}" for i in range(len(raw))],
    )


def load_arc(path: str | Path) -> pd.DataFrame:
    rows = read_jsonl(path)
    labels = [[c["label"] for c in r["question"]["choices"]] for r in rows]
    return pd.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "question": [r["question"]["stem"] for r in rows],
            "choices": [[c["text"] for c in r["question"]["choices"]] for r in rows],
            "labels": labels,
            "answer_key": [r["answerKey"] for r in rows],
            "answer_index": [lab.index(r["answerKey"]) for lab, r in zip(labels, rows)],
        }
    )
