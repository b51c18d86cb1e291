"""Benchmark loaders: schemas, counts, the MBPP split, MATH subjects and the MATH train choice."""

import pytest

from rm_core.tasks.text import benchmarks as B
from rm_core.tasks.text.prompts import extract_code, sft_pairs


def test_mbpp_split_deterministic_disjoint_complete(shared_data):
    df = B.load_mbpp(shared_data / "mbpp" / "mbpp.jsonl")
    assert df["task_id"].tolist() == list(range(1, 975))
    assert "\r" not in "".join(df["code"])
    s = B.mbpp_split(df, 0.3, seed=0)
    assert s == B.mbpp_split(df.sample(frac=1.0, random_state=1), 0.3, seed=0)  # row order does not matter
    assert (len(s["train"]), len(s["test"])) == (292, 682)
    assert not set(s["train"]) & set(s["test"])
    assert sorted(s["train"] + s["test"]) == list(range(1, 975))
    assert s["train"] != B.mbpp_split(df, 0.3, seed=1)["train"]


def test_math500_and_math_test(shared_data):
    m5 = B.load_math500(shared_data / "math" / "math500.jsonl")
    assert len(m5) == 500 and m5["subject_key"].value_counts()["algebra"] == 124
    mt = B.load_math_test(shared_data / "math" / "math_test.jsonl", shared_data / "math" / "math500.jsonl")
    assert len(mt) == 5000 and mt["id"].is_unique
    counts = mt["subject_key"].value_counts().to_dict()
    assert counts == {"algebra": 1187, "intermediate_algebra": 903, "prealgebra": 871, "precalc": 546,
                      "num_theory": 540, "geometry": 479, "counting_and_prob": 474}
    assert mt["level"].between(1, 5).all() and mt["answer"].str.len().gt(0).all()
    assert mt["math500_id"].notna().sum() == 500
    row = mt[mt["math500_id"] == m5["unique_id"][0]].iloc[0]
    assert row["answer"].replace(" ", "") == m5["answer"][0].replace(" ", "")


def test_math_train_choice(shared_data):
    kw = dict(math_test_path=shared_data / "math" / "math_test.jsonl", math500_path=shared_data / "math" / "math500.jsonl")
    train = B.load_math_train("test_minus_math500", **kw)
    assert len(train) == 4500 and train["math500_id"].isna().all()
    m5 = B.load_math500(kw["math500_path"])
    norm = lambda s: "".join(s.split())
    assert not set(train["problem"].map(norm)) & set(m5["problem"].map(norm))
    with pytest.raises(ValueError):
        B.load_math_train("nope", **kw)


def test_subject_key_normalisation():
    assert B.subject_key("Counting & Probability") == "counting_and_prob"
    assert B.subject_key("number_theory") == "num_theory"
    assert B.subject_key("Precalculus") == "precalc"
    with pytest.raises(ValueError):
        B.subject_key("Calculus")


def test_arc(shared_data):
    for name, n in [("Train", 1119), ("Dev", 299), ("Test", 1172)]:
        df = B.load_arc(shared_data / "arc" / f"ARC-Challenge-{name}.jsonl")
        assert len(df) == n and df["id"].is_unique
        assert all(lab[i] == k for lab, i, k in zip(df["labels"], df["answer_index"], df["answer_key"]))
        assert df["choices"].map(len).between(3, 5).all()


def test_sft_pairs_and_code_extraction(shared_data):
    df = B.load_arc(shared_data / "arc" / "ARC-Challenge-Train.jsonl")
    pairs = sft_pairs("arc", df)
    assert pairs["prompt"][0].startswith("Question: ") and pairs["prompt"][0].endswith("\nAnswer:")
    assert pairs["response"][0] == " " + df["choices"][0][df["answer_index"][0]]
    assert extract_code("```python\ndef f():\n    return 1\n```\ntext") == "def f():\n    return 1\n"
    assert extract_code("def f(): pass\n[DONE] junk") == "def f(): pass\n"
