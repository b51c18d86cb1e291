"""bench/text_check_agreement.py on answers worked out by hand."""

import pandas as pd

from bench.text_check_agreement import check_agreement, summarize


def test_check_agreement_by_hand():
    # right work, right check
    assert check_agreement("3+5-2=", "3+5=8;8-2=6;6+2=8;8-5=3;\\boxed{6}") == {"check_agrees": True, "bad_arithmetic": False}
    # a wrong worked value, the check made to agree by a wrong check step (8-2=5, then 7-5=3)
    assert check_agreement("3+5-2=", "3+5=8;8-2=5;5+2=7;7-5=3;\\boxed{5}") == {"check_agrees": True, "bad_arithmetic": True}
    # a wrong worked value carried through a right check: the check ends away from the prompt's 3
    assert check_agreement("3+5-2=", "3+5=9;9-2=7;7+2=9;9-5=4;\\boxed{7}") == {"check_agrees": False, "bad_arithmetic": True}
    # a missing check step or an unparsable one
    assert check_agreement("3+5-2=", "3+5=8;8-2=6;6+2=8;\\boxed{6}")["check_agrees"] is False
    assert check_agreement("3+5-2=", "3+5=8;8-2=6;6+2=8;8-=3;\\boxed{6}")["bad_arithmetic"] is True


def test_summarize_reads_only_wrong_math_answers():
    df = pd.DataFrame({
        "task": ["mini_math", "mini_math", "mini_math", "mini_code"],
        "prompt": ["3+5-2=", "3+5-2=", "3+5-2=", "def f(x): add 1"],
        "generation": ["3+5=8;8-2=6;6+2=8;8-5=3;\\boxed{6}", "3+5=8;8-2=5;5+2=7;7-5=3;\\boxed{5}",
                       "3+5=9;9-2=7;7+2=9;9-5=4;\\boxed{7}", "x"],
        "correct": [True, False, False, False]})
    assert summarize(df) == {"wrong": 2, "check_agrees": 50.0, "bad_arithmetic": 100.0}
