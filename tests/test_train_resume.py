"""Training resumes from its last checkpoint and ends bit-identical to an uninterrupted run."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from rm_core.backbones.small_transformer import SmallTransformer
from rm_core.config import load_config
from rm_core.io import load_tensors, read_parquet, write_parquet
from rm_core.pipeline.sudoku import data as sudoku_data
from rm_core.pipeline.sudoku import train as sudoku_train
from rm_core.train import save_checkpoint

CFG = load_config({"sudoku": dict(
    box=[2, 2], n_train=40, n_val=8, n_test=8, test_wrong=[1, 3], test_corruptions=1,
    model=dict(d_model=32, n_layers=2, n_heads=2, mlp_ratio=2, pos_scale=1.0),
    train=dict(steps=12, batch_size=8, lr=1e-3, warmup_steps=2, log_every=2, checkpoint_every=4),
    rm=dict(edit_set=dict(kind="count", low=1, high=3)), variants=dict(her=dict(kind="her")))})["sudoku"]


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    sudoku_data.make_data(CFG, 0, tmp_path / "train.parquet", tmp_path / "test.parquet")
    sudoku_train.train_variant(CFG, "her", 0, tmp_path / "train.parquet", tmp_path / "full" / "model.safetensors")
    # a run killed after 7 steps: only the step-4 checkpoint survives
    sudoku_train.train_variant(CFG, "her", 0, tmp_path / "train.parquet", tmp_path / "killed" / "model.safetensors", stop_after=7)
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    state = (tmp_path / "killed" / "checkpoint" / "trainer_state.json").read_text()
    assert '"step": 4' in state
    sudoku_train.train_variant(CFG, "her", 0, tmp_path / "train.parquet", tmp_path / "killed" / "model.safetensors")
    a = load_tensors(tmp_path / "full" / "model.safetensors")
    b = load_tensors(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not (tmp_path / "killed" / "checkpoint").exists()  # cleaned up after completion
    SmallTransformer.from_pretrained(tmp_path / "killed")


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    sudoku_data.make_data(CFG, 0, tmp_path / "train.parquet", tmp_path / "test.parquet")
    sudoku_train.train_variant(CFG, "her", 0, tmp_path / "train.parquet", tmp_path / "run" / "model.safetensors", stop_after=5)
    other = dict(CFG, rm=dict(CFG["rm"], p_wrong=0.9))
    sudoku_train.train_variant(other, "her", 0, tmp_path / "train.parquet", tmp_path / "run" / "model.safetensors")
    sudoku_train.train_variant(other, "her", 0, tmp_path / "train.parquet", tmp_path / "fresh" / "model.safetensors")
    a = load_tensors(tmp_path / "run" / "model.safetensors")
    b = load_tensors(tmp_path / "fresh" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- issue 11: a kill at any point of a checkpoint save; data in the fingerprint ----------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Data, an uninterrupted run, and the complete checkpoints of steps 4 and 8."""
    root = tmp_path_factory.mktemp("resume")
    sudoku_data.make_data(CFG, 0, root / "train.parquet", root / "test.parquet")
    sudoku_train.train_variant(CFG, "her", 0, root / "train.parquet", root / "full" / "model.safetensors")
    for stop, name in ((7, "ck4"), (11, "ck8")):
        sudoku_train.train_variant(CFG, "her", 0, root / "train.parquet", root / name / "model.safetensors", stop_after=stop)
        shutil.move(root / name / "checkpoint", root / f"{name}_dir")
    return root


def _partial(src, dst, drop):
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()


# on-disk states a SIGKILL can leave during save_checkpoint / the final clean-up -> the step resumed from
STATES = {
    "tmp_half_written": (lambda r, d: (shutil.copytree(r / "ck4_dir", d / "checkpoint"),
                                       _partial(r / "ck8_dir", d / "checkpoint.tmp", ["COMPLETE", "optimizer.safetensors"])), 4),
    "tmp_complete_not_renamed": (lambda r, d: (shutil.copytree(r / "ck4_dir", d / "checkpoint"),
                                               shutil.copytree(r / "ck8_dir", d / "checkpoint.tmp")), 8),
    "between_the_renames": (lambda r, d: (shutil.copytree(r / "ck4_dir", d / "checkpoint.old"),
                                          shutil.copytree(r / "ck8_dir", d / "checkpoint.tmp")), 8),
    "old_half_deleted": (lambda r, d: (shutil.copytree(r / "ck4_dir", d / "checkpoint"),
                                       _partial(r / "ck4_dir", d / "checkpoint.old", ["COMPLETE", "model.safetensors"])), 4),
    "only_old_left": (lambda r, d: shutil.copytree(r / "ck4_dir", d / "checkpoint.old"), 4),
    "final_cleanup_half_done": (lambda r, d: _partial(r / "ck8_dir", d / "checkpoint", ["COMPLETE", "model.safetensors"]), None),
}


