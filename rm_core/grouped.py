"""Train several small models in one process as one grouped model (ours: a speed device).

The K models' parameters are stacked along a leading model axis (``torch.func.stack_module_state``)
and the backbone pass runs once for all of them (``torch.func.vmap`` over ``functional_call``:
batched matmuls over the model axis instead of K separate sets of kernel launches). Everything
else is each model's own math, as in ``rm_core.train.train``:

- model k draws its batch from ``step_generator(seed_k, step)`` (the same data stream as a
  separate run of that seed), through its own ``make_input(model, g) -> (inputs, aux)``, which
  may call ``model.embed`` (the History Reference input, Eq. 2, reads the token table), and its
  own ``finish(logits, aux) -> (loss, parts)`` (Eq. 4);
- the gradient of model k is that of its own loss (the losses are summed; the slices are disjoint);
- gradient clipping uses model k's own global norm (``clip_grad_norm_``'s formula per slice);
- AdamW is element-wise, so one AdamW over the stacked tensors is K separate AdamWs.

All K configs must share everything but the seed (steps, lr schedule, batch size, clipping).
Not done here: checkpoints and resume (a killed grouped run restarts from step 0); FSDP.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from torch.func import functional_call, stack_module_state, vmap

from .io import write_parquet
from .train import TRAIN_LOG_SCHEMA, TrainConfig, lr_at, step_generator


class _Method(torch.nn.Module):
    """forward = ``model.<name>``, so ``functional_call`` can run a backbone method."""

    def __init__(self, model: torch.nn.Module, name: str):
        super().__init__()
        self.model, self.name = model, name

    def forward(self, *args):
        return getattr(self.model, self.name)(*args)


class _Slice:
    """Model k of the group as the objective sees it: ``embed`` with model k's parameters."""

    def __init__(self, embed: _Method, params: dict, k: int, proto: torch.nn.Module):
        self._embed, self._params, self._k = embed, params, k
        self.mask_id, self.config = getattr(proto, "mask_id", None), getattr(proto, "config", None)

    def embed(self, ids):
        return functional_call(self._embed, {f"model.{n}": p[self._k] for n, p in self._params.items()}, (ids,))


def train_grouped(
    models: Sequence[torch.nn.Module],
    parts: Sequence[tuple[Callable, Callable]],
    cfgs: Sequence[TrainConfig],
    out_dirs: Sequence[str | Path] | None = None,
    stop_after: int | None = None,
    callback: Callable[[int, Sequence[torch.nn.Module]], None] | None = None,
    callback_every: int = 0,
) -> list[pd.DataFrame]:
    """Train ``models`` together; returns each one's log and writes the trained weights back into
    ``models`` (and, with ``out_dirs``, ``save_pretrained`` + ``train_log.parquet`` per model).

    ``stop_after`` ends after that many steps of the ``cfg.steps`` schedule (a truncated run: the
    learning rate follows the full schedule). ``callback(step, models)`` runs every
    ``callback_every`` steps with the models holding the current weights (e.g. a validation curve).
    """
    K = len(models)
    if not (K == len(parts) == len(cfgs)) or K == 0:
        raise ValueError("models, parts and cfgs must be non-empty and of one length")
    base = replace(cfgs[0], seed=0)
    if any(replace(c, seed=0) != base for c in cfgs):
        raise ValueError("grouped training needs one train config for all models (only the seed may differ)")
    cfg = cfgs[0]
    params, buffers = stack_module_state(list(models))
    if buffers:
        raise ValueError("grouped training supports models without buffers")
    params = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    proto = copy.deepcopy(models[0]).to("meta")
    embed, logits = _Method(proto, "embed"), _Method(proto, "logits")
    slices = [_Slice(embed, params, k, models[0]) for k in range(K)]

    def run_logits(p, x):
        return functional_call(logits, {f"model.{n}": v for n, v in p.items()}, (x,))

    grouped_logits = vmap(run_logits)
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    rows: list[list[dict]] = [[] for _ in range(K)]
    t0 = time.time()
    def write_back():
        with torch.no_grad():
            for k, m in enumerate(models):
                m.load_state_dict({n: p[k].detach().clone() for n, p in params.items()}, strict=True)

    last = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    for step in range(last):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        inputs, auxes = [], []
        for k in range(K):
            x, aux = parts[k][0](slices[k], step_generator(cfgs[k].seed, step))
            inputs.append(x)
            auxes.append(aux)
        out = grouped_logits(params, torch.stack(inputs))
        results = [parts[k][1](out[k], auxes[k]) for k in range(K)]
        torch.stack([r[0] for r in results]).sum().backward()
        norms = None
        if cfg.grad_clip:
            grads = [p.grad for p in params.values()]
            norms = torch.stack([g.reshape(K, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()  # (K,)
            coef = (cfg.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef.view(K, *([1] * (g.dim() - 1))))
        opt.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == last:
            for k in range(K):
                loss, p = results[k]
                row = {"step": step + 1, "loss": float(loss.detach()), "lr": lr_at(step, cfg), "elapsed_s": time.time() - t0}
                if norms is not None:
                    row["grad_norm"] = float(norms[k])
                row.update({n: float(v) for n, v in p.items() if n != "total"})
                rows[k].append(row)
        if callback is not None and callback_every and (step + 1) % callback_every == 0 and step + 1 < last:
            write_back()
            callback(step + 1, models)
    write_back()
    logs = [pd.DataFrame(r) for r in rows]
    for k, d in enumerate(out_dirs or []):
        models[k].save_pretrained(d)
        write_parquet(logs[k], Path(d) / "train_log.parquet", TRAIN_LOG_SCHEMA)
    return logs
