"""Where the contradiction sits in a wrong mini-math answer with check steps (config/text_check.yaml).

A wrong boxed value cannot come from worked steps that are all right and chained, so every wrong
answer holds a step whose arithmetic is wrong or that does not reuse the value before it. The
check steps (``rm_core.tasks.text.mini.check_steps``) add a second place a contradiction can sit:
their last value against the prompt's first digit, a comparison that needs no arithmetic. This
reads a model's generations (the evaluation Parquet of one model) and counts, among the wrong
math answers:
- ``check_agrees``: the check ends at the prompt's first digit (the model made the check agree,
  so the contradiction lies in some step's arithmetic instead);
- ``bad_arithmetic``: at least one ``a op b=c`` step with c != a op b.

    python bench/text_check_agreement.py results/text/eval_val/sft_s0.parquet results/text/eval_val/rm_s0.parquet
"""

from __future__ import annotations

import argparse
import re

import pandas as pd

from rm_core.tasks.text.mini import PM_STEP


def parse_steps(generation: str) -> list[tuple[int, str, int, int]] | None:
    """The ``a op b=c`` steps before the boxed value; None when any of them does not parse."""
    parts = generation.split(";")[:-1]
    steps = [PM_STEP.fullmatch(p) for p in parts]
    if not steps or not all(steps):
        return None
    return [(int(a), op, int(b), int(c)) for a, op, b, c in (m.groups() for m in steps)]


def check_agreement(prompt: str, generation: str) -> dict:
    """Does the check end at the prompt's first digit, is any step's arithmetic wrong? (one answer)"""
    n = len(re.findall(r"[-+]", prompt[1:]))
    steps = parse_steps(generation)
    if steps is None or len(steps) != 2 * n:
        return {"check_agrees": False, "bad_arithmetic": True}
    wrong = any(c != (a + b if op == "+" else a - b) for a, op, b, c in steps)
    return {"check_agrees": steps[-1][3] == int(prompt[0]), "bad_arithmetic": wrong}


def summarize(df: pd.DataFrame) -> dict:
    """Shares (%) over the wrong math answers of one model's evaluation rows."""
    wrong = df[(df["task"].str.endswith("math")) & (~df["correct"].astype(bool))]
    rows = pd.DataFrame([check_agreement(p, g) for p, g in zip(wrong["prompt"], wrong["generation"])],
                        columns=["check_agrees", "bad_arithmetic"])
    return {"wrong": len(wrong), "check_agrees": round(float(100 * rows["check_agrees"].mean()), 1),
            "bad_arithmetic": round(float(100 * rows["bad_arithmetic"].mean()), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", nargs="+", help="evaluation Parquet files (results/text/eval_val/<model>.parquet)")
    for path in ap.parse_args().samples:
        print(path, summarize(pd.read_parquet(path)))


if __name__ == "__main__":
    main()
