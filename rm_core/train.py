"""One training loop for every objective, task and backbone (accelerate), with exact resume.

Each step's randomness comes from a generator seeded by (seed, step, process), so a run
that is killed and resumed from its last checkpoint draws the same batches as an
uninterrupted one and ends with the same weights. A checkpoint is a folder with the model
(``model.safetensors`` + ``config.json``, written by the backbone's ``save_pretrained``),
the optimizer state (``optimizer.safetensors`` + ``trainer_state.json``); it is written to a
temporary folder and renamed, so a kill never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from .io import load_tensors, save_tensors, write_parquet

log = logging.getLogger(__name__)

TRAIN_LOG_SCHEMA = """step: int, optimizer step (1-based)
loss: float, the training loss of the step
lr: float, learning rate used
elapsed_s: float, wall seconds since the (re)start
other columns: the loss parts reported by the objective (e.g. reveal/mask/keep, n_*)"""


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.98)
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 200

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "betas" in known:
            known["betas"] = tuple(known["betas"])
        return cls(**known)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio`` of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def step_generator(seed: int, step: int, process: int = 0, device="cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step * 7_919 + process * 104_729) % (2**63 - 1))
    return g


def _save_optimizer(opt: torch.optim.Optimizer, path: Path) -> dict:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    save_tensors(tensors, path)
    return {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer(opt: torch.optim.Optimizer, path: Path, meta: dict) -> None:
    tensors = load_tensors(path)
    state: dict = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(model, opt, step: int, rows: list, ckpt_dir: Path, fingerprint: dict | None = None) -> None:
    tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    opt_meta = _save_optimizer(opt, tmp / "optimizer.safetensors")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "optimizer": opt_meta, "log": rows, "fingerprint": fingerprint}))
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    if ckpt_dir.exists():
        os.replace(ckpt_dir, old)
    os.replace(tmp, ckpt_dir)
    if old.exists():
        shutil.rmtree(old)


def load_checkpoint(model, opt, ckpt_dir: Path) -> tuple[int, list]:
    state = json.loads((ckpt_dir / "trainer_state.json").read_text())
    weights = load_tensors(ckpt_dir / "model.safetensors")
    model.load_state_dict(weights)
    _load_optimizer(opt, ckpt_dir / "optimizer.safetensors", state["optimizer"])
    return int(state["step"]), list(state["log"])


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, int, torch.Generator], tuple[torch.Tensor, dict]],
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    stop_after: int | None = None,
    progress: bool = True,
    fingerprint: dict | None = None,
) -> pd.DataFrame:
    """Train ``model`` for ``cfg.steps`` steps; write the final model and ``train_log.parquet``.

    ``loss_fn(model, step, generator)`` builds the step's batch from the generator and
    returns (loss, parts). Resumes from ``out_dir/checkpoint`` when present and its
    ``fingerprint`` (everything that defines the run: config, data, init) matches; a
    checkpoint of another run is discarded. ``stop_after`` (tests) ends the process after
    that many steps as if it had been killed: nothing after the last checkpoint is kept.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoint"
    acc = Accelerator(cpu=not torch.cuda.is_available())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    start, rows = 0, []
    fingerprint = json.loads(json.dumps({"train": asdict(cfg), **(fingerprint or {})}))
    if (ckpt_dir / "trainer_state.json").exists():
        if json.loads((ckpt_dir / "trainer_state.json").read_text()).get("fingerprint") == fingerprint:
            start, rows = load_checkpoint(model, opt, ckpt_dir)
            log.info("resumed from %s at step %d", ckpt_dir, start)
        else:
            log.warning("ignoring %s: it belongs to a run with other settings", ckpt_dir)
            shutil.rmtree(ckpt_dir)
    # The model stays unwrapped: losses call backbone methods (embed/logits) that a DDP
    # wrapper does not expose, so gradients are averaged across processes by hand below.
    # Each process draws its own batch: the effective batch is num_processes x batch_size.
    model = model.to(acc.device)
    opt = acc.prepare(opt)
    core = model
    t0 = time.time()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress or not acc.is_main_process,
               desc=out_dir.name, mininterval=5)
    for step in bar:
        if stop_after is not None and step >= start + stop_after:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        g = step_generator(cfg.seed, step, acc.process_index, device=acc.device)
        model.train()
        loss, parts = loss_fn(model, step, g)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        if acc.num_processes > 1:
            for p in model.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= acc.num_processes
        if cfg.grad_clip:
            acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            row = {"step": step + 1, "loss": float(loss.detach()), "lr": lr_at(step, cfg), "elapsed_s": time.time() - t0}
            row.update({k: float(v) for k, v in parts.items() if k != "total"})
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            log.info("step %d loss %.4f %s", step + 1, row["loss"], {k: round(v, 4) for k, v in parts.items()})
        if acc.is_main_process and ((step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps):
            save_checkpoint(core, opt, step + 1, rows, ckpt_dir, fingerprint)
    else:
        if acc.is_main_process:
            core.save_pretrained(out_dir)
            df = pd.DataFrame(rows)
            write_parquet(df, out_dir / "train_log.parquet", TRAIN_LOG_SCHEMA)
            if ckpt_dir.exists():
                shutil.rmtree(ckpt_dir)
            return df
    return pd.DataFrame(rows)


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)
