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
+/- left to right, one ``a op b=c;`` each; the boxed value is the last step's result. Each step
reuses an earlier step's result, so a wrong digit anywhere disagrees with the steps after it
(the evidence a revision can use). ``ops`` picks the operators (default "+-*"; the pipeline's
mini config uses "+-": sums and differences of digits, learnable in minutes on a CPU).
``subject`` is the problem type (Table 4's "by subject" at the mini scale, ``MATH_SUBJECTS``):
``sum`` (only +), ``difference`` (only -), ``mixed`` (+ and -), ``product`` (any *);
``level`` is the number of operators.
code: 2-3 steps from add k, sub k, mul k, mod k, double, square, negate (k in 1-9; mul and mod
from 2; ``ops`` restricts the set); asserts at 3 distinct x in [-9, 9]. Each line reads the
variable the line before it wrote, so the lines must agree with each other and with the spec.
``prompt="examples"`` (ours) shows ``f(0)=.. f(1)=.. f(2)=..`` instead of the spec, and those are
the asserts (MBPP's prompt shows its tests): the program must be inferred, not transcribed.
``check=True`` (ours) ends the response with ``assert f(1)==<value>``: the program's value worked out.
mc: "a+b=?" (a, b in 0..max_value//2; distractors are near misses), "largest?" and "smallest?"
over 4 distinct numbers in 0..max_value (default 99); letters A-D, the answer position uniform.
``answer="text"`` scores the choice texts after the bare question instead (lm-eval's ARC format;
the pipeline's mini config, with one-digit choices).

Train and test are disjoint by ``key`` (math: the expression; code: the spec or examples; mc "a+b": the stem,
"largest"/"smallest": stem + the set of choices). Each generator returns {"train", "test"}
DataFrames with the columns of the matching real loader (benchmarks.py) plus ``prompt`` and
``response``; lengths: prompt ≤ 48 and response ≤ 48 characters (with check steps or line: ≤ 72).
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable

import numpy as np
import pandas as pd

LETTERS = ("A", "B", "C", "D")
MAX_PROMPT, MAX_RESPONSE = 48, 48
MAX_CHECKED = 72  # math responses with check steps (ours)
PM_STEP = re.compile(r"(-?\d+)([-+])(\d+)=(-?\d+)")  # one worked +/- step "a op b=c"

SCHEMA_DOC = {
    "math": "unique_id: str mini_math/<split>/<n>\nproblem: str expression ending '='\nsolution: str worked steps + \\boxed{}\n"
    "answer: str integer\nsubject: str problem type, one of MATH_SUBJECTS (by the number of '*')\n"
    "level: int number of operators\nprompt: str = problem\nresponse: str = solution",
    "code": "task_id: int\ntext: str spec\ncode: str reference function f\ntest_list: list[str] 3 asserts\n"
    "test_setup_code: str ''\nchallenge_test_list: list[str] []\nprompt: str 'def f(x): <spec>'\nresponse: str = code",
    "mc": "id: str mini_mc/<split>/<n>\nquestion: str stem\nchoices: list[str] 4\nlabels: list[str] A-D\n"
    "answer_key: str\nanswer_index: int\nprompt: str letter format: stem + lettered choices + '\\nAnswer:'; "
    "text format: the question (+ its numbers) + '\\nAnswer:'\ntargets: list[str] the scored continuations "
    "(letters or choice texts)\nresponse: str the correct target",
}


HELD_OUT = 0.2  # share of the problem keys reserved for each of test and validation (the rest: train)


def _split_by_key(draw: Callable, n_train: int, n_test: int, rng: np.random.Generator, n_val: int = 0) -> dict:
    """Draw (key, record) pairs for test, train, then validation. A key's side is fixed by a seeded
    hash of it (``HELD_OUT`` of the keys each for test and validation, reserved whether or not a
    validation side is drawn, so train and test do not depend on ``n_val``): no key is on two
    sides, and every side is an i.i.d. sample of the task distribution restricted to its own keys
    (a small problem kind, e.g. mc's 100 sums, repeats its keys within a side). Drawing each side
    from what the previous ones left, as before, skewed the small problem kinds: validation then
    lacked the kinds train had used up, so it could not stand in for test."""
    salt = int(rng.integers(2**31))

    def side_of(key) -> str:
        u = int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:12], 16) / 16**12
        return "test" if u < HELD_OUT else "val" if u < 2 * HELD_OUT else "train"

    out = {}
    for name, want in (("test", n_test), ("train", n_train), ("val", n_val)):
        got, tries = [], 0
        while len(got) < want:
            tries += 1
            if tries > 50 * want + 1000:
                raise ValueError(f"cannot draw {want} {name} examples: too few problem keys fall on that side")
            key, rec = draw(rng)
            if side_of(key) == name:
                got.append(rec)
        out[name] = got
    return {name: out[name] for name in ("train", "val", "test") if name != "val" or n_val}


# ---- math -------------------------------------------------------------------------------

# problem type -> display name (the mini Table 4 subjects)
MATH_SUBJECTS = {"sum": "sums", "difference": "differences", "mixed": "mixed +/-", "product": "with products"}


def math_subject(expr: str) -> str:
    if "*" in expr:
        return "product"
    plus, minus = "+" in expr, "-" in expr
    return "mixed" if plus and minus else "sum" if plus else "difference"



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


def check_steps(steps: list[str]) -> list[str]:
    """Ours: the worked steps of a +/- expression undone in reverse order, from its value back to its
    first operand: ``3+5=8;8-2=6`` gives ``6+2=8;8-5=3``. The last check's result must equal the
    prompt's first digit, so a wrong value anywhere in the worked steps disagrees with a token the
    model can see (the prompt) unless a check step is itself wrong: a redundant check the answer
    must agree with, for Eq. 1 to read."""
    out = []
    for s in reversed(steps):
        a, op, b, c = PM_STEP.fullmatch(s).groups()
        out.append(f"{c}{'-' if op == '+' else '+'}{b}={a}")
    return out


def math_solution(expr: str, check: bool = False) -> tuple[str, int]:
    """Worked steps, ``check`` steps (ours, ops "+-" only) and the boxed value."""
    steps, value = math_steps(expr)
    if check:
        steps = steps + check_steps(steps)
    return "".join(s + ";" for s in steps) + "\\boxed{" + str(value) + "}", value


def make_math(n_train: int, n_test: int, seed: int = 0, n_ops=(2, 3), ops: str = "+-*", max_digit: int = 9,
              balanced: bool = False, n_val: int = 0, check: bool = False) -> dict[str, pd.DataFrame]:
    """Operands are digits 0..``max_digit``; ``balanced`` draws the subject uniformly first (ops "+-"
    only: sum / difference / mixed), so every subject has about the same number of problems;
    ``check`` (ours, ops "+-" only) appends the steps undone back to the first operand (``check_steps``)."""
    if not ops or set(ops) - set("+-*"):
        raise ValueError(f"math ops must be a non-empty subset of '+-*', got {ops!r}")
    if not 1 <= max_digit <= 9:
        raise ValueError(f"max_digit must be in 1..9, got {max_digit}")
    if balanced and set(ops) != set("+-"):
        raise ValueError("balanced subjects need ops '+-'")
    if check and "*" in ops:
        raise ValueError("math check steps need ops from '+-' (a product has no exact undo step)")

    def draw(rng):
        k = int(rng.choice(list(n_ops)))
        pool = list(ops)
        if balanced:
            pool = [["+"], ["-"], ["+", "-"]][int(rng.integers(3))]
        while True:
            signs = [str(rng.choice(pool)) for _ in range(k)]
            if len(pool) == 1 or len(set(signs)) == 2:  # "mixed" needs both signs
                break
        expr = str(rng.integers(max_digit + 1)) + "".join(o + str(rng.integers(max_digit + 1)) for o in signs)
        solution, value = math_solution(expr, check)
        return expr, {"problem": expr + "=", "solution": solution, "answer": str(value), "subject": math_subject(expr),
                      "level": k}

    out = {}
    for side, recs in _split_by_key(draw, n_train, n_test, np.random.default_rng(seed), n_val).items():
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


EXAMPLE_XS = (0, 1, 2)  # the inputs a code prompt of kind "examples" shows
EXAMPLE_MAX = 99  # ... and the largest |f(x)| it shows (larger draws are redrawn: short prompts)
CHECK_X = 1  # the input of a code response's own check line (``check=True``)


def code_examples(ops: list[tuple[str, int | None]]) -> str:
    """The "examples" prompt text: ``f(0)=6 f(1)=8 f(2)=10`` (what the function must return)."""
    return " ".join(f"f({x})={_apply(ops, x)}" for x in EXAMPLE_XS)


def make_code(n_train: int, n_test: int, seed: int = 0, n_steps=(2, 3), ops=None, n_val: int = 0,
              prompt: str = "spec", check: bool = False) -> dict[str, pd.DataFrame]:
    """``prompt``: "spec" (the steps in words, each code token fixed by the prompt) or "examples"
    (ours: f at x = 0, 1, 2, as MBPP shows its asserts; the model must infer a program, and those
    three asserts grade it, so any program that returns them is right). The split key is the
    prompt text, so an examples problem never has its examples on two sides.

    ``check`` (ours): the response ends with ``assert f(1)==<value>``, the program's own value at
    x = 1 worked out, a check the lines above must agree with; it runs with the program, so a wrong
    value fails the problem."""
    table = [o for o in _CODE_OPS if ops is None or o[0] in ops]
    if not table or (ops is not None and set(ops) - {o[0] for o in _CODE_OPS}):
        raise ValueError(f"code ops must be a non-empty subset of {[o[0] for o in _CODE_OPS]}, got {ops!r}")
    if prompt not in ("spec", "examples"):
        raise ValueError(f"code prompt must be spec|examples, got {prompt!r}")

    def draw(rng):
        while True:
            ops_ = []
            for _ in range(int(rng.choice(list(n_steps)))):
                name, ks, _ = table[int(rng.integers(len(table)))]
                ops_.append((name, None if ks is None else int(rng.choice(list(ks)))))
            if prompt == "spec" or all(abs(_apply(ops_, x)) <= EXAMPLE_MAX for x in EXAMPLE_XS):
                break
        if prompt == "spec":
            text = code_spec(ops_)
            xs = [int(x) for x in rng.choice(np.arange(-9, 10), size=3, replace=False)]
        else:
            text, xs = code_examples(ops_), list(EXAMPLE_XS)
        tests = [f"assert f({x})=={_apply(ops_, x)}" for x in xs]
        code = code_program(ops_) + (f"\nassert f({CHECK_X})=={_apply(ops_, CHECK_X)}" if check else "")
        return text, {"text": text, "code": code, "test_list": tests, "test_setup_code": "", "challenge_test_list": []}

    out = {}
    offset = {"test": 1, "train": n_test + 1, "val": n_test + n_train + 1}
    for side, recs in _split_by_key(draw, n_train, n_test, np.random.default_rng(seed), n_val).items():
        df = pd.DataFrame(recs, columns=["text", "code", "test_list", "test_setup_code", "challenge_test_list"])
        df.insert(0, "task_id", np.arange(len(df), dtype=np.int64) + offset[side])
        df["prompt"], df["response"] = "def f(x): " + df["text"], df["code"]
        out[side] = df
    return out


# ---- multiple choice --------------------------------------------------------------------


def mc_prompt(stem: str, choices: list[str]) -> str:
    return stem + " " + " ".join(f"{L}){c}" for L, c in zip(LETTERS, choices)) + "\nAnswer:"


def mc_text_prompt(stem: str, choices: list[str]) -> str:
    """ARC-like: the question alone (a ranking question lists its numbers); each choice text is scored."""
    if stem in ("largest?", "smallest?"):
        stem = f"{stem[:-1]} of {','.join(choices)}?"
    return stem + "\nAnswer:"


def _mc_draw(rng, max_value: int = 99):
    kind = int(rng.integers(3))
    if kind == 0:
        a, b = (int(v) for v in rng.integers(0, max_value // 2 + 1, size=2))
        c = a + b
        near = [c + d for d in (-10, -2, -1, 1, 2, 10)] + [abs(a - b), a * b % 100]
        pool = sorted({n for n in near if n >= 0 and n != c})
        wrong = [int(v) for v in rng.choice(pool, size=3, replace=False)]
        stem, nums = f"{a}+{b}=?", [c] + wrong
    else:
        nums = [int(v) for v in rng.choice(max_value + 1, size=4, replace=False)]
        stem = "largest?" if kind == 1 else "smallest?"
        best = max(nums) if kind == 1 else min(nums)
        nums.remove(best)
        nums = [best] + nums
    order = rng.permutation(4)
    choices = [str(nums[i]) for i in order]
    answer = int(np.flatnonzero(order == 0)[0])
    # the key is hashed as text (``_split_by_key``): the choice set as sorted numbers, never a
    # frozenset of str, whose repr order follows PYTHONHASHSEED and moved problems between sides
    key = stem if kind == 0 else f"{stem}{sorted(nums)}"
    rec = {"question": stem, "choices": choices, "labels": list(LETTERS), "answer_key": LETTERS[answer],
           "answer_index": answer}
    return key, rec


def make_mc(n_train: int, n_test: int, seed: int = 0, max_value: int = 99, answer: str = "letter",
            n_val: int = 0) -> dict[str, pd.DataFrame]:
    """``max_value``: the numbers to rank lie in 0..max_value, the summands in 0..max_value // 2.

    ``answer``: "letter" (the prompt lists lettered choices, the scored continuations are the letters)
    or "text" (ARC's lm-eval format: the prompt is the question, the scored continuations are the
    choice texts; with max_value 9 every choice is one character, so its log-likelihood is exact).
    ``targets`` holds the scored continuations, ``response`` the correct one.
    """
    if max_value < 7:
        raise ValueError(f"mc max_value must be >= 7, got {max_value}")
    if answer not in ("letter", "text"):
        raise ValueError(f"mc answer must be letter|text, got {answer!r}")
    out = {}
    draw = lambda rng: _mc_draw(rng, max_value)  # noqa: E731
    for side, recs in _split_by_key(draw, n_train, n_test, np.random.default_rng(seed), n_val).items():
        df = pd.DataFrame(recs, columns=["question", "choices", "labels", "answer_key", "answer_index"])
        df.insert(0, "id", [f"mini_mc/{side}/{i:05d}" for i in range(len(df))])
        if answer == "letter":
            df["prompt"] = [mc_prompt(q, c) for q, c in zip(df["question"], df["choices"])]
            df["targets"] = [list(LETTERS)] * len(df)
            df["response"] = df["answer_key"]
        else:
            df["prompt"] = [mc_text_prompt(q, c) for q, c in zip(df["question"], df["choices"])]
            df["targets"] = df["choices"]
            df["response"] = [c[i] for c, i in zip(df["choices"], df["answer_index"])]
        out[side] = df
    return out


MAKERS = {"math": make_math, "code": make_code, "mc": make_mc}


def make_mini(kind: str, n_train: int, n_test: int, seed: int = 0, n_val: int = 0, **kw) -> dict[str, pd.DataFrame]:
    """{"train", "test"} DataFrames of mini task ``kind`` in {"math", "code", "mc"}, disjoint, and
    "val" (drawn last, so train and test do not depend on it) when ``n_val`` > 0."""
    if kind not in MAKERS:
        raise ValueError(f"unknown mini task {kind!r}; expected one of {sorted(MAKERS)}")
    out = MAKERS[kind](n_train, n_test, seed, n_val=n_val, **kw)
    bound = MAX_CHECKED if kw.get("check") else MAX_RESPONSE
    for side, df in out.items():
        too_long = (df["prompt"].str.len() > MAX_PROMPT) | (df["response"].str.len() > bound)
        if too_long.any():
            raise AssertionError(f"mini {kind}/{side}: {int(too_long.sum())} examples exceed the length bounds")
    return out
