"""Procedural mini text tasks in the paper's three shapes, for a ~1M-parameter character MDM.

The generated responses carry internal evidence of errors (see notes/calibration.md: a bare
answer gives the model nothing to check): worked steps whose values later steps must reuse, and
code whose lines chain one variable into the next.

| task | prompt (example) | response (example) | graded by |
|---|---|---|---|
| math | ``7+5*3=`` | ``5*3=15;7+15=22;\\boxed{22}`` | math-verify on the last ``\\boxed{}`` (as MATH-500) |
| code | ``def f(x): add 3 then double then sub 1`` | ``def f(x):\\n a=x+3\\n b=a*2\\n return b-1`` | 3 asserts in the sandbox (as MBPP) |
| mc | ``7+5=? A)12 B)13 C)11 D)2\\nAnswer:`` | ``A`` | loglikelihood of each letter (as ARC) |

math: ``n_ops`` operators from + - * on digits 0-9; the steps do every * left to right, then
+/- left to right, one ``a op b=c;`` each; the boxed value is the last step's result.
code: 2-3 steps from add k, sub k, mul k, mod k, double, square, negate (k in 1-9; mul and mod
from 2); asserts at 3 distinct x in [-9, 9].
mc: "a+b=?" (a, b in 0-49; distractors are near misses), "largest?" and "smallest?" over 4
distinct numbers in 0-99; letters A-D, the answer position uniform.

Train and test are disjoint by ``key`` (math: the expression; code: the spec; mc "a+b": the stem,
"largest"/"smallest": stem + the set of choices). Each generator returns {"train", "test"}
DataFrames with the columns of the matching real loader (benchmarks.py) plus ``prompt`` and
``response``; lengths: prompt ≤ 48 and response ≤ 48 characters.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

LETTERS = ("A", "B", "C", "D")
MAX_PROMPT, MAX_RESPONSE = 48, 48

SCHEMA_DOC = {
    "math": "unique_id: str mini_math/<split>/<n>\nproblem: str expression ending '='\nsolution: str worked steps + \\boxed{}\n"
    "answer: str integer\nsubject: str 'mini'\nlevel: int number of operators\nprompt: str = problem\nresponse: str = solution",
    "code": "task_id: int\ntext: str spec\ncode: str reference function f\ntest_list: list[str] 3 asserts\n"
    "test_setup_code: str ''\nchallenge_test_list: list[str] []\nprompt: str 'def f(x): <spec>'\nresponse: str = code",
    "mc": "id: str mini_mc/<split>/<n>\nquestion: str stem\nchoices: list[str] 4\nlabels: list[str] A-D\n"
    "answer_key: str\nanswer_index: int\nprompt: str stem + lettered choices + '\\nAnswer:'\nresponse: str the letter",
}


def _split_unique(draw: Callable, n_train: int, n_test: int, rng: np.random.Generator) -> dict:
    """Draw (key, record) pairs; test first, then train, no key on both sides."""
    sides = {"test": ({}, n_test), "train": ({}, n_train)}
    seen: set = set()
    for name in ("test", "train"):
        got, want = sides[name]
        tries = 0
        while len(got) < want:
            tries += 1
            if tries > 50 * want + 1000:
                raise ValueError(f"cannot draw {want} unique {name} examples; the space is too small")
            key, rec = draw(rng)
            if key in seen:
                continue
            seen.add(key)
            got[key] = rec
    return {name: list(sides[name][0].values()) for name in ("train", "test")}


# ---- math -------------------------------------------------------------------------------


def math_steps(expr: str) -> tuple[list[str], int]:
    """Worked steps of a digit expression like "7+5*3" and its value (* first, then +/-)."""
    toks: list = [int(expr[0])]
    for i in range(1, len(expr), 2):
        toks += [expr[i], int(expr[i + 1])]
    steps = []
    for ops in ("*", "+-"):
        i = 1
        while i < len(toks):
            if toks[i] in ops:
                a, op, b = toks[i - 1], toks[i], toks[i + 1]
                c = a * b if op == "*" else a + b if op == "+" else a - b
                steps.append(f"{a}{op}{b}={c}")
                toks[i - 1 : i + 2] = [c]
            else:
                i += 2
    return steps, toks[0]


def math_solution(expr: str) -> tuple[str, int]:
    steps, value = math_steps(expr)
    return "".join(s + ";" for s in steps) + "\\boxed{" + str(value) + "}", value


def make_math(n_train: int, n_test: int, seed: int = 0, n_ops=(2, 3)) -> dict[str, pd.DataFrame]:
    def draw(rng):
        k = int(rng.choice(list(n_ops)))
        expr = str(rng.integers(10)) + "".join(str(rng.choice(list("+-*"))) + str(rng.integers(10)) for _ in range(k))
        solution, value = math_solution(expr)
        return expr, {"problem": expr + "=", "solution": solution, "answer": str(value), "subject": "mini", "level": k}

    out = {}
    for side, recs in _split_unique(draw, n_train, n_test, np.random.default_rng(seed)).items():
        df = pd.DataFrame(recs, columns=["problem", "solution", "answer", "subject", "level"])
        df.insert(0, "unique_id", [f"mini_math/{side}/{i:05d}" for i in range(len(df))])
        df["prompt"], df["response"] = df["problem"], df["solution"]
        out[side] = df
    return out


# ---- code -------------------------------------------------------------------------------

_CODE_OPS = (
    ("add", range(1, 10), "{v}+{k}"),
    ("sub", range(1, 10), "{v}-{k}"),
    ("mul", range(2, 10), "{v}*{k}"),
    ("mod", range(2, 10), "{v}%{k}"),
    ("double", None, "{v}*2"),
    ("square", None, "{v}*{v}"),
    ("negate", None, "-{v}"),
)


def code_program(ops: list[tuple[str, int | None]]) -> str:
    """``def f(x):`` with one line per op chaining x -> a -> b ..., the last op in ``return``."""
    table = {name: expr for name, _, expr in _CODE_OPS}
    lines, v = ["def f(x):"], "x"
    for j, (name, k) in enumerate(ops):
        e = table[name].format(v=v, k=k)
        if j == len(ops) - 1:
            lines.append(f" return {e}")
        else:
            lines.append(f" {'abc'[j]}={e}")
            v = "abc"[j]
    return "\n".join(lines)


def code_spec(ops: list[tuple[str, int | None]]) -> str:
    return " then ".join(name if k is None else f"{name} {k}" for name, k in ops)


def _apply(ops, x: int) -> int:
    for name, k in ops:
        x = {"add": lambda: x + k, "sub": lambda: x - k, "mul": lambda: x * k, "mod": lambda: x % k,
             "double": lambda: x * 2, "square": lambda: x * x, "negate": lambda: -x}[name]()
    return x


def make_code(n_train: int, n_test: int, seed: int = 0, n_steps=(2, 3)) -> dict[str, pd.DataFrame]:
    def draw(rng):
        ops = []
        for _ in range(int(rng.choice(list(n_steps)))):
            name, ks, _ = _CODE_OPS[int(rng.integers(len(_CODE_OPS)))]
            ops.append((name, None if ks is None else int(rng.choice(list(ks)))))
        spec = code_spec(ops)
        xs = rng.choice(np.arange(-9, 10), size=3, replace=False)
        tests = [f"assert f({int(x)})=={_apply(ops, int(x))}" for x in xs]
        code = code_program(ops)
        return spec, {"text": spec, "code": code, "test_list": tests, "test_setup_code": "", "challenge_test_list": []}

    out = {}
    offset = {"test": 1, "train": n_test + 1}
    for side, recs in _split_unique(draw, n_train, n_test, np.random.default_rng(seed)).items():
        df = pd.DataFrame(recs, columns=["text", "code", "test_list", "test_setup_code", "challenge_test_list"])
        df.insert(0, "task_id", np.arange(len(df), dtype=np.int64) + offset[side])
        df["prompt"], df["response"] = "def f(x): " + df["text"], df["code"]
        out[side] = df
    return out


# ---- multiple choice --------------------------------------------------------------------


def mc_prompt(stem: str, choices: list[str]) -> str:
    return stem + " " + " ".join(f"{L}){c}" for L, c in zip(LETTERS, choices)) + "\nAnswer:"


def _mc_draw(rng):
    kind = int(rng.integers(3))
    if kind == 0:
        a, b = (int(v) for v in rng.integers(0, 50, size=2))
        c = a + b
        near = [c + d for d in (-10, -2, -1, 1, 2, 10)] + [abs(a - b), a * b % 100]
        pool = sorted({n for n in near if n >= 0 and n != c})
        wrong = [int(v) for v in rng.choice(pool, size=3, replace=False)]
        stem, nums = f"{a}+{b}=?", [c] + wrong
    else:
        nums = [int(v) for v in rng.choice(100, size=4, replace=False)]
        stem = "largest?" if kind == 1 else "smallest?"
        best = max(nums) if kind == 1 else min(nums)
        nums.remove(best)
        nums = [best] + nums
    order = rng.permutation(4)
    choices = [str(nums[i]) for i in order]
    answer = int(np.flatnonzero(order == 0)[0])
    key = stem if kind == 0 else (stem, frozenset(choices))
    rec = {"question": stem, "choices": choices, "labels": list(LETTERS), "answer_key": LETTERS[answer],
           "answer_index": answer}
    return key, rec


def make_mc(n_train: int, n_test: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    out = {}
    for side, recs in _split_unique(_mc_draw, n_train, n_test, np.random.default_rng(seed)).items():
        df = pd.DataFrame(recs, columns=["question", "choices", "labels", "answer_key", "answer_index"])
        df.insert(0, "id", [f"mini_mc/{side}/{i:05d}" for i in range(len(df))])
        df["prompt"] = [mc_prompt(q, c) for q, c in zip(df["question"], df["choices"])]
        df["response"] = df["answer_key"]
        out[side] = df
    return out


MAKERS = {"math": make_math, "code": make_code, "mc": make_mc}


def make_mini(kind: str, n_train: int, n_test: int, seed: int = 0, **kw) -> dict[str, pd.DataFrame]:
    """{"train", "test"} DataFrames of mini task ``kind`` in {"math", "code", "mc"}."""
    if kind not in MAKERS:
        raise ValueError(f"unknown mini task {kind!r}; expected one of {sorted(MAKERS)}")
    out = MAKERS[kind](n_train, n_test, seed, **kw)
    for side, df in out.items():
        too_long = (df["prompt"].str.len() > MAX_PROMPT) | (df["response"].str.len() > MAX_RESPONSE)
        if too_long.any():
            raise AssertionError(f"mini {kind}/{side}: {int(too_long.sum())} examples exceed the length bounds")
    return out
