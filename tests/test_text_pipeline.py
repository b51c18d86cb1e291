"""The text track's stage functions end to end, fast: the paper-scale path on a tiny random
LLaDA checkpoint in the published format (benchmarks from ../shared/data), the mini path on tiny
settings, the probe cache, and the workflow's text rules in a dry run."""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_"))

import pandas as pd
import torch
import yaml

from tiny_checkpoint import write_tiny_llada
from rm_core.pipeline import text, text_eval, text_report, text_train
from rm_core.tasks.text.layout import batch_layout

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())["text"]


def mini_cfg():
    cfg = copy.deepcopy(CONFIG)
    cfg["data"]["mini"].update(n_train=12, n_test=4)
    cfg["backbone"]["model"].update(d_model=32, n_layers=1, n_heads=2)
    cfg["base"]["train"].update(steps=3, batch_size=4, warmup_steps=1, log_every=1, checkpoint_every=2)
    cfg["finetune"]["train"].update(steps=2, batch_size=4, warmup_steps=1, log_every=1, checkpoint_every=1)
    cfg["probe"].update(top_k=5, batch_size=16)
    cfg["eval"].update(batch_size=8, scaling_turns=3, mc_num=2)
    cfg["eval"]["low_confidence"]["steps"] = 4
    cfg["eval"]["rm"].update(turns=2, draft_steps=2)
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
    info = text.make_data(cfg, 0, str(d))
    pairs = str(d / "train_pairs.parquet")
    base = str(work / "models/base/model.json")
    text_train.prepare_base(cfg, 0, pairs, base)
    probe = str(work / "probe/topk.parquet")
    assert text.probe(cfg, base, pairs, probe) is True
    assert text.probe(cfg, base, pairs, probe) is False  # same checkpoint + data: the cache is reused
    refs = {"base": base}
    for obj in ("sft", "rm"):
        refs[f"{obj}_s0"] = str(work / f"models/{obj}_s0/model.json")
        text_train.train(cfg, obj, 0, pairs, base, probe if obj == "rm" else None, refs[f"{obj}_s0"])
    ev = work / "eval"
    for name, ref in refs.items():
        rm = name.startswith("rm")
        text_eval.evaluate(cfg, ref, name, "rm" if rm else "low_confidence", str(d / "tasks.json"),
                           str(ev / f"{name}.parquet"), str(ev / f"{name}.json"),
                           out_scaling=str(ev / f"{name}_scaling.parquet") if rm else None,
                           out_traj=str(ev / f"{name}_trajectories.parquet") if rm else None, limit=limit)
    tables = work / "tables"
    t3, t4 = text_report.report(
        cfg, "test", str(d / "tasks.json"), [str(ev / f"{n}.json") for n in refs], [str(ev / f"{n}.parquet") for n in refs],
        [str(ev / "rm_s0_scaling.parquet")], str(ev / "rm_s0_trajectories.parquet"), str(tables / "table3.md"),
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
    assert text.read_model_ref(refs["base"])["dir"] == str(ckpt.resolve())
    for name in ("sft_s0", "rm_s0"):
        folder = Path(refs[name]).parent
        assert (folder / "model.safetensors.index.json").exists() and (folder / "tokenizer.json").exists()
        model, tok = text.load_backbone(refs[name], cfg["backbone"])
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
    cfg = mini_cfg()
    text.make_data(cfg, 0, str(tmp_path))
    pairs = pd.read_parquet(tmp_path / "train_pairs.parquet")
    from rm_core.tasks.text.tokenizer import CharTokenizer

    tok = CharTokenizer()
    enc = text.PairEncoder(tok, cfg, pairs)
    b = enc.batch([0, 1])
    lay = batch_layout(tok, list(pairs["prompt"][:2]), cfg["layout"]["gen_length"], prompt_len=cfg["layout"]["prompt_len"])
    assert (b["ids"][~b["editable"]] == lay["ids"][~lay["editable"]]).all()
    assert (b["editable"] == lay["editable"]).all() and (b["attention_mask"] == lay["attention_mask"]).all()


def test_rm_objective_draws_wrong_tokens_from_the_probe():
    """Every wrong token of an RM instance comes from its position's cached top-k, never the target."""
    from rm_core.tasks.text.tokenizer import CharTokenizer
    from rm_core.trajectory import TopKProposal, UniformProposal, WRONG, build_instances, EditSetSize

    tok = CharTokenizer()
    g = torch.Generator().manual_seed(0)
    target = torch.randint(4, 100, (64, 10), generator=g)
    ids = torch.stack([target, (target + 1) % 96 + 4, (target + 2) % 96 + 4], -1)
    probs = torch.tensor([0.8, 0.15, 0.05]).expand(64, 10, 3)
    prop = TopKProposal(ids, probs, UniformProposal(range(4, 100)))
    inst = build_instances(target, torch.ones_like(target, dtype=torch.bool), 6, tok.mask_id, prop, g,
                           EditSetSize("all"), 1.0, t=torch.zeros(64, dtype=torch.long))
    w = inst.z[inst.rule == WRONG]
    allowed = ids[..., 1:][inst.rule == WRONG]
    assert len(w) > 0 and (w[:, None] == allowed).any(-1).all()
    share = (inst.z == ids[..., 1])[inst.rule == WRONG].float().mean()
    assert 0.65 < share < 0.85  # 0.15 / (0.15 + 0.05) = 0.75 after removing the target


def test_probe_cache_recomputed_when_settings_change(tmp_path):
    cfg = mini_cfg()
    text.make_data(cfg, 0, str(tmp_path / "data"))
    pairs = str(tmp_path / "data/train_pairs.parquet")
    base = str(tmp_path / "base/model.json")
    text_train.prepare_base(cfg, 0, pairs, base)
    out = str(tmp_path / "topk.parquet")
    assert text.probe(cfg, base, pairs, out)
    assert not text.probe(cfg, base, pairs, out)
    cfg2 = copy.deepcopy(cfg)
    cfg2["probe"]["input"] = "masked"
    assert text.probe(cfg2, base, pairs, out)
    fp = text.read_probe_fingerprint(out)
    assert fp["probe"] == {"top_k": 5, "input": "masked", "passes": cfg["probe"]["passes"], "seed": cfg["probe"]["seed"]}
    ids, probs = text.load_probe(out, list(pd.read_parquet(pairs)["id"]))
    assert ids.shape == (36, cfg["layout"]["gen_length"], 5) and (probs.sum(-1) <= 1.0001).all()
    assert not (ids == 2).any()  # MASK is never a wrong token


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
    text.make_data(cfg, 0, str(tmp_path / "data"))
    pairs = str(tmp_path / "data/train_pairs.parquet")
    base = str(tmp_path / "base/model.json")
    text_train.prepare_base(cfg, 0, pairs, base)
    probe = str(tmp_path / "topk.parquet")
    text.probe(cfg, base, pairs, probe)
    whole = tmp_path / "whole/model.json"
    text_train.train(cfg, "rm", 0, pairs, base, probe, str(whole))
    cut = tmp_path / "cut/model.json"
    assert text_train.train(cfg, "rm", 0, pairs, base, probe, str(cut), stop_after=2) == {}
    assert (cut.parent / "checkpoint").exists() and not cut.exists()
    text_train.train(cfg, "rm", 0, pairs, base, probe, str(cut))
    a, b = load_tensors(whole.parent / "model.safetensors"), load_tensors(cut.parent / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
