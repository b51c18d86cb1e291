"""One training loop for every objective, task and backbone (accelerate), with exact resume.

Each step's randomness comes from a generator seeded by (seed, step, process), so a run
that is killed and resumed from its last checkpoint draws the same batches as an
uninterrupted one and ends with the same weights. A checkpoint is a folder with the model
(``model.safetensors`` + ``config.json``, written by the backbone's ``save_pretrained``),
the optimizer state (``optimizer.safetensors`` + ``trainer_state.json``) and a ``COMPLETE``
marker written last; it is written to ``checkpoint.tmp`` and renamed into place (the previous one
parked as ``checkpoint.old`` meanwhile), and a folder is deleted marker first. A kill at any point
of a save leaves at least one complete folder among checkpoint/.tmp/.old, and the next start
(``recover_checkpoint``) keeps the complete one with the highest step and removes the rest.

With several processes (``accelerate launch``/``torchrun``) each process draws its own batch
and gradients are averaged. ``sharding: none`` keeps a full copy of weights, gradients and
AdamW state in every process (gradients all-reduced by hand); ``sharding: fsdp`` shards them
with PyTorch's FSDP2 (``fully_shard``: every element of every ``nn.ModuleList``, then the
root), so an 8B backbone fits on two 80 GB GPUs. Checkpoints and the final model have the same
unsharded on-disk format either way: FSDP gathers full state dicts onto rank 0, which writes.
"""

from __future__ import annotations

import hashlib
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
grad_norm: float, the gradient norm before clipping (when grad_clip > 0)
other columns: the loss parts reported by the objective (e.g. reveal/mask/keep, n_*)"""


SHARDINGS = ("none", "fsdp")
WEIGHTS_INDEX = "model.safetensors.index.json"


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
    sharding: str = "none"  # none | fsdp (FSDP2 over the processes; one process: none)

    def __post_init__(self):
        if self.sharding not in SHARDINGS:
            raise ValueError(f"train.sharding must be one of {SHARDINGS}, got {self.sharding!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The ``train`` section of a track's config; a key that is not a field is an error (a typo
        would otherwise train with the default silently)."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown training key(s) {unknown}; the train section takes "
                             f"{sorted(cls.__dataclass_fields__)}")
        known = dict(d)
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


def _save_optimizer(sd: dict, path: Path) -> dict:
    """Tensors of an optimizer state dict (keyed by parameter index) to ``path``; returns the rest."""
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    save_tensors(tensors, path)
    return {"param_groups": sd["param_groups"], "scalars": scalars}


def _read_optimizer(path: Path, meta: dict) -> dict:
    """The optimizer state dict written by ``_save_optimizer`` (parameter indices as keys)."""
    tensors = load_tensors(path)
    state: dict = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def _read_weights(directory: Path) -> dict:
    """The weights ``save_pretrained`` wrote: model.safetensors, or the shards of its index (LLaDA)."""
    index = directory / WEIGHTS_INDEX
    if not index.exists():
        return load_tensors(directory / "model.safetensors")
    weights = {}
    for name in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        weights.update(load_tensors(directory / name))
    return weights


def shard_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """FSDP2 in place over all processes: ``fully_shard`` each element of every ``nn.ModuleList``
    (the transformer blocks; deepest first, as FSDP needs children before parents), then the root.

    The module keeps its class (FSDP2 swaps in a subclass) and methods. FSDP gathers a unit's
    parameters around ``forward`` only, so the backbone methods the losses call instead
    (``embed``, ``logits``: rm_core.backbones.base) are registered as forward methods of the root.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    blocks = [m for ml in model.modules() if isinstance(ml, torch.nn.ModuleList) for m in ml]
    for block in reversed(blocks):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for name in ("embed", "logits"):
        if callable(getattr(model, name, None)):
            register_fsdp_forward_method(model, name)
    return model


