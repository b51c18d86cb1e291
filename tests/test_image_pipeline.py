"""The image-editing track's stages (rm_core.pipeline.image) on tiny settings, at both scales.

Mini: scenes -> patch VQ -> tokens -> base -> SFT and RM -> eval -> Table 1 + figure.
Paper: a tiny random Lumina-DiMOO checkpoint in the real format (write_tiny_dimoo) and a tiny
fake ImgEdit folder -> data -> tokens -> a few RM training steps -> sampling -> metrics.
Also: the auxiliary losses on constructed cases, equal SFT/RM budgets, the Snakemake DAG.
"""

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from workflow_copy import run_snakemake

from rm_core.config import load_config
from rm_core.method import training_settings
from rm_core.io import read_parquet
from rm_core.pipeline.image import data as im_data
from rm_core.pipeline.image import evaluate as im_eval
from rm_core.pipeline.image import model as im_model
from rm_core.pipeline.image import report as im_report
from rm_core.pipeline.image import train as im_train
from rm_core.tasks.image.vq import Codec

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None


def files(d: dict) -> dict:
    """The stage files under the folders of ``d``, as the rules name them."""
    return {"edits": f"{d['data']}/edits.parquet", "pool": f"{d['data']}/base.parquet", "vq": f"{d['vq']}/config.json",
            "tokens": f"{d['tokens']}/edits.parquet", "layout": f"{d['tokens']}/layout.json",
            **{w: f"{d[w]}/run.json" for w in ("base", "sft", "rm") if w in d}}


def mini_cfg() -> dict:
    cfg = load_config()["image"]
    cfg["data"].update(n_train=48, n_val=6, n_test=6)
    cfg["data"]["scenes"]["n_base"] = 48
    cfg["model"]["small"] = {"d_model": 32, "n_layers": 1, "n_heads": 2, "mlp_ratio": 2, "pos_scale": 1.0}
    cfg["base"].update(noise_steps=1)
    cfg["base"]["train"].update(steps=3, batch_size=4, log_every=1, checkpoint_every=100)
    cfg["train"].update(steps=3, batch_size=4, log_every=1, checkpoint_every=100)
    cfg["rm"]["ordering_weight"] = 0.5  # exercise the optional loss too
    cfg["eval"].update(maskgit_steps=2, batch_size=4, n_figure=3)
    cfg["rm"]["eval"]["turns"] = 2
    return cfg


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("image_mini")
    cfg = mini_cfg()
    d = {k: str(root / k) for k in ("data", "vq", "tokens", "base", "sft", "rm", "eval", "out")}
    f = files(d)
    im_data.make_data(cfg, 0, f["edits"], f["pool"])
    im_data.make_vq(cfg, 0, f["edits"], f["vq"])
    im_data.make_tokens(cfg, f["edits"], f["vq"], f["tokens"], f["layout"])
    im_train.train_base(cfg, 0, f["tokens"], f["base"])
    for which in ("sft", "rm"):
        im_train.train_model(cfg, which, 0, f["tokens"], f["base"], f[which])
    summaries = {}
    for which in ("base", "sft", "rm"):
        summaries[which] = im_eval.evaluate(cfg, which, f[which], f["edits"], f["tokens"], f["vq"],
                                            f"{d['eval']}/{which}.parquet", f"{d['eval']}/{which}_outputs.parquet")
    return cfg, d, summaries


