"""The text track's validation split: held out of the training side, disjoint from train and test,
and what `text-eval --split val` evaluates (issue: every choice is made on validation)."""

import json

import pandas as pd
import pytest
from rm_core.config import load_config
from rm_core.pipeline.text import data as text_data
from rm_core.pipeline.text import evaluate as text_eval
from rm_core.tasks.text import benchmarks as B
from rm_core.tasks.text.mini import make_mini

TEXT = load_config()["text"]


@pytest.mark.parametrize("kind", ["math", "code", "mc"])
def test_mini_validation_is_disjoint_and_leaves_train_and_test_as_they_were(kind):
    before = make_mini(kind, 300, 50, seed=5)
    after = make_mini(kind, 300, 50, seed=5, n_val=40)
    for side in ("train", "test"):
        pd.testing.assert_frame_equal(before[side], after[side])
    assert "val" not in before and len(after["val"]) == 40
    val = set(after["val"]["prompt"])
    assert not val & set(after["train"]["prompt"]) and not val & set(after["test"]["prompt"])


def test_mini_sides_share_the_problem_kind_mix():
    """Validation stands in for test: the sides sample one distribution (the mini config's math has
    three equally likely subjects whose key spaces differ 6-fold; drawing sides from what earlier
    ones left made validation 80 % "mixed" against test's 36 %)."""
    d = make_mini("math", 4500, 400, seed=0, n_val=400, n_ops=[3], ops="+-", max_digit=5, balanced=True)
    for side in ("train", "val", "test"):
        share = d[side]["subject"].value_counts(normalize=True)
        assert set(share.index) == {"sum", "difference", "mixed"}
        assert (share - 1 / 3).abs().max() < 0.07, (side, share.to_dict())


def test_holdout_is_seeded_complete_and_rejects_too_many():
    kept, held = B.holdout(range(10), 3, seed=1)
    assert sorted(kept + held) == list(range(10)) and len(held) == 3
    assert B.holdout(range(10), 3, seed=1) == (kept, held) and B.holdout(range(10), 3, seed=2) != (kept, held)
    with pytest.raises(ValueError, match="cannot hold out 10 of 10"):
        B.holdout(range(10), 10, seed=0)


def test_benchmark_validation_comes_from_the_training_side(tmp_path, shared_data):
    cfg = json.loads(json.dumps(TEXT))
    cfg["tasks"] = ["math", "mbpp", "arc"]
    cfg["data"].update(kind="benchmarks", source="local", math_train="test_minus_math500", n_val=20,
                       files={"mbpp": str(shared_data / "mbpp/mbpp.jsonl"),
                              "math500": str(shared_data / "math/math500.jsonl"),
                              "math_test": str(shared_data / "math/math_test.jsonl"),
                              "arc_train": str(shared_data / "arc/ARC-Challenge-Train.jsonl"),
                              "arc_test": str(shared_data / "arc/ARC-Challenge-Test.jsonl")})
    info = text_data.make_data(cfg, 0, str(tmp_path / "train_pairs.parquet"), str(tmp_path / "tasks.json"))
    split = json.loads((tmp_path / "mbpp_split.json").read_text())
    assert len(split["val"]) == 20 and len(split["train"]) + 20 == round(0.3 * 974)
    assert not set(split["val"]) & (set(split["train"]) | set(split["test"]))
    pairs = pd.read_parquet(tmp_path / "train_pairs.parquet")
    assert not {f"mbpp/{i}" for i in split["val"]} & set(pairs["id"])
    math_val = B.load_math500(info["val_paths"]["math500"])
    m500 = set(B.load_math500(shared_data / "math/math500.jsonl")["problem"])
    train_math = set(pd.read_parquet(tmp_path / "math_train.parquet")["problem"])
    assert len(math_val) == 20 and not set(math_val["problem"]) & (m500 | train_math)
    arc_val = B.load_arc(info["val_paths"]["arc_test"])
    arc_train = set(pd.read_parquet(tmp_path / "arc_train.parquet")["id"])
    arc_test = set(B.load_arc(shared_data / "arc/ARC-Challenge-Test.jsonl")["id"])
    assert len(arc_val) == 20 and not set(arc_val["id"]) & (arc_train | arc_test)
    # the generation docs of each split: MBPP's val ids on val, its test ids on test
    docs = {s: text_eval.generation_docs(info, split=s) for s in ("val", "test")}
    assert set(docs["val"]["mbpp_rm"]["prompt_id"].astype(int)) == set(split["val"])
    assert set(docs["test"]["mbpp_rm"]["prompt_id"].astype(int)) == set(split["test"])
    assert set(docs["val"]["math500_rm"]["prompt"]) != set(docs["test"]["math500_rm"]["prompt"])
    with pytest.raises(ValueError, match="split must be test|val"):
        text_eval.split_paths(info, "train")
