"""The text track's stage functions end to end, fast: the paper-scale path on a tiny random
LLaDA checkpoint in the published format (benchmarks from ../shared/data), the mini path on tiny
settings, the probe cache, and the workflow's text rules in a dry run."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tiny_checkpoint import write_tiny_llada
from rm_core.backbones.load import load_reference, read_model_ref
from rm_core.config import load_config
from rm_core.pipeline.text import data as text_data
from rm_core.pipeline.text import evaluate as text_eval
from rm_core.pipeline.text import model as text_model
from rm_core.pipeline.text import probe as text_probe
from rm_core.pipeline.text import report as text_report
from rm_core.pipeline.text import train as text_train
from rm_core.tasks.text.layout import batch_layout

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config()["text"]


def mini_cfg():
    cfg = copy.deepcopy(CONFIG)
    cfg["data"]["mini"].update(n_train=12, n_test=4)
    cfg["backbone"]["model"].update(d_model=32, n_layers=1, n_heads=2)
    cfg["base"]["train"].update(steps=3, batch_size=4, warmup_steps=1, log_every=1, checkpoint_every=2)
    cfg["finetune"]["train"].update(steps=2, batch_size=4, warmup_steps=1, log_every=1, checkpoint_every=1)
    cfg["probe"].update(top_k=5, batch_size=16)
    cfg["eval"].update(batch_size=8, mc_num=2)
    cfg["eval"]["low_confidence"]["steps"] = 4
    cfg["rm"]["eval"].update(turns=2, draft_steps=2, scaling_turns=3)
    return cfg


def paper_cfg(shared: Path, ckpt: Path):
    cfg = mini_cfg()
    cfg["tasks"] = ["math", "mbpp", "arc"]
    cfg["data"].update(kind="benchmarks", source="local", math_train="test_minus_math500", max_train_per_task=6, n_val=20,
                       files={"mbpp": str(shared / "mbpp/mbpp.jsonl"), "math500": str(shared / "math/math500.jsonl"),
                              "math_test": str(shared / "math/math_test.jsonl"),
                              "arc_train": str(shared / "arc/ARC-Challenge-Train.jsonl"),
                              "arc_test": str(shared / "arc/ARC-Challenge-Test.jsonl")})
    cfg["backbone"].update(kind="llada", path=str(ckpt), dtype="float32", gradient_checkpointing=True)
    cfg["layout"] = {"prompt_len": None, "gen_length": 96, "chat_template": True}
    cfg["eval"].update(ll_eos_fill=False, ll_fill_visible=False, batch_size=4)
    return cfg


def _run_track(cfg, work: Path, limit: int):
    """data -> base -> probe -> SFT/RM (2 steps) -> eval -> report; returns the paths."""
    d = work / "data"
    info = text_data.make_data(cfg, 0, str(d / "train_pairs.parquet"), str(d / "tasks.json"))
    pairs = str(d / "train_pairs.parquet")
    base = str(work / "models/base/model.json")
    text_train.prepare_base(cfg, 0, pairs, base)
    probe = str(work / "probe/topk.parquet")
    assert text_probe.probe(cfg, base, pairs, probe) is True
    assert text_probe.probe(cfg, base, pairs, probe) is False  # same checkpoint + data: the cache is reused
    refs = {"base": base}
    for obj in ("sft", "rm"):
        refs[f"{obj}_s0"] = str(work / f"models/{obj}_s0/model.json")
        text_train.train(cfg, obj, 0, pairs, base, refs[f"{obj}_s0"], probe if obj == "rm" else None)
    ev = work / "eval"
    for name, ref in refs.items():
        rm = name.startswith("rm")
        text_eval.evaluate(cfg, ref, name, "rm" if rm else "low_confidence", str(d / "tasks.json"),
                           str(ev / f"{name}.parquet"), str(ev / f"{name}.json"),
                           scaling=str(ev / f"{name}_scaling.parquet") if rm else None,
                           trajectories=str(ev / f"{name}_trajectories.parquet") if rm else None, limit=limit)
    tables = work / "tables"
    t3, t4 = text_report.report(
        cfg, "test", str(d / "tasks.json"), [str(ev / f"{n}.json") for n in refs], [str(ev / f"{n}.parquet") for n in refs],
        [str(ev / "rm_s0_scaling.parquet")], [str(ev / "rm_s0_trajectories.parquet")], str(tables / "table3.md"),
        str(tables / "table4.md"), str(work / "figures/text_turns.png"), str(work / "figures/text_trajectory.png"))
    return info, refs, t3, t4


def test_paper_path_on_tiny_llada(shared_data, tmp_path):
    ckpt = write_tiny_llada(tmp_path / "llada", vocab_size=512, d_model=32, n_heads=2, max_sequence_length=4096)
    cfg = paper_cfg(shared_data, ckpt)
    info, refs, t3, t4 = _run_track(cfg, tmp_path / "run", limit=2)
    d = tmp_path / "run/data"
    split = json.loads((d / "mbpp_split.json").read_text())
    assert len(split["train"]) + len(split["val"]) == 292 and len(split["test"]) == 682
    assert not set(split["train"]) & set(split["test"]) and len(split["val"]) == 20
    assert set(pd.read_parquet(d / "mbpp_test.parquet")["task_id"]) == set(split["test"])
    mt = pd.read_parquet(d / "math_test.parquet")
    assert len(mt) == 5000 and mt["subject_key"].nunique() == 7
    assert pd.read_parquet(d / "math_train.parquet")["math500_id"].isna().all()  # disjoint from MATH500
    pairs = pd.read_parquet(d / "train_pairs.parquet")
    assert set(pairs["task"]) == {"math", "mbpp", "arc"} and pairs["id"].is_unique
    assert info["table3"] == {"MATH500": "math500_rm", "MBPP": "mbpp_rm", "ARC-Challenge": "arc_challenge_rm"}
    # the base is the checkpoint where it lies; the fine-tuned models are sharded LLaDA folders
    assert read_model_ref(refs["base"])["dir"] == str(ckpt.resolve())
    for name in ("sft_s0", "rm_s0"):
        folder = Path(refs[name]).parent
        assert (folder / "model.safetensors.index.json").exists() and (folder / "tokenizer.json").exists()
        model, tok = load_reference(refs[name], cfg["backbone"]["dtype"])
        assert model.mask_id == tok.mask_id
        log = pd.read_parquet(folder / "train_log.parquet")
        assert len(log) == 2 and log["loss"].notna().all()
    rm_log = pd.read_parquet(Path(refs["rm_s0"]).parent / "train_log.parquet")
    assert {"reveal", "mask", "keep"} <= set(rm_log.columns)
    probe = pd.read_parquet(tmp_path / "run/probe/topk.parquet")
    assert (probe["n_pos"] == 96).all() and (probe["k"] == 5).all()
    p = probe["topk_probs"].iloc[0].reshape(96, 5)
    assert (p[:, :-1] >= p[:, 1:]).all() and (p.sum(-1) <= 1 + 1e-5).all()  # sorted top-k of a softmax
    samples = pd.read_parquet(tmp_path / "run/eval/rm_s0.parquet")
    assert {"math500_rm", "mbpp_rm", "arc_challenge_rm"} <= set(samples["task"])
    assert samples["task"].str.startswith("minerva_math_rm_").sum() == 14  # 7 subjects x limit 2
    assert {"prompt_id", "generation", "correct", "turns"} <= set(samples.columns)
    gen = samples[samples["task"] == "math500_rm"]
    assert gen["turns"].between(0, 2).all()
    assert list(t3.index) == ["MATH500", "MBPP", "ARC-Challenge"]
    assert t3.loc["MATH500", "RM (paper)"] == 24.8 and 0 <= t3.loc["MBPP", "RM (ours)"] <= 100
    assert t4.loc["Aggregate", "RM (paper)"] == 24.10 and "Algebra" in t4.index
    for f in ("tables/table3.md", "tables/table3.tex", "tables/table3.csv", "tables/table4.csv",
              "figures/text_turns.png", "figures/text_trajectory.pdf", "figures/text_trajectory.md"):
        assert (tmp_path / "run" / f).stat().st_size > 100, f


def test_mini_path_tiny(tmp_path):
    cfg = mini_cfg()
    info, refs, t3, t4 = _run_track(cfg, tmp_path, limit=3)
    assert info["table3"] == {"MATH500": "mini_math", "MBPP": "mini_code", "ARC-Challenge": "mini_mc"}
    pairs = pd.read_parquet(tmp_path / "data/train_pairs.parquet")
    assert len(pairs) == 36 and set(pairs["task"]) == {"math", "code", "mc"}
    for kind in ("math", "code", "mc"):
        test = pd.read_parquet(tmp_path / f"data/mini_{kind}_test.parquet")
        assert len(test) == 4
    samples = pd.read_parquet(tmp_path / "eval/base.parquet")
    assert set(samples["task"]) == {"mini_math", "mini_code", "mini_mc"} and len(samples) == 9
    assert samples["turns"].isna().all()  # low-confidence sampling has no RM turns
    scaling = pd.read_parquet(tmp_path / "eval/rm_s0_scaling.parquet")
    assert set(scaling["task"]) == {"mini_math", "mini_code"} and scaling["turns"].max() == 3
    traj = pd.read_parquet(tmp_path / "eval/rm_s0_trajectories.parquet")
    G = cfg["layout"]["gen_length"]
    assert (traj["states"].map(len) == 4 * G).all() and (traj["correct"].map(len) == 4).all()
    assert [i.split(" (")[0] for i in t3.index] == ["MATH500", "MBPP", "ARC-Challenge"]
    subjects = [s for s in t4.index if "paper only" not in s]
    assert subjects[-1] == "Aggregate" and len(t4) == len(subjects) + 7
    md = (tmp_path / "tables/table3.md").read_text()
    assert "Scale of our numbers: **test**" in md and "(paper)" in md


def test_training_layout_matches_evaluation(tmp_path):
    """PairEncoder rows written out by hand: [PAD]* prompt [SEP] | response [EOS]*, the answer region
    editable, attention 0 on the padding only; evaluation's rows have the same prompt block, MASKs after."""
    cfg = mini_cfg()
    text_data.make_data(cfg, 0, str(tmp_path / "train_pairs.parquet"), str(tmp_path / "tasks.json"))
    pairs = pd.read_parquet(tmp_path / "train_pairs.parquet")
    from rm_core.tasks.text.tokenizer import CharTokenizer

    tok = CharTokenizer()
    P, G = cfg["layout"]["prompt_len"], cfg["layout"]["gen_length"]
    enc = text_model.PairEncoder(tok, cfg, pairs)
    idx = [0, 1, len(pairs) - 1]
    b = enc.batch(idx)
    lay = batch_layout(tok, [pairs["prompt"][i] for i in idx], G, prompt_len=P)
    assert b["ids"].shape == (3, P + G)
    for row, i in enumerate(idx):
        prompt = list(tok.encode(pairs["prompt"][i])) + [tok.sep_id]
        prompt = prompt[-P:]
        resp = list(tok.encode(pairs["response"][i]))
        want = [tok.pad_id] * (P - len(prompt)) + prompt + resp + [tok.eos_id] * (G - len(resp))
        assert b["ids"][row].tolist() == want, i
        assert b["editable"][row].tolist() == [False] * P + [True] * G
        assert b["attention_mask"][row].tolist() == [0] * (P - len(prompt)) + [1] * (len(prompt) + G)
        # evaluation: the same prompt block, the answer region all MASK
        assert lay["ids"][row].tolist() == want[:P] + [tok.mask_id] * G
        assert torch.equal(lay["editable"][row], b["editable"][row])
        assert torch.equal(lay["attention_mask"][row], b["attention_mask"][row])