def test_mini_data_split_and_pool(mini):
    cfg, d, _ = mini
    edits = read_parquet(Path(d["data"]) / "edits.parquet")
    pool = read_parquet(Path(d["data"]) / "base.parquet")
    assert (edits.split == "train").sum() == 48 and (edits.split == "test").sum() == 6 and len(pool) == 48
    assert (edits.split == "val").sum() == 6 and not set(edits.loc[edits.split == "val", "scene_before"]) & (
        set(edits.loc[edits.split != "val", "scene_before"]) | set(pool.scene_before))
    test_scenes = set(edits.loc[edits.split == "test", "scene_before"])
    assert not test_scenes & set(edits.loc[edits.split == "train", "scene_before"])
    assert not set(pool.scene_before) & set(edits.scene_before)  # the base never saw a train or test scene
    toks = read_parquet(Path(d["tokens"]) / "edits.parquet")
    layout = json.loads((Path(d["tokens"]) / "layout.json").read_text())
    n = layout["spec"]["grid_h"] * layout["spec"]["grid_w"]
    assert n == 9 and all(len(c) == n for c in toks.source_codes) and layout["text"] == "words"
    assert (toks.n_changed_codes > 0).all()
    # the patch VQ is lossless on the images it was fitted on (the training split)
    codec = Codec(d["vq"])
    train = edits.split == "train"
    src, _, _ = im_data.load_pixels(cfg, d["data"], edits[train])
    codes = np.stack(toks.loc[toks.split == "train", "source_codes"].map(np.asarray)).reshape(-1, 3, 3)
    assert np.array_equal(codec.decode(codes), src)


def test_train_kind_weights_keep_validation_and_test(tmp_path):
    """More location edits on the training sides (train_kind_weights, ours) must not move the edits
    every setting is scored on: validation and test are those of the uniform draw, still disjoint."""
    cfg = mini_cfg()
    cfg["data"].update(n_train=300, n_val=40, n_test=40)
    cfg["data"]["scenes"]["n_base"] = 300
    plain = im_data.make_data(cfg, 0, str(tmp_path / "a" / "edits.parquet"))
    cfg["data"]["scenes"]["train_kind_weights"] = {"add": 3, "move": 3}
    heavy = im_data.make_data(cfg, 0, str(tmp_path / "b" / "edits.parquet"))
    pool = read_parquet(tmp_path / "b" / "base.parquet")
    for side in ("val", "test"):
        pd.testing.assert_frame_equal(plain[plain.split == side].reset_index(drop=True),
                                      heavy[heavy.split == side].reset_index(drop=True))
    held_out = set(heavy.loc[heavy.split != "train", "scene_before"])
    assert not held_out & set(heavy.loc[heavy.split == "train", "scene_before"]) and not held_out & set(pool.scene_before)
    for df in (heavy[heavy.split == "train"], pool):  # weights 3, 1, 1, 3, 1, 1: add + move 6/10
        assert df.kind.isin(["add", "move"]).mean() > 0.5
    assert plain[plain.split == "train"].kind.isin(["add", "move"]).mean() < 0.45


def test_pool_kind_weights_move_only_the_base_pool(tmp_path):
    """pool_kind_weights (ours) reweights the base's pre-training pool alone: the training,
    validation and test edits are those of the unweighted draw, and the pool stays disjoint."""
    cfg = mini_cfg()
    cfg["data"].update(n_train=300, n_val=40, n_test=40)
    cfg["data"]["scenes"]["n_base"] = 300
    plain = im_data.make_data(cfg, 0, str(tmp_path / "a" / "edits.parquet"))
    plain_pool = read_parquet(tmp_path / "a" / "base.parquet")
    cfg["data"]["scenes"]["pool_kind_weights"] = {"add": 4, "move": 4}
    heavy = im_data.make_data(cfg, 0, str(tmp_path / "b" / "edits.parquet"))
    pool = read_parquet(tmp_path / "b" / "base.parquet")
    pd.testing.assert_frame_equal(plain, heavy)
    assert pool.kind.isin(["add", "move"]).mean() > 0.6 > 0.45 > plain_pool.kind.isin(["add", "move"]).mean()
    assert not set(pool.scene_before) & set(heavy.scene_before)
    # over train_kind_weights: the training edits follow theirs, the pool its own
    cfg["data"]["scenes"].update(train_kind_weights={"add": 4, "move": 4}, pool_kind_weights={"add": 0, "move": 0})
    both = im_data.make_data(cfg, 0, str(tmp_path / "c" / "edits.parquet"))
    assert both[both.split == "train"].kind.isin(["add", "move"]).mean() > 0.6
    assert not read_parquet(tmp_path / "c" / "base.parquet").kind.isin(["add", "move"]).any()


