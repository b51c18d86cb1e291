"""Sharded training (``sharding: fsdp``, FSDP2) over 2 CPU processes with gloo.

One ``torchrun`` launch of this file (``_worker``) trains a tiny SmallTransformer and a tiny
LLaDA (gradient checkpointing on; sharded weights files) with ``sharding: none`` and ``fsdp``,
and an FSDP run killed after a checkpoint, then resumed. The tests compare the saved models,
which load in this single process with the backbones' normal loaders.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from rm_core.backbones.llada import LLaDABackbone, LLaDAConfig
from rm_core.backbones.small_transformer import SmallTransformer, SmallTransformerConfig
from rm_core.train import TrainConfig, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
TRAIN = dict(steps=6, batch_size=4, lr=1e-2, warmup_steps=1, log_every=1, checkpoint_every=3, grad_clip=0.05)
KILL_AFTER = 4  # steps: only the step-3 checkpoint survives


def small_model() -> SmallTransformer:
    torch.manual_seed(0)
    return SmallTransformer(SmallTransformerConfig(vocab_size=11, n_positions=8, mask_id=10, d_model=16,
                                                   n_layers=2, n_heads=2, mlp_ratio=2))


def llada_model() -> LLaDABackbone:
    model = LLaDABackbone.from_config(LLaDAConfig(d_model=16, n_layers=2, n_heads=2, vocab_size=24, mask_token_id=23,
                                                  eos_token_id=0, pad_token_id=0), seed=0)
    model.gradient_checkpointing_enable()
    return model


MODELS = {"small": small_model, "llada": llada_model}
LOADERS = {"small": SmallTransformer.from_pretrained,
           "llada": lambda d: LLaDABackbone.from_pretrained(d, dtype=torch.float32)}


def mdm_loss(model, step, g):
    """A masked-token loss through ``embed``/``logits``, the way the objectives call backbones:
    several ``embed`` calls per step (History Reference, CFG dropout), one of them indexed."""
    ids = torch.randint(0, model.mask_id, (TRAIN["batch_size"], 8), generator=g, device=g.device)
    masked = torch.rand(ids.shape, generator=g, device=g.device) < 0.5
    mask_e = model.embed(torch.full((1, 1), model.mask_id, device=g.device))[0, 0]
    e = torch.where(masked[..., None], mask_e, model.embed(ids) + 0.1 * model.embed(ids.flip(-1)))
    logits = model.logits(e)
    loss = F.cross_entropy(logits[masked].float(), ids[masked])
    return loss, {"masked": float(masked.float().mean())}


def _worker(out: Path) -> None:
    """Run under torchrun (2 processes): every training run the tests compare."""
    torch.set_num_threads(1)
    for kind, make in MODELS.items():
        for sharding in ("none", "fsdp"):
            model = make()
            train(model, mdm_loss, TrainConfig(**TRAIN, sharding=sharding), out / f"{kind}_{sharding}", progress=False)
        cfg = TrainConfig(**TRAIN, sharding="fsdp")
        train(make(), mdm_loss, cfg, out / f"{kind}_killed", stop_after=KILL_AFTER, progress=False)
        if torch.distributed.get_rank() == 0:
            shutil.copytree(out / f"{kind}_killed" / "checkpoint", out / f"{kind}_checkpoint")
        torch.distributed.barrier()
        train(make(), mdm_loss, cfg, out / f"{kind}_killed", progress=False)
        if torch.distributed.get_rank() == 0:
            facts = {"class": type(model).__name__, "isinstance": isinstance(model, type(make())),
                     "param": type(next(model.parameters())).__name__}
            (out / f"{kind}_facts.json").write_text(json.dumps(facts))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__, str(out)]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return out


def weights(kind: str, folder: Path) -> dict:
    return LOADERS[kind](folder).state_dict()


@pytest.mark.parametrize("kind", MODELS)
def test_fsdp_equals_unsharded_two_process_run(runs, kind):
    facts = json.loads((runs / f"{kind}_facts.json").read_text())
    assert facts["class"].startswith("FSDP") and facts["isinstance"] and facts["param"] == "DTensor"
    a, b = weights(kind, runs / f"{kind}_none"), weights(kind, runs / f"{kind}_fsdp")
    assert a.keys() == b.keys()
    start = weights(kind, _saved(MODELS[kind](), runs / f"{kind}_init"))
    assert any(not torch.allclose(start[k], a[k]) for k in a)  # training moved the weights
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4, msg=k)
    la, lb = (pd.read_parquet(runs / f"{kind}_{s}" / "train_log.parquet") for s in ("none", "fsdp"))
    assert len(la) == TRAIN["steps"] and (la["grad_norm"] > TRAIN["grad_clip"]).all()  # clipping is active
    for col in ("loss", "grad_norm"):  # the sharded (DTensor) gradient norm is the full one
        torch.testing.assert_close(torch.tensor(lb[col].values), torch.tensor(la[col].values), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", MODELS)
def test_killed_and_resumed_fsdp_run_equals_uninterrupted(runs, kind):
    a, b = weights(kind, runs / f"{kind}_fsdp"), weights(kind, runs / f"{kind}_killed")
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)
    assert not (runs / f"{kind}_killed" / "checkpoint").exists()
    log = pd.read_parquet(runs / f"{kind}_killed" / "train_log.parquet")
    assert list(log["step"]) == list(range(1, TRAIN["steps"] + 1))


@pytest.mark.parametrize("kind", MODELS)
def test_fsdp_outputs_load_in_one_process(runs, kind):
    """The final model and an FSDP checkpoint are unsharded files that one process reads."""
    model = LOADERS[kind](runs / f"{kind}_fsdp")
    assert model(torch.zeros(1, 8, dtype=torch.long)).shape == (1, 8, model.vocab_size)
    model = MODELS[kind]()
    opt = torch.optim.AdamW(model.parameters())
    step, rows = load_checkpoint(model, opt, runs / f"{kind}_checkpoint")
    assert step == 3 and [r["step"] for r in rows] == [1, 2, 3]
    for p in model.parameters():
        assert opt.state[p]["exp_avg"].shape == p.shape and int(opt.state[p]["step"]) == 3


def test_fsdp_with_one_process_trains_unsharded(tmp_path, caplog):
    cfg = dict(TRAIN, steps=2)
    train(small_model(), mdm_loss, TrainConfig(**cfg), tmp_path / "none", progress=False)
    with caplog.at_level("INFO", logger="rm_core.train"):
        train(small_model(), mdm_loss, TrainConfig(**cfg, sharding="fsdp"), tmp_path / "fsdp", progress=False)
    assert "single process" in caplog.text
    a, b = weights("small", tmp_path / "none"), weights("small", tmp_path / "fsdp")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_sharding_is_an_error():
    with pytest.raises(ValueError, match="sharding"):
        TrainConfig.from_dict({"sharding": "zero3"})


def _saved(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))


def test_unknown_training_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"unknown training key\(s\) \['stpes'\]"):
        TrainConfig.from_dict({"stpes": 10, "lr": 1e-3})
    assert TrainConfig.from_dict({"steps": 10, "betas": [0.9, 0.95]}).betas == (0.9, 0.95)