def test_mini_responses_longer_than_the_answer_region_are_a_config_error(tmp_path):
    """Check-step math (up to 63 characters) in the default 38-token answer region: an error naming
    text.layout.gen_length, not a warning and a training set without math."""
    cfg = mini_cfg()
    cfg["data"]["mini"].update(math_check=True, math_n_ops=[3], math_ops="+-")
    text_data.make_data(cfg, 0, str(tmp_path / "train_pairs.parquet"), str(tmp_path / "tasks.json"))
    from rm_core.tasks.text.tokenizer import CharTokenizer

    cfg["layout"]["gen_length"] = 38
    with pytest.raises(ValueError, match="text.layout.gen_length = 38"):
        text_train._fitting_pairs(CharTokenizer(), cfg, str(tmp_path / "train_pairs.parquet"))
    cfg["layout"]["gen_length"] = 64
    assert len(text_train._fitting_pairs(CharTokenizer(), cfg, str(tmp_path / "train_pairs.parquet"))) == \
        len(pd.read_parquet(tmp_path / "train_pairs.parquet"))


def test_rm_objective_draws_wrong_tokens_from_the_probe():
    """rm_objective on the real encoder: every wrong token of an instance comes from its answer
    position's cached top-k (aligned to the answer region), never the target; the loss is Eq. 4."""
    from fakes import TableDenoiser
    from rm_core.objective import rm_loss
    from rm_core.tasks.text.tokenizer import CharTokenizer

    tok = CharTokenizer()
    cfg = mini_cfg()
    cfg["rm"].update(p_wrong=1.0, edit_set={"kind": "all", "low": 0.0, "high": 1.0},
                     history={"kind": "none"})
    pairs = pd.DataFrame({"id": ["a", "b", "c"], "task": ["math"] * 3,
                          "prompt": ["1+2=", "what is 3*3?", "x"], "response": ["3", "9 is it", "yes"]})
    enc = text_model.PairEncoder(tok, cfg, pairs)
    P, G = cfg["layout"]["prompt_len"], cfg["layout"]["gen_length"]
    answers = torch.stack([enc.batch([i])["ids"][0, P:] for i in range(3)])  # (3, G) targets
    pos = torch.arange(G)
    # per answer position j: [target, 10 + j, 50 + j] with probs 0.6 / 0.3 / 0.1 (position-specific ids)
    topk_ids = torch.stack([answers, (10 + pos).expand(3, G), (50 + pos).expand(3, G)], -1)
    topk_probs = torch.tensor([0.6, 0.3, 0.1]).expand(3, G, 3).contiguous()
    seen = {}

    class Spy(TableDenoiser):
        def embed(self, ids):
            seen.setdefault("z", ids.clone())  # rm_model_input embeds the state z first
            return super().embed(ids)

        def logits(self, inputs_embeds, attention_mask=None):
            seen["logits"] = super().logits(inputs_embeds, attention_mask)
            return seen["logits"]

    model = Spy(vocab_size=tok.vocab_size, d=8, n_positions=P + G, seed=0, mask_id=tok.mask_id)
    loss_fn = text_train.rm_objective(enc, topk_ids, topk_probs, tok, cfg, batch_size=64)
    g = torch.Generator().manual_seed(0)
    total, parts = loss_fn(model, 0, g)
    z = seen["z"]
    g2 = torch.Generator().manual_seed(0)
    idx = text_train._sample_idx(3, 64, g2)  # the rows the objective drew (same generator state)
    target = torch.stack([enc.batch([int(i)])["ids"][0] for i in idx])
    assert torch.equal(z[:, :P], target[:, :P])  # the prompt is never corrupted
    za, ta = z[:, P:], target[:, P:]
    wrong = (za != tok.mask_id) & (za != ta)
    assert int(wrong.sum()) > 100
    first, second = (10 + pos).expand_as(za), (50 + pos).expand_as(za)
    assert ((za == first) | (za == second))[wrong].all()  # from the position's own top-k, target removed
    share = float((za == first)[wrong].float().mean())
    assert 0.70 < share < 0.80  # 0.3 / (0.3 + 0.1) = 0.75
    editable = torch.zeros_like(target, dtype=torch.bool)
    editable[:, P:] = True
    want = rm_loss(seen["logits"], z, target, editable, tok.mask_id, eps=1e-8)
    assert abs(float(total.detach()) - float(want.total)) < 1e-6 and parts["n_mask"] == int(wrong.sum())