def test_equal_budgets_and_base_start(mini):
    cfg, d, _ = mini
    runs = {w: json.loads((Path(d[w]) / "run.json").read_text()) for w in ("sft", "rm")}
    assert runs["sft"]["steps"] * runs["sft"]["batch_size"] == runs["rm"]["steps"] * runs["rm"]["batch_size"]
    assert runs["sft"]["examples_seen"] == runs["rm"]["examples_seen"] == 12
    logs = {w: read_parquet(Path(d[w]) / "train_log.parquet") for w in ("sft", "rm")}
    assert len(logs["sft"]) == len(logs["rm"]) == 3
    assert {"reveal", "mask", "keep", "unlikelihood", "ordering"} <= set(logs["rm"].columns)
    assert im_model.base_path(d["base"]) == str(Path(d["base"]).resolve())


def test_curriculum_draws_its_first_batches_from_its_kinds(mini):
    """image.curriculum (ours): the first `steps` batches come from the edits of `kinds` only, then
    from all; off (steps 0), the rows are the plain uniform draw; SFT and RM both take it."""
    kinds = pd.Series(["add", "remove", "move", "recolour", "add", "background"] * 5)
    cfg = {"curriculum": {"kinds": ["add", "move"], "steps": 3}}
    rows = im_train.batch_rows(cfg, kinds, len(kinds))
    g = torch.Generator().manual_seed(0)
    early = torch.cat([rows(step, 64, g) for step in range(3)])
    late = torch.cat([rows(step, 64, g) for step in range(3, 9)])
    assert set(kinds[early.numpy()]) == {"add", "move"}
    assert set(kinds[late.numpy()]) == set(kinds)
    off = im_train.batch_rows({"curriculum": {"kinds": ["add"], "steps": 0}}, kinds, len(kinds))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(off(0, 16, g1), torch.randint(0, len(kinds), (16,), generator=g2))
    # both methods sample through it: a kind that no training edit has is an error naming the key
    mcfg, d, _ = mini
    bad = {**mcfg, "curriculum": {"kinds": ["nonexistent"], "steps": 2}}
    f = files(d)
    for which in ("sft", "rm"):
        with pytest.raises(ValueError, match="image.curriculum.kinds"):
            im_train.train_model(bad, which, 0, f["tokens"], f["base"], str(Path(d["out"]) / f"cur_{which}/run.json"))


def test_mini_eval_outputs(mini):
    cfg, d, summaries = mini
    for which in ("base", "sft", "rm"):
        m = read_parquet(f"{d['eval']}/{which}.parquet")
        assert len(m) == 6 and set(m.model) == {which}
        assert m.instr_ok.isin([0.0, 1.0]).all() and m.vqascore.isna().all()
        assert ((m.coverage >= 0) & (m.coverage <= 100)).all()
    rm_out = read_parquet(f"{d['eval']}/rm_outputs.parquet")
    traj = np.stack(rm_out.trajectory.map(np.asarray)).reshape(6, 3, 9)  # T + 1 states of the 3x3 grid
    toks = read_parquet(Path(d["tokens"]) / "edits.parquet")
    test = toks[toks.split == "test"].reset_index(drop=True)
    assert np.array_equal(traj[:, 0], np.stack(test.source_codes.map(np.asarray)))  # RM starts from the source
    assert (np.stack(rm_out.codes.map(np.asarray)) >= 0).all()  # every MASK revealed in the end
    base_out = read_parquet(f"{d['eval']}/base_outputs.parquet")
    assert all(len(t) == 0 for t in base_out.trajectory)


