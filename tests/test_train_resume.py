"""Training resumes from its last checkpoint and ends bit-identical to an uninterrupted run."""

import torch

from rm_core.backbones.small_transformer import SmallTransformer
from rm_core.io import load_tensors
from rm_core.pipeline import sudoku

CFG = dict(box=[2, 2], n_train=40, n_test=8, test_wrong=[1, 3], T=6,
           model=dict(d_model=32, n_layers=2, n_heads=2, mlp_ratio=2, pos_scale=1.0),
           train=dict(steps=12, batch_size=8, lr=1e-3, warmup_steps=2, log_every=2, checkpoint_every=4),
           rm=dict(edit_set=dict(kind="count", low=1, high=3), p_wrong=0.5, other_weight=1.0, eps=1e-8),
           variants=dict(her=dict(kind="her", gamma=0.9)))


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    sudoku.make_data(CFG, 0, tmp_path / "train.parquet", tmp_path / "test.parquet")
    sudoku.train_variant(CFG, "her", 0, tmp_path / "train.parquet", tmp_path / "full")
    # a run killed after 7 steps: only the step-4 checkpoint survives
    sudoku.train_variant(CFG, "her", 0, tmp_path / "train.parquet", tmp_path / "killed", stop_after=7)
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    state = (tmp_path / "killed" / "checkpoint" / "trainer_state.json").read_text()
    assert '"step": 4' in state
    sudoku.train_variant(CFG, "her", 0, tmp_path / "train.parquet", tmp_path / "killed")
    a = load_tensors(tmp_path / "full" / "model.safetensors")
    b = load_tensors(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not (tmp_path / "killed" / "checkpoint").exists()  # cleaned up after completion
    SmallTransformer.from_pretrained(tmp_path / "killed")


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    sudoku.make_data(CFG, 0, tmp_path / "train.parquet", tmp_path / "test.parquet")
    sudoku.train_variant(CFG, "her", 0, tmp_path / "train.parquet", tmp_path / "run", stop_after=5)
    other = dict(CFG, rm=dict(CFG["rm"], p_wrong=0.9))
    sudoku.train_variant(other, "her", 0, tmp_path / "train.parquet", tmp_path / "run")
    sudoku.train_variant(other, "her", 0, tmp_path / "train.parquet", tmp_path / "fresh")
    a = load_tensors(tmp_path / "run" / "model.safetensors")
    b = load_tensors(tmp_path / "fresh" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