def test_rm_mix_rows_plain_mdm_and_all_mask_answers():
    """rm_mix (ours): the first mdm_share of a batch's rows get the plain MDM loss (own forward, no
    wrong tokens), then all_mask_share of the RM rows start from an all-MASK answer; the loss is the
    row-weighted mean of the two."""
    from fakes import TableDenoiser
    from rm_core.tasks.text.tokenizer import CharTokenizer

    tok = CharTokenizer()
    cfg = mini_cfg()
    cfg["rm"].update(history={"kind": "none"})
    cfg["rm_mix"] = {"mdm_share": 0.25, "all_mask_share": 0.5}
    pairs = pd.DataFrame({"id": ["a", "b", "c"], "task": ["math"] * 3,
                          "prompt": ["1+2=", "what is 3*3?", "x"], "response": ["3", "9 is it", "yes"]})
    enc = text_model.PairEncoder(tok, cfg, pairs)
    P, G = cfg["layout"]["prompt_len"], cfg["layout"]["gen_length"]
    answers = torch.stack([enc.batch([i])["ids"][0, P:] for i in range(3)])
    topk_ids = torch.stack([answers, (10 + answers) % 90], -1)
    topk_probs = torch.tensor([0.5, 0.5]).expand(3, G, 2).contiguous()
    calls = []

    class Spy(TableDenoiser):
        def embed(self, ids):
            calls.append(ids.clone())
            return super().embed(ids)

    model = Spy(vocab_size=tok.vocab_size, d=8, n_positions=P + G, seed=0, mask_id=tok.mask_id)
    loss_fn = text_train.rm_objective(enc, topk_ids, topk_probs, tok, cfg, batch_size=32)
    total, parts = loss_fn(model, 0, torch.Generator().manual_seed(0))
    idx = text_train._sample_idx(3, 32, torch.Generator().manual_seed(0))
    target = torch.stack([enc.batch([int(i)])["ids"][0] for i in idx])
    x_mdm, z = calls
    assert x_mdm.shape[0] == 8 and z.shape[0] == 24
    visible = x_mdm[:, P:] != tok.mask_id
    assert torch.equal(x_mdm[:, P:][visible], target[:8, P:][visible])  # MDM rows: target or MASK, never wrong
    assert (z[:12, P:] == tok.mask_id).all()  # the first half of the RM rows: all-MASK answers
    za, ta = z[12:, P:], target[20:, P:]
    assert ((za != tok.mask_id) & (za != ta)).any()  # the others carry wrong tokens
    assert abs(float(total) - (8 * parts["mdm"] + 24 * parts["total"]) / 32) < 1e-5