def test_mini_report(mini, tmp_path):
    cfg, d, _ = mini
    f = files(d)
    table = im_report.report(cfg, "mini", [f"{d['eval']}/{w}.parquet" for w in ("base", "sft", "rm")],
                             [f"{d['eval']}/{w}_outputs.parquet" for w in ("base", "sft", "rm")], f["edits"],
                             f["tokens"], f["vq"], str(tmp_path / "table1.md"), str(tmp_path / "image_edits.png"))
    assert len(table) == 3 and "Instr. score (paper)" in table.columns
    assert table["Prec. (paper)"].tolist() == [65.81, 71.84, 99.73]
    for ext in ("md", "tex", "csv"):
        assert (tmp_path / f"table1.{ext}").stat().st_size > 0
    for ext in ("png", "pdf"):
        assert (tmp_path / f"image_edits.{ext}").stat().st_size > 0
    md = (tmp_path / "table1.md").read_text()
    assert "**mini**" in md and "automatic checker" in md


def test_report_over_seeds_gives_the_mean_and_a_bootstrap_interval(mini, tmp_path):
    """Two RM seeds: Table 1's (ours) is the mean over seeds of each column, the 95% CI spans the
    seeds' spread, the figure uses the first seed, and the validation table has a row per seed."""
    cfg, d, _ = mini
    f = files(d)
    metrics, outputs = [f"{d['eval']}/base.parquet"], [f"{d['eval']}/base_outputs.parquet"]
    rm = read_parquet(f"{d['eval']}/rm.parquet")
    rm_out = read_parquet(f"{d['eval']}/rm_outputs.parquet")
    for seed, shift in ((0, 0.0), (1, 30.0)):
        m = rm.assign(seed=seed, coverage=rm["coverage"] + shift).sample(frac=1.0, random_state=seed)  # any row order
        m.to_parquet(tmp_path / f"rm_s{seed}.parquet")
        rm_out.assign(seed=seed).to_parquet(tmp_path / f"rm_s{seed}_outputs.parquet")
        metrics.append(str(tmp_path / f"rm_s{seed}.parquet"))
        outputs.append(str(tmp_path / f"rm_s{seed}_outputs.parquet"))
    table = im_report.report(cfg, "mini", metrics, outputs, f["edits"], f["tokens"], f["vq"],
                             str(tmp_path / "t1.md"), str(tmp_path / "fig.png"))
    want = float(np.nanmean(rm["coverage"])) + 15.0  # the mean of the two seeds' means
    assert table.loc["Base + RM", "Coverage (ours)"] == pytest.approx(want)
    lo, hi = (float(x) for x in table.loc["Base + RM", "Coverage 95% CI"].strip("[]").split(","))
    assert lo < want < hi and hi - lo > 10  # the seeds differ by 30 points
    assert table.loc["Base + RM", "Seeds"] == "0, 1" and table.loc["Base, no tuning (Lumina)", "Seeds"] == "0"
    val = im_report.validation_table(cfg, "mini", metrics, str(tmp_path / "val.md"))
    assert {"Base + RM (seed 0)", "Base + RM (seed 1)", "Base + RM, mean of 2 seeds"} <= set(val.index)
    assert val.loc["Base + RM, mean of 2 seeds", "Coverage"] == pytest.approx(want)


def test_training_hides_the_pad_slot_when_mask_padding(mini):
    """model.mask_padding: training passes the same PAD mask as evaluation; a text-dropped row's
    mask is the unconditional prompt's slot (UNCOND visible, its PADs hidden); off: no mask."""
    from rm_core.tasks.image.layout import SEG_TEXT, positions, uncond_text_ids

    cfg, d, _ = mini
    spec, _ = im_data.load_layout(d["tokens"], cfg)
    model = im_model.load_model(cfg, im_model.base_path(d["base"]))
    toks = read_parquet(Path(d["tokens"]) / "edits.parquet")
    ids = im_data.sequences(toks.iloc[:6], spec)["ids"]
    text = positions(spec, SEG_TEXT)
    emb = model.embed(ids)
    for p_text in (0.0, 1.0):
        on = {**cfg, "model": {**cfg["model"], "mask_padding": True},
              "cfg_dropout": {"p_text": p_text, "p_image": 0.0}}
        _, attn = im_train._dropout(model, spec, emb, ids, on, torch.Generator().manual_seed(0))
        slot = ids[:, text] if p_text == 0.0 else uncond_text_ids(spec)[None].expand(len(ids), -1)
        want = torch.ones_like(ids, dtype=torch.bool)
        want[:, text] = slot != spec.pad_id  # hidden exactly where the slot the model sees holds PAD
        assert torch.equal(attn, want) and not attn[:, ~text].logical_not().any()
        assert (~attn[:, text]).any()  # the mini instructions are shorter than the slot: PADs exist
    off = {**cfg, "model": {**cfg["model"], "mask_padding": False}}
    assert im_train._dropout(model, spec, emb, ids, off, torch.Generator().manual_seed(0))[1] is None


