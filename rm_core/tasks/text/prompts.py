"""Prompt and response strings of the real text benchmarks, shared by training and lm-eval.

All 0-shot (the models are fine-tuned on this format):

| task | prompt | response (SFT target) | scored as |
|---|---|---|---|
| MATH / MATH-500 | ``"Problem:\\n{problem}\\n\\nSolution:"`` (Minerva) | ``" " + solution`` (holds ``\\boxed{}``) | math-verify of the generation |
| MBPP | ``"You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\\n\\n{tests}\\n"`` | ``code`` | asserts in the sandbox |
| ARC-Challenge | ``"Question: {stem}\\nAnswer:"`` (lm-eval's arc) | ``" " + correct choice text`` | loglikelihood per choice |

``sft_pairs`` turns a loader's DataFrame into (id, prompt, response) rows for training.
"""

from __future__ import annotations

import re

import pandas as pd


def math_prompt(problem: str) -> str:
    return "Problem:\n" + problem + "\n\nSolution:"


def math_response(solution: str) -> str:
    return " " + solution


def mbpp_prompt(text: str, tests) -> str:
    return (
        f"You are an expert Python programmer, and here is your task: {text} "
        "Your code should pass these tests:\n\n" + "\n".join(tests) + "\n"
    )


def arc_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def arc_response(choice: str) -> str:
    return " " + choice


_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.S)


def extract_code(generation: str) -> str:
    """The program in a generation: the first fenced block if any, else the text before "[DONE]"."""
    m = _FENCE.search(generation)
    code = m.group(1) if m else generation
    return code.split("[DONE]")[0].replace("[BEGIN]", "")


def sft_pairs(kind: str, df: pd.DataFrame) -> pd.DataFrame:
    """(id: str, prompt: str, response: str) for ``kind`` in {"math", "mbpp", "arc"}."""
    if kind == "math":
        ids = df["unique_id"] if "unique_id" in df else df["id"]
        return pd.DataFrame(
            {"id": ids.astype(str), "prompt": df["problem"].map(math_prompt), "response": df["solution"].map(math_response)}
        )
    if kind == "mbpp":
        return pd.DataFrame(
            {
                "id": df["task_id"].astype(str),
                "prompt": [mbpp_prompt(t, tl) for t, tl in zip(df["text"], df["test_list"])],
                "response": df["code"],
            }
        )
    if kind == "arc":
        return pd.DataFrame(
            {
                "id": df["id"].astype(str),
                "prompt": df["question"].map(arc_prompt),
                "response": [arc_response(c[i]) for c, i in zip(df["choices"], df["answer_index"])],
            }
        )
    raise ValueError(f"unknown benchmark kind {kind!r}")
