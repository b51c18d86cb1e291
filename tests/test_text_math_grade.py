"""math-verify grading: MATH-500 gold answers grade correct against themselves; wrong ones do not."""

import threading
import time

from rm_core.metrics.math_grade import extract_boxed, grade
from rm_core.tasks.text.benchmarks import load_math500


def test_extract_boxed():
    assert extract_boxed(r"so $\boxed{\frac{1}{2}}$.") == r"\frac{1}{2}"
    assert extract_boxed(r"\boxed{1} then \boxed{x^{2}}") == "x^{2}"
    assert extract_boxed(r"\fbox{7}") == "7"
    assert extract_boxed(r"\boxed 5") == "5"
    assert extract_boxed("no box") is None and extract_boxed(r"\boxed{unclosed") is None


def test_math500_self_grade(shared_data):
    df = load_math500(shared_data / "math" / "math500.jsonl")
    t = time.time()
    ok = sum(grade(a, f"The answer is $\\boxed{{{a}}}$.") for a in df["answer"])
    print(f"MATH-500 self-grade: {ok}/500 in {time.time() - t:.1f} s")
    assert ok == 500


def test_wrong_answers_grade_wrong():
    assert not grade("22", r"\boxed{23}")
    assert not grade(r"\frac{1}{2}", r"\boxed{\frac{1}{3}}")
    assert not grade("(1,2)", r"\boxed{(2,1)}")
    assert not grade("22", "")
    assert grade(r"\frac{1}{2}", r"\boxed{0.5}")
    assert not grade("22", "5*3=15;7+15=22;", require_boxed=True)
    assert grade("22", r"5*3=15;7+15=22;\boxed{22}", require_boxed=True)


def test_grade_outside_main_thread():
    out = []
    th = threading.Thread(target=lambda: out.append((grade("3", r"\boxed{3}"), grade("3", r"\boxed{4}"))))
    th.start()
    th.join()
    assert out == [(True, False)]
