"""The rm_mdm lm-eval model and the text tasks, end to end with fake Denoisers (offline)."""

import json
import math

import pytest
import torch
from lm_eval.api.instance import Instance

from rm_core.backbones.small_transformer import SmallTransformer, SmallTransformerConfig
from rm_core.io import write_json, write_parquet
from rm_core.lm_eval_model import RMDiffusionLM
from rm_core.lm_eval_tasks.build import build_task_dir
from rm_core.lm_eval_tasks.run import SAMPLES_SCHEMA_DOC, run_tasks
from rm_core.tasks.text import benchmarks as B
from rm_core.tasks.text import prompts as P
from rm_core.tasks.text.mini import SCHEMA_DOC, make_mini
from rm_core.tasks.text.tokenizer import CharTokenizer
from text_fakes import ByteTokenizer, OracleDenoiser

COLUMNS = ["task", "doc_id", "prompt_id", "prompt", "generation", "correct", "metric", "turns", "masks_left"]


def _gen(ctx, until=()):
    return Instance("generate_until", {}, (ctx, {"until": list(until)}), 0, ("t", 0, 1))


def _ll(ctx, cont, idx=0):
    return Instance("loglikelihood", {}, (ctx, cont), idx, ("t", 0, 1))


@pytest.fixture(scope="module")
def mini_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mini")
    table, paths = {}, {}
    for kind in ("math", "code", "mc"):
        df = make_mini(kind, 30, 6, seed=0)["test"]
        write_parquet(df, d / f"mini_{kind}.parquet", SCHEMA_DOC[kind])
        paths[f"mini_{kind}"] = d / f"mini_{kind}.parquet"
        table.update(zip(df["prompt"], df["response"]))
    names = build_task_dir(d / "tasks", paths, cache_dir=d / "hf_cache")
    return d / "tasks", names, table


def test_mini_end_to_end_oracle(mini_dir, tmp_path):
    task_dir, names, table = mini_dir
    assert names == ["mini_math", "mini_code", "mini_mc"]
    wrong = dict(table)
    first_math = next(p for p in table if p.endswith("="))
    wrong[first_math] = table[first_math].rsplit("{", 1)[0] + "{999}"  # one wrong boxed answer
    tok = CharTokenizer()
    lm = RMDiffusionLM(model=OracleDenoiser(tok, wrong), tokenizer=tok, steps=4, gen_length=48, prompt_len=49,
                       ll_eos_fill=True, forbid_ids=[tok.pad_id, tok.sep_id])
    summary, frame = run_tasks(lm, task_dir, names, limit=3)
    assert set(summary) == set(names)
    assert summary["mini_code"]["pass_at_1"] == 1.0 and summary["mini_code"]["n"] == 3
    assert summary["mini_mc"]["acc"] == 1.0 and "acc_norm" in summary["mini_mc"]
    assert summary["mini_math"]["math_verify"] == pytest.approx(2 / 3)
    assert list(frame.columns) == COLUMNS and len(frame) == 9
    gen = frame[frame["task"] != "mini_mc"]
    assert (gen["turns"] == 1).all() and (gen["masks_left"] == 0).all()
    write_parquet(frame, tmp_path / "eval.parquet", SAMPLES_SCHEMA_DOC)


def test_real_tasks_end_to_end(shared_data, tmp_path):
    D = shared_data
    mb = B.load_mbpp(D / "mbpp" / "mbpp.jsonl")
    write_json(B.mbpp_split(mb, 0.3, seed=0), tmp_path / "split.json")
    m5 = B.load_math500(D / "math" / "math500.jsonl")
    mt = B.load_math_test(D / "math" / "math_test.jsonl")
    arc = B.load_arc(D / "arc" / "ARC-Challenge-Test.jsonl")
    table = {P.math_prompt(p): f" so $\\boxed{{{a}}}$." for p, a in zip(m5["problem"], m5["answer"])}
    table.update({P.math_prompt(p): f" ... $\\boxed{{{a}}}$" for p, a in zip(mt["problem"], mt["answer"])})
    table.update({P.mbpp_prompt(t, tl): c for t, tl, c in zip(mb["text"], mb["test_list"], mb["code"])})
    table.update({P.arc_prompt(q): P.arc_response(c[i]) for q, c, i in zip(arc["question"], arc["choices"], arc["answer_index"])})
    paths = {"math500": D / "math" / "math500.jsonl", "math_test": D / "math" / "math_test.jsonl",
             "mbpp": D / "mbpp" / "mbpp.jsonl", "mbpp_split": tmp_path / "split.json",
             "arc_test": D / "arc" / "ARC-Challenge-Test.jsonl"}
    names = build_task_dir(tmp_path / "tasks", paths, cache_dir=tmp_path / "hf_cache")
    assert "minerva_math_rm" in names and len([n for n in names if n.startswith("minerva_math_rm_")]) == 7
    tok = ByteTokenizer()
    lm = RMDiffusionLM(model=OracleDenoiser(tok, table), tokenizer=tok, steps=2, gen_length=640, batch_size=4,
                       mc_num=4, forbid_ids=[tok.pad_id, tok.sep_id])
    tasks = ["math500_rm", "minerva_math_rm", "mbpp_rm", "arc_challenge_rm"]
    summary, frame = run_tasks(lm, tmp_path / "tasks", tasks, limit=3)
    assert summary["math500_rm"]["math_verify"] == 1.0
    assert summary["minerva_math_rm"]["math_verify"] == 1.0 and summary["minerva_math_rm"]["n"] == 21
    assert summary["minerva_math_rm_geometry"]["n"] == 3
    assert summary["mbpp_rm"]["pass_at_1"] == 1.0
    assert summary["arc_challenge_rm"]["acc"] == 1.0 and "acc_norm" in summary["arc_challenge_rm"]
    split = json.loads((tmp_path / "split.json").read_text())
    assert set(frame.loc[frame["task"] == "mbpp_rm", "prompt_id"].astype(int)) <= set(split["test"])
    subj = frame[frame["task"] == "minerva_math_rm_precalc"]["prompt_id"]
    assert set(mt.set_index("id").loc[list(subj), "subject_key"]) == {"precalc"}


