"""lm-eval task functions (doc_to_text, process_docs, process_results) for the text tasks.

Loaded through the ``utils.py`` that ``build.build_task_dir`` writes next to the rendered YAMLs
(it star-imports this module and binds the path-dependent ``mbpp_docs``). Prompts come from
``tasks/text/prompts.py`` so that training and evaluation use the same strings.
Metrics: math tasks ``math_verify`` (0/1), code tasks ``pass_at_1`` (0/1, greedy, one sample).
"""

from __future__ import annotations

import json

from rm_core.metrics.code_sandbox import run_tests
from rm_core.metrics.math_grade import grade
from rm_core.tasks.text.benchmarks import MINERVA_SUBJECTS, last_boxed, normalise_newlines, subject_key
from rm_core.tasks.text.prompts import arc_prompt, extract_code, math_prompt, mbpp_prompt

CODE_TIMEOUT_S = 10.0
CODE_MEMORY_MB = 512


# ---- math ---------------------------------------------------------------------------------


def math_doc_to_text(doc: dict) -> str:
    return math_prompt(doc["problem"])


def process_math_answer(doc: dict, results: list[str]) -> dict:
    """MATH-500: gold = the short ``answer`` field (wrapped in \\boxed{})."""
    return {"math_verify": int(grade(doc["answer"], results[0]))}


def process_math_solution(doc: dict, results: list[str]) -> dict:
    """MATH test set: gold = the full solution (multi-answer solutions parse to sets)."""
    return {"math_verify": int(grade(doc["solution"], results[0]))}


def process_mini_math(doc: dict, results: list[str]) -> dict:
    """Mini math: only the last \\boxed{} of the generation counts."""
    return {"math_verify": int(grade(doc["answer"], results[0], require_boxed=True))}


def make_math_subject_docs(subject: str):
    """process_docs for one Minerva subject of the raw MATH test file (question/answer/type/level)."""
    if subject not in MINERVA_SUBJECTS:
        raise ValueError(f"unknown subject {subject!r}")

    def process(dataset):
        ds = dataset.map(
            lambda d, i: {
                "id": f"math_test/{i:04d}",
                "problem": d["question"],
                "solution": d["answer"],
                "final_answer": last_boxed(d["answer"]),
                "subject_key": subject_key(d["type"]),
            },
            with_indices=True,
        )
        return ds.filter(lambda d: d["subject_key"] == subject)

    return process


for _s in MINERVA_SUBJECTS:
    globals()[f"math_docs_{_s}"] = make_math_subject_docs(_s)


# ---- code ---------------------------------------------------------------------------------


def mbpp_doc_to_text(doc: dict) -> str:
    return mbpp_prompt(doc["text"], doc["test_list"])


def make_mbpp_docs(ids_path: str, side: str = "test"):
    """process_docs keeping the MBPP task ids of one side ("test" or "val") of the split file
    (newlines normalised in code)."""
    with open(ids_path) as f:
        keep = set(int(i) for i in json.load(f)[side])

    def process(dataset):
        ds = dataset.filter(lambda d: int(d["task_id"]) in keep)
        return ds.map(lambda d: {"code": normalise_newlines(d["code"]), "test_setup_code": d.get("test_setup_code") or ""})

    return process


def process_code(doc: dict, results: list[str]) -> dict:
    """Run the generated program + setup + asserts in the sandbox."""
    res = run_tests(extract_code(results[0]), doc["test_list"], doc.get("test_setup_code") or "",
                    timeout=CODE_TIMEOUT_S, memory_mb=CODE_MEMORY_MB)
    return {"pass_at_1": int(res.passed)}


# ---- multiple choice ----------------------------------------------------------------------


def arc_doc_to_text(doc: dict) -> str:
    return arc_prompt(doc["question"]["stem"])


def arc_doc_to_choice(doc: dict) -> list[str]:
    return [c["text"] for c in doc["question"]["choices"]]


def arc_doc_to_target(doc: dict) -> int:
    return [c["label"] for c in doc["question"]["choices"]].index(doc["answerKey"])
