"""Mini text tasks: self-consistent responses, disjoint splits, bounded lengths, the char tokenizer."""

import os
import re
from pathlib import Path

import pytest

from rm_core.metrics.code_sandbox import run_tests
from rm_core.metrics.math_grade import grade
from rm_core.tasks.text.layout import batch_layout
from rm_core.tasks.text.mini import MAX_CHECKED, MAX_PROMPT, MAX_RESPONSE, make_mini, math_solution, math_steps
from rm_core.tasks.text.tokenizer import CharTokenizer


@pytest.fixture(scope="module")
def mini():
    return {k: make_mini(k, 400, 100, seed=3) for k in ("math", "code", "mc")}


def test_math_self_consistent(mini):
    for df in mini["math"].values():
        for prob, sol, ans in zip(df["problem"], df["solution"], df["answer"]):
            assert re.fullmatch(r"\d([-+*]\d)+=", prob)
            assert int(ans) == eval(prob[:-1])  # digits and + - * only (checked above)
            steps = sol.split(";")
            assert steps[-1] == "\\boxed{" + ans + "}"
            assert steps[-2].split("=")[1] == ans  # the boxed value is the last step's result
            for s in steps[:-1]:
                lhs, rhs = s.split("=")
                assert re.fullmatch(r"-?\d+[-+*]\d+", lhs) and eval(lhs) == int(rhs)
    df = mini["math"]["test"].head(20)
    assert all(grade(a, s, require_boxed=True) for a, s in zip(df["answer"], df["solution"]))
    assert math_steps("7+5*3") == (["5*3=15", "7+15=22"], 22)


def test_math_check_steps_undo_the_work():
    # hand-worked: the steps undone in reverse order, back to the first operand
    assert math_solution("3+5-2", check=True) == ("3+5=8;8-2=6;6+2=8;8-5=3;\\boxed{6}", 6)
    assert math_solution("0-4-1", check=True)[0] == "0-4=-4;-4-1=-5;-5+1=-4;-4+4=0;\\boxed{-5}"
    d = make_mini("math", 300, 60, seed=5, n_ops=(2, 3), ops="+-", max_digit=5, n_val=60, check=True)
    for df in d.values():
        for prob, sol, ans in zip(df["problem"], df["solution"], df["answer"]):
            steps = sol.split(";")
            n = len(re.findall(r"[-+]", prob[1:]))  # operators of the prompt
            assert len(steps) == 2 * n + 1 and steps[-1] == "\\boxed{" + ans + "}"
            assert steps[n - 1].split("=")[1] == ans  # the worked steps end at the answer ...
            assert steps[2 * n - 1].split("=")[1] == prob[0]  # ... and the checks at the first operand
            for s in steps[:-1]:
                lhs, rhs = s.split("=")
                assert eval(lhs) == int(rhs)
        assert df["response"].str.len().max() <= MAX_CHECKED
    with pytest.raises(ValueError, match="check"):
        make_mini("math", 10, 5, ops="+-*", check=True)


def test_code_passes_own_asserts(mini):
    df = mini["code"]["test"].head(12)
    for prompt, code, tests in zip(df["prompt"], df["code"], df["test_list"]):
        assert prompt.startswith("def f(x): ") and code.startswith("def f(x):\n")
        assert len(tests) == 3
        assert run_tests(code, tests, timeout=10).passed
    wrong = df["code"][0].replace("return", "return 1+")
    assert not run_tests(wrong, df["test_list"][0]).passed


def test_code_examples_prompt_shows_the_asserts():
    """``prompt="examples"``: the prompt's f(0), f(1), f(2) are the asserts and the reference returns them."""
    d = make_mini("code", 300, 60, seed=5, n_val=60, prompt="examples")
    for df in d.values():
        for prompt, code, tests in zip(df["prompt"].head(15), df["code"].head(15), df["test_list"].head(15)):
            shown = re.fullmatch(r"def f\(x\): f\(0\)=(-?\d+) f\(1\)=(-?\d+) f\(2\)=(-?\d+)", prompt).groups()
            assert tests == [f"assert f({x})=={v}" for x, v in zip((0, 1, 2), shown)]
            env = {}
            exec(code, env)  # the generator's own reference program, not model output
            assert [env["f"](x) for x in (0, 1, 2)] == [int(v) for v in shown]
        assert df["prompt"].str.len().max() <= MAX_PROMPT and df["response"].str.len().max() <= MAX_RESPONSE
    assert not set(d["train"]["prompt"]) & (set(d["test"]["prompt"]) | set(d["val"]["prompt"]))
    assert not set(d["val"]["prompt"]) & set(d["test"]["prompt"])
    wrong = d["test"]["code"][0].replace("return", "return 1+")
    assert not run_tests(wrong, d["test"]["test_list"][0]).passed
    with pytest.raises(ValueError, match="spec|examples"):
        make_mini("code", 10, 5, prompt="asserts")