def test_loglikelihood_ranks_planted_choice_first():
    tok = ByteTokenizer()
    lm = RMDiffusionLM(model=OracleDenoiser(tok, {"Q: colour?": " blue"}), tokenizer=tok, mc_num=16, mc_batch_size=8)
    choices = [" red", " blue", " blues", " bleu"]
    reqs = [_ll("Q: colour?", c, i) for i, c in enumerate(choices)]
    lls = [ll for ll, _ in lm.loglikelihood(reqs)]
    assert max(range(len(lls)), key=lls.__getitem__) == 1
    again = RMDiffusionLM(model=lm.model, tokenizer=tok, mc_num=16, mc_batch_size=3).loglikelihood(reqs[::-1])
    assert [ll for ll, _ in again][::-1] == pytest.approx(lls)  # independent of batching and order
    assert [r["logprob"] for r in lm.records] == lls
    # a prefix (" b") outscores the answer unless the end is scored too: ll_eos_fill scores EOS
    prefix = [_ll("Q: colour?", c, i) for i, c in enumerate(choices + [" b"])]
    lm_fill = RMDiffusionLM(model=lm.model, tokenizer=tok, mc_num=16, ll_eos_fill=True, gen_length=8)
    lls = [ll for ll, _ in lm_fill.loglikelihood(prefix)]
    assert max(range(len(lls)), key=lls.__getitem__) == 1


def test_single_token_loglikelihood_is_exact():
    tok = CharTokenizer()
    lm = RMDiffusionLM(model=OracleDenoiser(tok, {"2+2=? A)4 B)5\nAnswer:": "A"}), tokenizer=tok, mc_num=64)
    (ll_a, greedy_a), (ll_b, greedy_b) = lm.loglikelihood([_ll("2+2=? A)4 B)5\nAnswer:", c) for c in "AB"])
    # oracle logits: 8 on the target, 0 on the other 98 non-MASK ids
    assert ll_a == pytest.approx(8 - math.log(math.exp(8) + 98), abs=1e-5) and greedy_a and not greedy_b
    assert ll_b == pytest.approx(-math.log(math.exp(8) + 98), abs=1e-5)
    assert lm.model.calls == 1  # both requests in one forward, one sample each


def test_generation_until_samplers_and_records():
    tok = CharTokenizer()
    model = OracleDenoiser(tok, {"hi": "ab;cd"})
    for sampler in ("rm", "low_confidence"):
        lm = RMDiffusionLM(model=model, tokenizer=tok, sampler=sampler, steps=9, gen_length=12, block_length=4)  # 3 blocks x 3 steps
        out = lm.generate_until([_gen("hi"), _gen("hi", until=[";"]), _gen("unknown")])
        assert out == ["ab;cd", "ab", ""]
        assert [r["turns"] for r in lm.records] == ([1, 1, 1] if sampler == "rm" else [None] * 3)
    with pytest.raises(NotImplementedError):
        lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("x",), 0, ("t", 0, 1))])


def test_small_transformer_with_her_history():
    torch.manual_seed(0)
    tok = CharTokenizer()
    cfg = SmallTransformerConfig(vocab_size=tok.vocab_size, n_positions=40, mask_id=tok.mask_id, d_model=32,
                                 n_layers=1, n_heads=2)
    lm = RMDiffusionLM(model=SmallTransformer(cfg).eval(), tokenizer=tok, steps=5, gen_length=16, batch_size=2,
                       history={"kind": "her", "gamma": 0.9}, forbid_ids=[tok.pad_id, tok.sep_id], mc_num=4)
    out = lm.generate_until([_gen("7+5*3="), _gen("1+1="), _gen("9*9-1=")])
    assert len(out) == 3 and all(isinstance(o, str) for o in out)
    assert all(0 <= r["turns"] <= 5 for r in lm.records)
    lls = lm.loglikelihood([_ll("7+5=", "12"), _ll("7+5=", "13")])
    assert all(math.isfinite(ll) and ll < 0 for ll, _ in lls)
