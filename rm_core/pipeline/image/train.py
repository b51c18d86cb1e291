"""The image track, training: the base pre-training mixture (mini), vanilla SFT (the MDM loss of
rm_core.objective, DiMOO's form) and RM (Appendix C with the source-image proposal, Eq. 4, plus
the auxiliary losses), all with CFG dropout (Appendix C step 8)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ...guidance import cfg_dropout
from ...io import read_parquet, write_json
from ...objective import mdm_corrupt, mdm_loss, position_weights, rm_loss, rm_model_input
from ...tasks.image.layout import (SEG_SRC, SEG_TEXT, SEG_TGT, LayoutSpec, key_padding_mask, positions,
                                   uncond_text_ids)
from ...train import TrainConfig, files_digest, train
from ...trajectory import SourceProposal, build_instances
from .data import load_layout, require_checkpoint, sequences
from .model import base_path, build_small, is_mini, load_model, pad_attention_mask, rm_settings

log = logging.getLogger(__name__)


def _cfg_parts(model, spec: LayoutSpec, dev):
    tpos, ipos = positions(spec, SEG_TEXT).to(dev), positions(spec, SEG_SRC).to(dev)
    unc = model.embed(uncond_text_ids(spec).to(dev)[None])[0]
    mask_e = model.embed(torch.tensor([[spec.mask_id]], device=dev))[0, 0]
    return tpos, unc, ipos, mask_e


def _dropout(model, spec: LayoutSpec, emb: torch.Tensor, ids: torch.Tensor, cfg: dict, g: torch.Generator):
    """CFG dropout (Appendix C step 8) on the model input ``emb`` of the sequences ``ids``, and
    its attention mask: with ``model.mask_padding`` the instruction slot's PAD positions are
    hidden in training as at evaluation (a text-dropped row's slot is the unconditional
    prompt's); None otherwise."""
    tpos, unc, ipos, mask_e = _cfg_parts(model, spec, emb.device)
    c = cfg["cfg_dropout"]
    out, text_drop, _ = cfg_dropout(emb, tpos, unc, ipos, mask_e, c["p_text"], c["p_image"], generator=g)
    if not cfg["model"]["mask_padding"]:
        return out, None
    slot = torch.zeros(ids.shape[1], dtype=ids.dtype, device=ids.device)
    slot[tpos] = uncond_text_ids(spec).to(ids.device)
    seen = torch.where(text_drop[:, None] & tpos[None], slot[None], ids)
    return out, key_padding_mask(seen, spec)


def _tgt_shift(spec: LayoutSpec) -> int:
    """Offset from a source code position to the same cell's target position (fixed layout)."""
    src, tgt = positions(spec, SEG_SRC).nonzero(), positions(spec, SEG_TGT).nonzero()
    return int(tgt[0] - src[0])


def batch_rows(cfg: dict, kinds: pd.Series | None, n: int):
    """Row indices of one training batch, ``rows(step, bs, g)``: uniform over the ``n`` training
    edits; with ``image.curriculum`` (ours, off at ``steps: 0``) the first ``steps`` batches are
    drawn from the edits of ``curriculum.kinds`` only (e.g. the location edits, add and move)."""
    cur = (cfg.get("curriculum") or {}) if kinds is not None else {}
    n_first = int(cur.get("steps", 0))
    first = torch.as_tensor(np.flatnonzero(kinds.isin(cur["kinds"]).to_numpy())) if n_first else None
    if first is not None and len(first) == 0:
        raise ValueError(f"image.curriculum.kinds {cur['kinds']} match no training edit "
                         f"(kinds present: {sorted(kinds.unique())})")

    def rows(step: int, bs: int, g: torch.Generator) -> torch.Tensor:
        if first is not None and step < n_first:
            return first[torch.randint(0, len(first), (bs,), generator=g, device=g.device).cpu()]
        return torch.randint(0, n, (bs,), generator=g, device=g.device).cpu()

    return rows


def sft_loss_fn(cfg: dict, spec: LayoutSpec, data: dict, mode: str = "sft", kinds: pd.Series | None = None):
    """Vanilla MDM on the edit data (``sft``), or the base pre-training mixture (``base``);
    ``kinds``: the training edits' kinds, for ``image.curriculum``."""
    objective = cfg["sft"]["objective"]
    bs = int((cfg["base"]["train"] if mode == "base" else cfg["train"])["batch_size"])
    ids_all, edit_row, src_all = data["ids"], data["editable"], data["src"]
    src_row = positions(spec, SEG_SRC)
    text_row = positions(spec, SEG_TEXT)
    # codes seen in the data: the alphabet of the random-mosaic reconstruction rows (base only)
    alphabet = (torch.unique(torch.cat([ids_all[:, edit_row].reshape(-1), src_all[:, edit_row].reshape(-1)]))
                if mode == "base" else None)
    unc_seq = torch.zeros(len(text_row), dtype=torch.long)
    unc_seq[text_row] = uncond_text_ids(spec)  # the unconditional prompt's slot, at its positions
    rows = batch_rows(cfg, kinds if mode == "sft" else None, len(ids_all))

    def loss_fn(model, step, g):
        dev = g.device
        idx = rows(step, bs, g)
        target = ids_all[idx].to(dev)
        maskable = edit_row.to(dev).expand(bs, -1)
        parts = {}
        if mode == "base":
            b = cfg["base"]
            identity = torch.rand(bs, generator=g, device=dev) < b["p_identity"]
            joint = torch.rand(bs, generator=g, device=dev) < b["p_joint"]
            src = src_all[idx].to(dev)
            warm = step < int(b["noise_steps"])  # warm-up: plain reconstruction of random mosaics
            noise = torch.rand(bs, generator=g, device=dev) < (1.0 if warm else float(b["p_noise"]))
            joint = joint & (not warm)
            identity = identity | noise
            mosaic = alphabet.to(dev)[torch.randint(0, len(alphabet), target.shape, generator=g, device=dev)]
            src_rows, ed = src_row.to(dev)[None], edit_row.to(dev)[None]
            # a random mosaic in the source grid (and, being an identity pair, in the target grid)
            target = torch.where(noise[:, None] & src_rows, mosaic, target)
            src = torch.where(noise[:, None] & ed, mosaic.roll(shifts=_tgt_shift(spec), dims=1), src)
            target = torch.where(identity[:, None] & edit_row.to(dev)[None], src, target)
            target = torch.where(identity[:, None] & text_row.to(dev)[None], unc_seq.to(dev)[None], target)
            maskable = maskable | (joint[:, None] & src_row.to(dev)[None])
            parts = {"identity_frac": float(identity.float().mean()), "joint_frac": float(joint.float().mean()),
                     "noise_frac": float(noise.float().mean())}
        warm = mode == "base" and step < int(cfg["base"]["noise_steps"])
        x, masked, p = mdm_corrupt(target, maskable, spec.mask_id, g, form=objective)
        if warm:  # the whole target is masked: every slot carries the copy signal
            masked, p = maskable.clone(), torch.ones_like(p)
            x = torch.where(masked, torch.full_like(target, spec.mask_id), target)
        if warm:
            emb, attn = model.embed(x), pad_attention_mask(x, spec, cfg["model"])
        else:
            emb, attn = _dropout(model, spec, model.embed(x), x, cfg, g)
        loss = mdm_loss(model.logits(emb, attention_mask=attn), target, masked, p, maskable, form=objective)
        return loss, {"mdm": float(loss.detach()), "n_masked": float(masked.sum()), **parts}

    return loss_fn


def unlikelihood_loss(logits: torch.Tensor, sel: torch.Tensor, mask_id: int, eps: float) -> torch.Tensor:
    """Mean over ``sel`` of −log max(1 − p(MASK), eps) (Welleck et al.; the wrong token is MASK)."""
    p_mask = torch.softmax(logits.float(), dim=-1)[..., mask_id]
    nll = -torch.log((1 - p_mask).clamp(min=eps))
    return (nll * sel).sum() / sel.sum().clamp(min=1)


def ordering_loss(logits: torch.Tensor, z: torch.Tensor, target: torch.Tensor, editable: torch.Tensor,
                  mask_id: int) -> torch.Tensor:
    """Ours (off by default): wrong visible tokens should out-rank correct ones in the re-mask
    score s = log p(M) − log p(z); mean over rows with both kinds of mean softplus(s_keep − s_wrong)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    s = logp[..., mask_id] - logp.gather(-1, z.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    visible = editable & (z != mask_id)
    wrong, keep = visible & (z != target), visible & (z == target)
    pair = F.softplus(s[:, None, :] - s[:, :, None])  # [b, w, k] = softplus(s_k - s_w)
    pm = (wrong[:, :, None] & keep[:, None, :]).float()
    n = pm.sum((1, 2))
    rows = n > 0
    if not rows.any():
        return logits.sum() * 0
    return ((pair * pm).sum((1, 2))[rows] / n[rows]).mean()


def rm_loss_fn(cfg: dict, spec: LayoutSpec, data: dict, kinds: pd.Series | None = None):
    """Appendix C with the source proposal, Eq. 4, CFG dropout, unlikelihood (+ ordering);
    ``kinds``: the training edits' kinds, for ``image.curriculum``."""
    rm = rm_settings(cfg)
    T, history = rm.T, rm.history
    bs = int(cfg["train"]["batch_size"])
    ids_all, edit_row, src_all = data["ids"], data["editable"], data["src"]
    # the ordering loss builds (B, n, n) pairs over the editable positions only
    tgt_idx = edit_row.nonzero().squeeze(1)
    rows = batch_rows(cfg, kinds, len(ids_all))

    def loss_fn(model, step, g):
        dev = g.device
        idx = rows(step, bs, g)
        target, src = ids_all[idx].to(dev), src_all[idx].to(dev)
        editable = edit_row.to(dev).expand(bs, -1)
        inst = build_instances(target, editable, T, spec.mask_id, SourceProposal(src), g, rm.edit_set, rm.p_wrong,
                               p_wrong_reveal=rm.p_wrong_reveal, p_wrong_again=rm.p_wrong_again)
        a = rm_model_input(model, inst, editable, history, T)
        inputs, attn = _dropout(model, spec, a, inst.z, cfg, g)
        logits = model.logits(inputs, attention_mask=attn)
        w = position_weights(inst.edit_set, editable, rm.other_weight)
        out = rm_loss(logits, inst.z, target, editable, spec.mask_id, weights=w, eps=rm.eps)
        total, parts = out.total, out.as_floats()
        if rm.unlikelihood_weight:
            ul = unlikelihood_loss(logits, editable & (src == target), spec.mask_id, rm.eps)
            total = total + rm.unlikelihood_weight * ul
            parts["unlikelihood"] = float(ul.detach())
        if rm.ordering_weight:
            ti = tgt_idx.to(dev)
            od = ordering_loss(logits[:, ti], inst.z[:, ti], target[:, ti], editable[:, ti], spec.mask_id)
            total = total + rm.ordering_weight * od
            parts["ordering"] = float(od.detach())
        parts["rm"] = parts.pop("total")
        return total, parts

    return loss_fn


def _train_cfg(section: dict, seed: int) -> TrainConfig:
    return TrainConfig.from_dict({**section, "seed": seed})


def train_base(cfg: dict, seed: int, tokens: str, run: str, stop_after: int | None = None) -> None:
    """Mini: pre-train the small MDM on the base pool (see the module docstring). Paper: the
    published checkpoint is the base; record its path."""
    tokens_dir, out_dir = Path(tokens).parent, Path(run).parent  # the tokens stage's edits.parquet; run.json
    out = Path(out_dir)
    if not is_mini(cfg):
        ckpt = Path(cfg["model"]["checkpoint"])
        require_checkpoint(ckpt)
        write_json({"model": "base", "seed": seed, "path": str(ckpt.resolve()), "trained": False}, out / "run.json")
        return
    spec, _ = load_layout(tokens_dir)
    pool = read_parquet(Path(tokens_dir) / "base.parquet")
    data = sequences(pool, spec)
    torch.manual_seed(seed)
    model = build_small(cfg, spec)
    log.info("base: %d parameters, pool of %d pairs, sequence length %d", model.num_parameters(), len(pool),
             spec.seq_len)
    tcfg = _train_cfg(cfg["base"]["train"], seed)
    fp = {"stage": "base", "base": cfg["base"], "model": cfg["model"], "sft": cfg["sft"],
          "cfg_dropout": cfg["cfg_dropout"], "n": len(pool), "data": files_digest([Path(tokens_dir) / "base.parquet"])}
    df = train(model, sft_loss_fn(cfg, spec, data, mode="base"), tcfg, out, stop_after=stop_after, fingerprint=fp)
    if stop_after is None:
        write_json({"model": "base", "seed": seed, "path": str(out.resolve()), "trained": True, "steps": tcfg.steps,
                    "batch_size": tcfg.batch_size, "wall_s": float(df["elapsed_s"].iloc[-1]) if len(df) else 0.0},
                   out / "run.json")


def train_model(cfg: dict, which: str, seed: int, tokens: str, base: str, run: str, stop_after: int | None = None) -> None:
    """SFT or RM from the base, on the same edit training set with the same budget
    (``train``: steps x batch_size, lr schedule — one section for both)."""
    tokens_dir, base_dir, out_dir = Path(tokens).parent, Path(base).parent, Path(run).parent  # files of the rule
    if which not in ("sft", "rm"):
        raise ValueError(f"which must be sft or rm, got {which!r}")
    spec, _ = load_layout(tokens_dir, cfg)
    toks = read_parquet(tokens)
    tr = toks[toks.split == "train"].reset_index(drop=True)
    data = sequences(tr, spec)
    model = load_model(cfg, base_path(base_dir))
    if not is_mini(cfg) and cfg["model"].get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
    tcfg = _train_cfg(cfg["train"], seed)
    kinds = tr["kind"]
    loss_fn = sft_loss_fn(cfg, spec, data, kinds=kinds) if which == "sft" else rm_loss_fn(cfg, spec, data, kinds)
    fp = {"stage": which, "train": cfg["train"], "cfg_dropout": cfg["cfg_dropout"], "n": len(tr),
          **({"curriculum": cfg["curriculum"]} if cfg.get("curriculum", {}).get("steps") else {}),
          "data": files_digest([tokens]),
          "base": base_path(base_dir), **({"sft": cfg["sft"]} if which == "sft" else {"rm": cfg["rm"]})}
    log.info("%s: %d training edits, %d steps x batch %d", which, len(tr), tcfg.steps, tcfg.batch_size)
    df = train(model, loss_fn, tcfg, out_dir, stop_after=stop_after, fingerprint=fp)
    if stop_after is None:
        write_json({"model": which, "seed": seed, "path": str(Path(out_dir).resolve()), "trained": True,
                    "steps": tcfg.steps,
                    "batch_size": tcfg.batch_size, "examples_seen": tcfg.steps * tcfg.batch_size,
                    "wall_s": float(df["elapsed_s"].iloc[-1]) if len(df) else 0.0}, Path(out_dir) / "run.json")