@pytest.mark.parametrize("state", list(STATES))
def test_resume_after_a_kill_during_checkpoint_save(runs, tmp_path, state, caplog):
    make, step = STATES[state]
    out = tmp_path / "run"
    out.mkdir()
    make(runs, out)
    with caplog.at_level(logging.INFO, logger="rm_core.train"):
        sudoku_train.train_variant(CFG, "her", 0, runs / "train.parquet", out / "model.safetensors")
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resumed from")]
    assert resumed == ([] if step is None else [f"resumed from {out / 'checkpoint'} at step {step}"])
    a, b = load_tensors(runs / "full" / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint")) == []


def test_save_over_a_half_deleted_old_checkpoint(runs, tmp_path):
    """The rename onto checkpoint.old used to fail with 'Directory not empty' after such a kill."""
    model = SmallTransformer.from_pretrained(runs / "full")
    opt = torch.optim.AdamW(model.parameters())
    ck = tmp_path / "checkpoint"
    shutil.copytree(runs / "ck4_dir", ck)
    _partial(runs / "ck4_dir", tmp_path / "checkpoint.old", ["COMPLETE"])
    save_checkpoint(model, opt, 9, [], ck)
    assert json.loads((ck / "trainer_state.json").read_text())["step"] == 9 and (ck / "COMPLETE").exists()
    assert not (tmp_path / "checkpoint.old").exists() and not (tmp_path / "checkpoint.tmp").exists()


def test_fingerprint_covers_the_boards(tmp_path):
    """Other boards with the same n_train (here: another sudoku.n_test) must not resume a stale checkpoint."""
    other = dict(CFG, n_test=9)
    sudoku_data.make_data(CFG, 0, tmp_path / "a.parquet", tmp_path / "a_test.parquet")
    sudoku_data.make_data(other, 0, tmp_path / "b.parquet", tmp_path / "b_test.parquet")
    a, b = read_parquet(tmp_path / "a.parquet"), read_parquet(tmp_path / "b.parquet")
    assert len(a) == len(b) and not a["solution"].map(tuple).equals(b["solution"].map(tuple))
    sudoku_train.train_variant(CFG, "her", 0, tmp_path / "a.parquet", tmp_path / "run" / "model.safetensors", stop_after=5)
    sudoku_train.train_variant(other, "her", 0, tmp_path / "b.parquet", tmp_path / "run" / "model.safetensors")
    sudoku_train.train_variant(other, "her", 0, tmp_path / "b.parquet", tmp_path / "fresh" / "model.safetensors")
    x, y = load_tensors(tmp_path / "run" / "model.safetensors"), load_tensors(tmp_path / "fresh" / "model.safetensors")
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_empty_boards_file_is_named(tmp_path):
    sudoku_data.make_data(CFG, 0, tmp_path / "train.parquet", tmp_path / "test.parquet")
    df = read_parquet(tmp_path / "train.parquet")
    write_parquet(df.iloc[:0], tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match=r"empty\.parquet.*is empty"):
        sudoku_train.train_variant(CFG, "her", 0, tmp_path / "empty.parquet", tmp_path / "run" / "model.safetensors")
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_image_fingerprints_cover_the_token_files(tmp_path, monkeypatch):
    """Image track: base and SFT/RM fingerprints change with the token files' bytes at equal row counts."""
    from rm_core.pipeline.image import data as im_data
    from rm_core.pipeline.image import train as im_train

    cfg = load_config()["image"]
    cfg["data"].update(n_train=12, n_test=2)
    cfg["data"]["scenes"]["n_base"] = 12
    d = {k: str(tmp_path / k) for k in ("data", "vq", "tokens", "base")}
    edits, vq, tokens = f"{d['data']}/edits.parquet", f"{d['vq']}/config.json", f"{d['tokens']}/edits.parquet"
    im_data.make_data(cfg, 0, edits, f"{d['data']}/base.parquet")
    im_data.make_vq(cfg, 0, edits, vq)
    im_data.make_tokens(cfg, edits, vq, tokens, f"{d['tokens']}/layout.json")
    Path(d["base"]).mkdir()
    (Path(d["base"]) / "run.json").write_text(json.dumps({"path": d["base"]}))
    seen = []

    class Stop(Exception):
        pass

    def fake_train(model, loss_fn, tcfg, out, stop_after=None, fingerprint=None):
        seen.append(fingerprint)
        raise Stop

    monkeypatch.setattr(im_train, "train", fake_train)
    monkeypatch.setattr(im_train, "load_model", lambda cfg, path: None)

    def fingerprints():
        out = []
        for call in (lambda: im_train.train_base(cfg, 0, tokens, str(tmp_path / "b" / "run.json")),
                     lambda: im_train.train_model(cfg, "rm", 0, tokens, f"{d['base']}/run.json",
                                                  str(tmp_path / "r" / "run.json"))):
            with pytest.raises(Stop):
                call()
            out.append(seen.pop())
        return out

    before = fingerprints()
    for name in ("base.parquet", "edits.parquet"):
        path = Path(d["tokens"]) / name
        df = read_parquet(path)
        write_parquet(df.iloc[::-1].reset_index(drop=True), path)  # same rows, other order
    after = fingerprints()
    for x, y in zip(before, after):
        assert x["n"] == y["n"] and x["data"] != y["data"]
        assert {k: v for k, v in x.items() if k != "data"} == {k: v for k, v in y.items() if k != "data"}