def test_code_check_line_is_the_programs_value():
    """``check=True``: the answer ends with ``assert f(1)==v``, v the program's value, and it runs with it."""
    d = make_mini("code", 300, 60, seed=5, n_val=60, check=True)
    for df in d.values():
        for prompt, code, tests in zip(df["prompt"].head(15), df["response"].head(15), df["test_list"].head(15)):
            program, check = code.rsplit("\n", 1)
            env = {}
            exec(program, env)  # the generator's own reference program, not model output
            assert check == f"assert f(1)=={env['f'](1)}"
            assert prompt.startswith("def f(x): ") and "f(1)" not in prompt  # the value is worked out, not shown
            assert run_tests(code, tests, timeout=10).passed
        assert df["response"].str.len().max() <= MAX_CHECKED
    program, check = d["test"]["response"][0].rsplit("\n", 1)
    value = int(check.split("==")[1])
    wrong = f"{program}\nassert f(1)=={value + 1}"  # a wrong worked value fails the problem
    assert not run_tests(wrong, d["test"]["test_list"][0]).passed


def test_mc_well_formed(mini):
    for df in mini["mc"].values():
        for q, ch, i, key, prompt in zip(df["question"], df["choices"], df["answer_index"], df["answer_key"], df["prompt"]):
            assert len(set(ch)) == 4 and "ABCD"[i] == key and prompt.endswith("\nAnswer:")
            nums = [int(c) for c in ch]
            if q == "largest?":
                assert nums[i] == max(nums)
            elif q == "smallest?":
                assert nums[i] == min(nums)
            else:
                a, b = map(int, q[:-2].split("+"))
                assert nums[i] == a + b


def test_splits_disjoint_bounded_seeded(mini):
    keys = {"math": "problem", "code": "text"}
    for kind, d in mini.items():
        assert (len(d["train"]), len(d["test"])) == (400, 100)
        for df in d.values():
            assert df["prompt"].str.len().max() <= MAX_PROMPT and df["response"].str.len().max() <= MAX_RESPONSE
        if kind in keys:
            assert not set(d["train"][keys[kind]]) & set(d["test"][keys[kind]])
    mc = mini["mc"]
    sums = lambda df: set(df["question"][df["question"].str.contains(r"\+")])
    assert not sums(mc["train"]) & sums(mc["test"])
    rank = lambda df: {(q, frozenset(c)) for q, c in zip(df["question"], df["choices"]) if "+" not in q}
    assert not rank(mc["train"]) & rank(mc["test"])
    again = make_mini("code", 400, 100, seed=3)
    assert again["test"].equals(mini["code"]["test"])
    assert not make_mini("code", 400, 100, seed=4)["test"]["text"].equals(mini["code"]["test"]["text"])


def test_char_tokenizer(tmp_path, mini):
    tok = CharTokenizer()
    assert (tok.pad_id, tok.eos_id, tok.mask_id, tok.sep_id, tok.vocab_size) == (0, 1, 2, 3, 100)
    for d in mini.values():
        for s in list(d["test"]["prompt"]) + list(d["test"]["response"]):
            assert tok.decode(tok.encode(s)) == s
    assert tok.decode([tok.mask_id, tok.encode("a")[0]]) == "[MASK]a"
    assert tok.decode([tok.mask_id, tok.encode("a")[0]], skip_special_tokens=True) == "a"
    with pytest.raises(ValueError):
        tok.encode("é")
    tok.save(tmp_path)
    tok2 = CharTokenizer.load(tmp_path)
    assert tok2.itos == tok.itos and tok2.encode("7+5=") == tok.encode("7+5=")


def test_layout_train_matches_eval():
    tok = CharTokenizer()
    train = batch_layout(tok, ["7+5*3=", "1+2*3-4="], 32, responses=["5*3=15;7+15=22;\\boxed{22}", "x"], prompt_len=16)
    evl = batch_layout(tok, ["7+5*3=", "1+2*3-4="], 32, prompt_len=16)
    assert train["ids"].shape == (2, 48)
    assert (train["ids"][~train["editable"]] == evl["ids"][~evl["editable"]]).all()
    assert (evl["ids"][evl["editable"]] == tok.mask_id).all()
    assert train["ids"][0, 15].item() == tok.sep_id and train["ids"][1, -1].item() == tok.eos_id
    assert train["attention_mask"][0, :9].sum() == 0 and train["attention_mask"][0, 9:].all()
    with pytest.raises(ValueError):
        batch_layout(tok, ["x" * 20], 8, prompt_len=16)
    assert batch_layout(tok, ["x" * 20], 8, prompt_len=16, truncate=True)["truncated"].tolist() == [True]


def test_every_mini_task_is_the_same_under_any_python_hash_seed():
    """Each process gets its own PYTHONHASHSEED (str hashes, set order): the splits must not follow it.
    They did for multiple choice, whose ranking keys were hashed through a frozenset's repr, so two
    clean runs of the DAG trained and tested on different problems."""
    import subprocess
    import sys

    code = ("import hashlib, sys; sys.path.insert(0, sys.argv[1]); from rm_core.tasks.text.mini import make_mini; "
            "print(hashlib.sha256(''.join(df.to_json() for k in ('math', 'code', 'mc') for df in "
            "make_mini(k, 300, 60, seed=0, n_val=60, **({'max_value': 19, 'answer': 'text'} if k == 'mc' else {})).values())"
            ".encode()).hexdigest())")
    root = str(Path(__file__).resolve().parents[1])
    digests = {subprocess.run([sys.executable, "-c", code, root], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, check=True).stdout for seed in ("1", "2", "3")}
    assert len(digests) == 1, digests