def _data_and_base(cfg, tmp_path):
    """The mini pairs and a base pre-trained on them: (pairs path, base model.json)."""
    text_data.make_data(cfg, 0, str(tmp_path / "data" / "train_pairs.parquet"), str(tmp_path / "data" / "tasks.json"))
    pairs, base = str(tmp_path / "data/train_pairs.parquet"), str(tmp_path / "base/model.json")
    text_train.prepare_base(cfg, 0, pairs, base)
    return pairs, base


def test_probe_cache_recomputed_when_settings_change(tmp_path):
    cfg = mini_cfg()
    pairs, base = _data_and_base(cfg, tmp_path)
    out = str(tmp_path / "topk.parquet")
    assert text_probe.probe(cfg, base, pairs, out)
    assert not text_probe.probe(cfg, base, pairs, out)
    cfg2 = copy.deepcopy(cfg)
    cfg2["probe"]["input"] = "masked"
    assert text_probe.probe(cfg2, base, pairs, out)
    fp = text_probe.read_probe_fingerprint(out)
    assert fp["probe"] == {"top_k": 5, "input": "masked", "passes": cfg["probe"]["passes"], "seed": cfg["probe"]["seed"]}
    ids, probs = text_probe.load_probe(out, list(pd.read_parquet(pairs)["id"]))
    assert ids.shape == (36, cfg["layout"]["gen_length"], 5) and (probs.sum(-1) <= 1.0001).all()
    assert not (ids == 2).any()  # MASK is never a wrong token