def test_unlikelihood_and_ordering_losses():
    V, M = 5, 4
    logits = torch.zeros(1, 3, V)
    logits[0, 0, M] = 10.0  # position 0: almost surely MASK
    sel = torch.tensor([[True, True, False]])
    ul = im_train.unlikelihood_loss(logits, sel, M, 1e-8)
    p0 = torch.softmax(logits[0, 0], -1)[M]
    p1 = torch.softmax(logits[0, 1], -1)[M]
    torch.testing.assert_close(ul, -(torch.log(1 - p0) + torch.log(1 - p1)) / 2)
    # ordering: a wrong visible token with a higher re-mask score than a correct one costs less
    z = torch.tensor([[0, 1]])
    target = torch.tensor([[0, 2]])  # position 0 correct (keep), position 1 wrong
    editable = torch.ones(1, 2, dtype=torch.bool)
    good = torch.zeros(1, 2, V)
    good[0, 1, M] = 5.0  # the wrong token is the one the model wants to re-mask
    bad = torch.zeros(1, 2, V)
    bad[0, 0, M] = 5.0
    assert im_train.ordering_loss(good, z, target, editable, M) < im_train.ordering_loss(bad, z, target, editable, M)
    assert float(im_train.ordering_loss(good, z, z, editable, M)) == 0.0  # no wrong token: nothing to rank


# --------------------------------------------------------------------------- paper scale, tiny

def _fake_imgedit(root: Path, n: int = 9) -> None:
    """ImgEdit's layout: single-turn parquets (+ one multi-turn parquet) and unpacked sample
    folders with original.png, result.png and an inverted mask.png (edit region black)."""
    rng = np.random.default_rng(0)
    unpack, pq = root / "unpacked", root / "Parquet"
    pq.mkdir(parents=True)
    rows = []
    for i in range(n):
        key = f"00001_00002_{i:09d}"
        folder = unpack / "results_add_part0" / key
        folder.mkdir(parents=True)
        y, x = np.mgrid[0:80, 0:96]
        src = np.stack([x * 2, y * 3, (x + y)], -1).clip(0, 255).astype(np.uint8)
        tgt = src.copy()
        r0, c0 = rng.integers(0, 40, 2)
        tgt[r0:r0 + 24, c0:c0 + 24] = (250, 20, 200)
        mask = np.full((80, 96), 255, np.uint8)
        mask[r0:r0 + 24, c0:c0 + 24] = 0
        Image.fromarray(src).save(folder / "original.png")
        Image.fromarray(tgt).save(folder / "result.png")
        if i % 2:
            Image.fromarray(mask).save(folder / "mask.png")
        rows.append({"input_images": [f"results_add_part0/{key}/original.png"],
                     "output_images": [f"results_add_part0/{key}/result.png"], "prompt": f"add a pink square {i}"})
    pd.DataFrame(rows).to_parquet(pq / "add_part0.parquet")
    pd.DataFrame({"data": [[{"prompt": "x"}]]}).to_parquet(pq / "version_backtracking_part0.parquet")