def _is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full_model_state(model: torch.nn.Module) -> dict:
    """The model's full state dict. Sharded: gathered onto rank 0's CPU (a collective: every
    process calls it); the other ranks get {}."""
    if not _is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _full_optimizer_state(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    """``opt.state_dict()`` (state and groups keyed by parameter index). Sharded: gathered onto
    rank 0's CPU as in ``_full_model_state`` and renumbered from parameter names to indices."""
    if not _is_sharded(model):
        return opt.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    sd = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not sd:
        return {}
    return _rekey_optimizer(sd, {name: i for i, (name, _) in enumerate(model.named_parameters())})


def _rekey_optimizer(sd: dict, key: dict) -> dict:
    """An optimizer state dict with its parameter keys mapped through ``key`` (names <-> indices)."""
    return {"state": {key[k]: v for k, v in sd["state"].items()},
            "param_groups": [{**g, "params": [key[k] for k in g["params"]]} for g in sd["param_groups"]]}


def _save_model(model: torch.nn.Module, state: dict, directory: Path) -> None:
    """The backbone's own ``save_pretrained(directory)``. A sharded model saves through an
    unsharded twin of its class, built on the meta device, that takes the gathered ``state``."""
    if not _is_sharded(model):
        model.save_pretrained(directory)
        return
    from torch.distributed.fsdp import FSDPModule

    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    with torch.device("meta"):
        twin = cls(model.config)
    twin.load_state_dict(state, assign=True)
    twin.save_pretrained(directory)


COMPLETE = "COMPLETE"


def files_digest(paths) -> str:
    """sha256 of the files' bytes, in order (the data part of a run's fingerprint)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def _remove(folder: Path) -> None:
    """Delete a checkpoint folder, its COMPLETE marker first (a half-deleted folder is never taken as whole)."""
    if folder.is_dir():
        (folder / COMPLETE).unlink(missing_ok=True)
        shutil.rmtree(folder)
    elif folder.exists():
        folder.unlink()


def _complete_step(folder: Path) -> int | None:
    """The step of a complete checkpoint folder, else None."""
    try:
        if not (folder / COMPLETE).is_file():
            return None
        return int(json.loads((folder / "trainer_state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recover_checkpoint(ckpt_dir: Path) -> None:
    """Undo an interrupted save: of ``checkpoint``, ``checkpoint.tmp`` and ``checkpoint.old`` keep the
    complete one with the highest step as ``checkpoint``; delete the others and any incomplete one."""
    ckpt_dir = Path(ckpt_dir)
    folders = [ckpt_dir, ckpt_dir.with_name(ckpt_dir.name + ".tmp"), ckpt_dir.with_name(ckpt_dir.name + ".old")]
    steps = {f: _complete_step(f) for f in folders}
    best = max((f for f in folders if steps[f] is not None), key=lambda f: steps[f], default=None)
    if best is not None and best != ckpt_dir:
        _remove(ckpt_dir)
        os.replace(best, ckpt_dir)
    for f in folders[1:] + ([ckpt_dir] if best is None else []):
        if f.exists():
            log.info("removing %s left by an interrupted checkpoint save", f)
            _remove(f)


def save_checkpoint(model, opt, step: int, rows: list, ckpt_dir: Path, fingerprint: dict | None = None,
                    is_main: bool = True) -> None:
    """Write the checkpoint folder atomically (main process). A sharded model: every process
    must call this (the gather is collective), only ``is_main`` writes."""
    model_sd, opt_sd = _full_model_state(model), _full_optimizer_state(model, opt)
    if not is_main:
        return
    tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    _remove(tmp)
    tmp.mkdir(parents=True)
    _save_model(model, model_sd, tmp)
    opt_meta = _save_optimizer(opt_sd, tmp / "optimizer.safetensors")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "optimizer": opt_meta, "log": rows, "fingerprint": fingerprint}))
    _fsync_tree(tmp)
    (tmp / COMPLETE).write_text(str(step))
    _remove(old)  # a .old half-deleted by a kill would make the rename below fail (ENOTEMPTY)
    if ckpt_dir.exists():
        os.replace(ckpt_dir, old)
    os.replace(tmp, ckpt_dir)
    _remove(old)


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if not p.is_file():
            continue
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def load_checkpoint(model, opt, ckpt_dir: Path, is_main: bool = True) -> tuple[int, list]:
    """Load weights and optimizer state; returns (step, log rows). A sharded model: every
    process calls this; rank 0 alone reads the tensors and broadcasts them, each rank keeping
    its shard (one full copy in host memory per node instead of one per process)."""
    state = json.loads((ckpt_dir / "trainer_state.json").read_text())
    if not _is_sharded(model):
        model.load_state_dict(_read_weights(ckpt_dir))
        opt.load_state_dict(_read_optimizer(ckpt_dir / "optimizer.safetensors", state["optimizer"]))
        return int(state["step"]), list(state["log"])
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, _read_weights(ckpt_dir) if is_main else {}, options=options)
    osd = {}
    if is_main:
        osd = _rekey_optimizer(_read_optimizer(ckpt_dir / "optimizer.safetensors", state["optimizer"]),
                               dict(enumerate(name for name, _ in model.named_parameters())))
    set_optimizer_state_dict(model, opt, osd, options=options)
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
    With ``cfg.sharding == "fsdp"`` and several processes ``model`` is sharded in place and
    stays so: the result is the unsharded model written to ``out_dir``.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoint"
    acc = Accelerator(cpu=not torch.cuda.is_available())
    # The model is never wrapped (DDP would hide the backbone methods embed/logits that losses
    # call). Each process draws its own batch: the effective batch is num_processes x batch_size.
    model = model.to(acc.device)
    sharded = cfg.sharding == "fsdp" and acc.num_processes > 1
    if cfg.sharding == "fsdp" and not sharded:
        log.info("sharding fsdp with a single process: training unsharded")
    if sharded:
        shard_model(model, acc.device)  # before the optimizer: it must hold the sharded parameters
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    acc_opt = acc.prepare(opt)  # checkpoints read and write ``opt`` itself
    start, rows = 0, []
    # sharding changes where tensors live, not the run: a checkpoint resumes under either.
    settings = {k: v for k, v in asdict(cfg).items() if k != "sharding"}
    fingerprint = json.loads(json.dumps({"train": settings, **(fingerprint or {})}))
    if acc.is_main_process:
        recover_checkpoint(ckpt_dir)
    acc.wait_for_everyone()
    if (ckpt_dir / "trainer_state.json").exists():
        if json.loads((ckpt_dir / "trainer_state.json").read_text()).get("fingerprint") == fingerprint:
            start, rows = load_checkpoint(model, opt, ckpt_dir, is_main=acc.is_main_process)
            log.info("resumed from %s at step %d", ckpt_dir, start)
        else:
            log.warning("ignoring %s: it belongs to a run with other settings", ckpt_dir)
            acc.wait_for_everyone()  # every process has read it before the main one deletes it
            if acc.is_main_process:
                _remove(ckpt_dir)
    acc.wait_for_everyone()  # no process starts before every one has read the checkpoint
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
        acc_opt.zero_grad(set_to_none=True)  # before the forward: last step's grads are not kept through it
        loss, parts = loss_fn(model, step, g)
        acc.backward(loss)
        if acc.num_processes > 1 and not sharded:  # FSDP reduce-scatters (and averages) by itself
            for p in model.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= acc.num_processes
        # DTensor-aware under FSDP: the norm of the full gradient, the same as unsharded
        grad_norm = acc.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
        acc_opt.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            row = {"step": step + 1, "loss": float(loss.detach()), "lr": lr_at(step, cfg), "elapsed_s": time.time() - t0}
            if grad_norm is not None:
                row["grad_norm"] = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
            row.update({k: float(v) for k, v in parts.items() if k != "total"})
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            log.info("step %d loss %.4f %s", step + 1, row["loss"], {k: round(v, 4) for k, v in parts.items()})
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            if sharded or acc.is_main_process:
                save_checkpoint(model, opt, step + 1, rows, ckpt_dir, fingerprint, is_main=acc.is_main_process)
            acc.wait_for_everyone()  # the checkpoint is complete before any process goes on
    else:
        state = _full_model_state(model) if sharded else None
        df = pd.DataFrame(rows)
        if acc.is_main_process:
            _save_model(model, state, out_dir)
            write_parquet(df, out_dir / "train_log.parquet", TRAIN_LOG_SCHEMA)
            _remove(ckpt_dir)
        acc.wait_for_everyone()  # the final model is on disk before any process returns
        return df
    return pd.DataFrame(rows)