def test_probe_drafts_are_the_base_decoding_one_token_per_step_and_feed_rm(tmp_path):
    """probe.draft_share > 0: the cache holds the frozen base's own draft of every training prompt
    (checked against a naive one-token-per-step greedy loop), and RM trains on it."""
    cfg = mini_cfg()
    G = cfg["layout"]["gen_length"]
    cfg["probe"].update(draft_share=0.5, draft_steps=G, batch_size=1)  # batch 1 as the naive loop: same float sums
    pairs, base = _data_and_base(cfg, tmp_path)
    out = str(tmp_path / "topk.parquet")
    assert text_probe.probe(cfg, base, pairs, out)
    assert text_probe.read_probe_fingerprint(out)["probe"]["draft_steps"] == G
    model, tok = load_reference(base, "float32", "cpu")
    frame = pd.read_parquet(pairs)
    drafts = text_probe.load_drafts(out, list(frame["id"]))
    banned = [tok.mask_id, *text_model.forbid_ids(tok)]
    enc = text_model.PairEncoder(tok, cfg, frame)
    for row in (0, 7, 20):
        b = enc.batch([row])
        x = torch.where(b["editable"], torch.full_like(b["ids"], tok.mask_id), b["ids"])[0]
        with torch.no_grad():
            for _ in range(G):  # naive: reveal the single most confident MASK, argmax over allowed ids
                logits = model.logits(model.embed(x[None]), attention_mask=b["attention_mask"])[0].clone()
                logits[:, banned] = float("-inf")
                p = torch.softmax(logits, -1)
                conf, best = p.max(-1)
                masked = [j for j in range(len(x)) if int(x[j]) == tok.mask_id]
                j = max(masked, key=lambda q: float(conf[q]))
                x[j] = best[j]
        assert torch.equal(drafts[row], x[-G:]), row
    assert not (drafts == tok.mask_id).any()
    cfg["rm"]["history"] = {"kind": "none"}
    text_train.train(cfg, "rm", 0, pairs, base, str(tmp_path / "rm/model.json"), out)
    assert (tmp_path / "rm/model.json").exists()
    cfg0 = copy.deepcopy(cfg)
    cfg0["probe"]["draft_share"] = 0.0
    with pytest.raises(ValueError, match="draft_share"):
        text_probe.probe(cfg0, base, pairs, out)  # a cache without drafts ...
        text_probe.load_drafts(out, list(frame["id"]))  # ... cannot feed a draft_share > 0 run