def paper_cfg(root: Path, ckpt: Path) -> dict:
    cfg = load_config(ROOT / "config" / "paper.yaml")["image"]
    cfg["data"].update(n_train=6, n_test=3)
    cfg["data"]["imgedit"].update(root=str(root), parquet_glob="**/*.parquet", unpack_root=str(root / "unpacked"),
                                  crop_size=[64, 64], processes=1)
    cfg["vq"]["n_codes"] = 32  # the tiny VQ
    cfg["text"]["text_len"] = 8
    cfg["model"].update(checkpoint=str(ckpt), gradient_checkpointing=False)
    cfg["train"].update(steps=2, batch_size=2, log_every=1, checkpoint_every=100, warmup_steps=0)
    cfg["eval"].update(maskgit_steps=2, batch_size=2, n_figure=2)
    cfg["rm"]["eval"]["turns"] = 2
    cfg["eval"]["vqascore"].update(cache_dir=str(root / "hf_cache"), required=False)
    return cfg


@pytest.mark.skipif(not HAS_DIFFUSERS, reason="the DiMOO VQ needs diffusers")
def test_paper_path_on_tiny_dimoo(tmp_path):
    from tiny_checkpoint import write_tiny_dimoo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ckpt = write_tiny_dimoo(tmp_path / "Lumina-DiMOO", seed=0)
    _fake_imgedit(tmp_path / "ImgEdit")
    cfg = paper_cfg(tmp_path / "ImgEdit", ckpt)
    d = {k: str(tmp_path / k) for k in ("data", "vq", "tokens", "base", "rm", "eval")}
    f = files(d)
    df = im_data.make_data(cfg, 0, f["edits"])
    assert (df.split == "train").sum() == 6 and (df.split == "test").sum() == 3
    assert set(df.region_source) == {"mask", "diff"}
    im_data.make_vq(cfg, 0, f["edits"], f["vq"])
    assert json.loads((Path(d["vq"]) / "config.json").read_text())["kind"] == "dimoo-vq"
    spec = im_data.make_tokens(cfg, f["edits"], f["vq"], f["tokens"], f["layout"])
    assert (spec.grid_h, spec.grid_w, spec.codebook_size, spec.code_offset) == (4, 4, 32, 512)
    assert spec.mask_id == json.loads((ckpt / "config.json").read_text())["mask_token_id"]
    toks = read_parquet(Path(d["tokens"]) / "edits.parquet")
    assert all(0 < len(i) <= 8 for i in toks.instr_ids) and all(len(c) == 16 for c in toks.target_codes)
    im_train.train_base(cfg, 0, f["tokens"], f["base"])
    assert im_model.base_path(d["base"]) == str(ckpt.resolve())
    im_train.train_model(cfg, "rm", 0, f["tokens"], f["base"], f["rm"])
    assert (Path(d["rm"]) / "config.json").exists() and len(read_parquet(Path(d["rm"]) / "train_log.parquet")) == 2
    from rm_core.backbones.dimoo import DiMOOBackbone
    assert DiMOOBackbone.from_pretrained(d["rm"]).dtype == torch.bfloat16
    for which in ("base", "rm"):
        s = im_eval.evaluate(cfg, which, f[which], f["edits"], f["tokens"], f["vq"], f"{d['eval']}/{which}.parquet",
                             f"{d['eval']}/{which}_outputs.parquet")
        m = read_parquet(f"{d['eval']}/{which}.parquet")
        assert len(m) == 3 and m.vqascore.isna().all() and m.instr_ok.isna().all()  # VQAScore weights absent
        assert np.isfinite(s["mae_rgb"]) and 0 <= s["ssim"] <= 1
    # Table 1 and the figure at paper scale (VQAScore absent: the instruction column is empty, not made up)
    table = im_report.report(cfg, "paper", [f"{d['eval']}/{w}.parquet" for w in ("base", "rm")],
                             [f"{d['eval']}/{w}_outputs.parquet" for w in ("base", "rm")], f["edits"], f["tokens"],
                             f["vq"], str(tmp_path / "table1"), str(tmp_path / "image_edits"))
    assert len(table) == 2 and (tmp_path / "image_edits.png").stat().st_size > 1000
    csv = pd.read_csv(tmp_path / "table1.csv")
    assert (csv["scale"] == "paper").all() and csv.filter(like="(paper)").notna().all().all()