def test_dry_run_lists_the_text_rules(tmp_path):
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("workflow", "config", "envs"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, tmp_path / name)
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    r = subprocess.run([str(bin_dir / "snakemake"), "-n", "all"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for rule in ("text_data", "text_base", "text_probe", "text_train", "text_eval", "text_eval_rm", "table3_4"):
        assert rule in r.stdout, rule
    assert r.stdout.count("rule text_train:") == 2 * len(CONFIG["seeds"])


def test_rm_training_resumes_to_the_same_weights(tmp_path):
    """A killed RM run resumed from its checkpoint ends with the weights of an uninterrupted run."""
    from rm_core.io import load_tensors

    cfg = mini_cfg()
    cfg["finetune"]["train"].update(steps=3, checkpoint_every=1)
    pairs, base = _data_and_base(cfg, tmp_path)
    probe = str(tmp_path / "topk.parquet")
    text_probe.probe(cfg, base, pairs, probe)
    whole = tmp_path / "whole/model.json"
    text_train.train(cfg, "rm", 0, pairs, base, str(whole), probe)
    cut = tmp_path / "cut/model.json"
    assert text_train.train(cfg, "rm", 0, pairs, base, str(cut), probe, stop_after=2) == {}
    assert (cut.parent / "checkpoint").exists() and not cut.exists()
    text_train.train(cfg, "rm", 0, pairs, base, str(cut), probe)
    a, b = load_tensors(whole.parent / "model.safetensors"), load_tensors(cut.parent / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_table3_interval_is_over_seeds_and_problems():
    """The 95% CI of a family: bootstrap over its seeds and the problems, around the seed mean."""
    rng = np.random.default_rng(0)
    rows = []
    for name, p in (("base", 0.3), ("sft_s0", 0.5), ("sft_s1", 0.5), ("rm_s0", 0.2), ("rm_s1", 0.8)):
        ok = rng.random(400) < p
        rows += [{"model": name, "task": "mini_math", "doc_id": i, "correct": bool(c)} for i, c in enumerate(ok)]
    samples = pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # any row order
    summaries = {n: {"results": {"mini_math": {"math_verify": float(g["correct"].mean())}}}
                 for n, g in samples.groupby("model")}
    info = {"kind": "mini", "table3": {"MATH500": "mini_math"}}
    t3 = text_report.table3_rows(summaries, info, samples)
    row = t3.iloc[0]
    for fam, half_width in (("LLaDA", (3, 6)), ("Vanilla SFT", (2, 6)), ("RM", (20, 35))):
        lo, hi = (float(x) for x in row[f"{fam} 95% CI"].strip("[]").split(","))
        assert lo < row[f"{fam} (ours)"] < hi
        assert half_width[0] < (hi - lo) / 2 < half_width[1], (fam, lo, hi)  # RM's seeds are 60 points apart
    sft, rm = row["Vanilla SFT (ours)"], row["RM (ours)"]
    gap = f"RM − SFT {rm - sft:+.1f}; paper {row['RM (paper)'] - row['Vanilla SFT (paper)']:+.1f}"
    want = "holds" if rm > sft > row["LLaDA (ours)"] else "does not hold"
    assert row["RM > SFT > LLaDA (paper's claim)"] == f"{want} ({gap})"


def test_table3_states_whether_the_papers_ordering_holds():
    info = {"kind": "mini", "table3": {"MATH500": "mini_math"}}
    for accs, want in (((0.2, 0.3, 0.4), "holds"), ((0.2, 0.4, 0.3), "does not hold"), ((0.35, 0.3, 0.4), "does not hold")):
        summaries = {n: {"results": {"mini_math": {"math_verify": a}}} for n, a in zip(("base", "sft_s0", "rm_s0"), accs)}
        verdict = text_report.table3_rows(summaries, info).iloc[0]["RM > SFT > LLaDA (paper's claim)"]
        assert verdict.startswith(want + " (RM − SFT "), verdict


def test_revision_figure_shows_a_repair_from_any_rm_seed_and_counts_them():
    """The Fig. 4 example is an answer wrong in its first state and right at turn T after a token
    was re-masked and changed, searched over every RM model; the counts are per model."""
    M = 9  # mask id; G = 3 answer positions, T = 2 turns

    def row(model, states, correct):
        return {"model": model, "task": "mini_math", "prompt_id": f"{model}/{len(states)}", "prompt": "p",
                "prompt_len": 1, "gen_length": 3, "states": [v for s in states for v in s], "correct": correct}

    kept_right = row("rm_s0", [[1, 2, 3], [1, 2, 3], [1, 2, 3]], [True, True, True])
    remask_no_change = row("rm_s0", [[1, 2, 3], [1, M, 3], [1, 2, 3]], [True, True, True])
    changed_right_all_along = row("rm_s1", [[1, 2, 3], [M, 2, 3], [4, 2, 3]], [True, True, True])
    repaired = row("rm_s1", [[1, 2, 5], [1, 2, M], [1, 2, 3]], [False, False, True])
    broken = row("rm_s1", [[1, 2, 3], [1, 2, M], [1, 2, 5]], [True, True, False])
    traj = pd.DataFrame([kept_right, remask_no_change, changed_right_all_along, repaired, broken])
    assert text_report.pick_example(traj, M, 2)["states"] == repaired["states"]
    # without the repair, a correct answer with a changed token beats one whose re-mask changed nothing
    no_repair = traj.drop(index=3)
    assert text_report.pick_example(no_repair, M, 2)["states"] == changed_right_all_along["states"]
    counts = text_report.repair_counts(traj, 2)
    assert "| rm_s0 | 2 | 0 | 0 |" in counts and "| rm_s1 | 3 | 1 | 1 |" in counts