def test_vqascore_required_is_a_clear_error(tmp_path):
    cfg = {"eval": {"vqascore": {"model": "clip-flant5-xxl", "cache_dir": str(tmp_path), "required": True}}}
    with pytest.raises(RuntimeError, match="VQAScore"):
        im_eval._vqascore(cfg, np.zeros((1, 16, 16, 3), np.uint8), ["x"])


def test_missing_checkpoint_and_data_name_what_to_get(tmp_path):
    cfg = paper_cfg(tmp_path / "nowhere", tmp_path / "no_ckpt")
    with pytest.raises(FileNotFoundError, match="sysuyy/ImgEdit"):
        im_data.make_data(cfg, 0, str(tmp_path / "data" / "edits.parquet"))
    with pytest.raises(FileNotFoundError, match="Lumina-DiMOO"):
        im_train.train_base(cfg, 0, str(tmp_path / "tokens" / "edits.parquet"), str(tmp_path / "base" / "run.json"))


# --------------------------------------------------------------------------- the workflow

@pytest.mark.parametrize("paper", [False, True])
def test_image_dag_in_dry_run(workdir, paper):
    args = ["-n", "-p", "all"] + (["--configfile", "config/paper.yaml"] if paper else [])
    r = run_snakemake(args, workdir)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for rule in ("image_data", "image_vq", "image_tokens", "image_base", "image_train", "image_eval", "table1"):
        assert f"rule {rule}:" in r.stdout, rule
    n_seeds = len(load_config(*([ROOT / "config" / "paper.yaml"] if paper else []))["image"]["seeds"])
    assert n_seeds == 1 if paper else n_seeds >= 2  # mini: an interval over seeds needs two
    # the base, then SFT and RM once per seed
    assert r.stdout.count("rule image_eval:") == 1 + 2 * n_seeds and r.stdout.count("rule image_train:") == 2 * n_seeds
    seeds = {int(line.split("--seed ")[1].split()[0]) for line in r.stdout.splitlines() if "image-train" in line}
    assert seeds == set(range(n_seeds))
    # SFT gets the `sft` settings, RM the `rm` settings, both the same `train` budget and model
    # (the values the configuration holds, as Snakemake merges --configfile over config.yaml)
    expected = load_config(*([ROOT / "config" / "paper.yaml"] if paper else []))["image"]
    params = {}
    for line in r.stdout.splitlines():
        if "image-train" in line:
            model = line.split("--which ")[1].split()[0]
            params[model] = json.loads(line.split("--params ")[1].split("' ")[0].strip("'"))
    assert set(params) == {"sft", "rm"}
    assert params["sft"]["sft"] == expected["sft"] and "rm" not in params["sft"]
    # RM training gets the method settings without `eval` (an evaluation setting must not retrain)
    assert params["rm"]["rm"] == training_settings(expected["rm"]) and "sft" not in params["rm"]
    for which in ("sft", "rm"):
        for key in ("train", "model", "text", "cfg_dropout"):
            assert params[which][key] == expected[key], (which, key)
    if paper:
        assert '"kind": "dimoo"' in r.stdout and '"n_train": 85000' in r.stdout


def test_first_turn_margins_agree_with_the_sampler(mini):
    """bench/image_margins.py: a code's first-turn margin is > 0 exactly where the evaluation
    sampler (Eq. 1) re-masked it at turn 1 (the saved RM trajectories)."""
    from bench.image_margins import first_turn_margins

    cfg, d, _ = mini
    spec, _ = im_data.load_layout(d["tokens"], cfg)
    toks = read_parquet(Path(d["tokens"]) / "edits.parquet")
    test = toks[toks.split == "test"].reset_index(drop=True)
    model = im_model.load_model(cfg, d["rm"]).eval()
    margins = first_turn_margins(cfg, model, spec, test)
    traj = np.stack(read_parquet(f"{d['eval']}/rm_outputs.parquet").trajectory.map(np.asarray)).reshape(6, 3, 9)
    assert margins.shape == (6, 9)
    assert 0 < (traj[:, 1] < 0).sum() < traj[:, 1].size  # both outcomes occur (5 of 54 re-masked)
    assert np.array_equal(margins > 0, traj[:, 1] < 0)
