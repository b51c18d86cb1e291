"""The image track, evaluation: base and SFT decode with Lumina-DiMOO's MaskGIT sampler, RM with
Eq. 1 from the source image's tokens; the edits are decoded and scored (Table 1's metrics)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...guidance import CFGDenoiser
from ...io import read_parquet, write_parquet
from ...rule import rm_sample
from ...samplers import low_confidence_sample
from ...tasks.image.layout import (SEG_SRC, SEG_TEXT, LayoutSpec, extract_target, non_code_ids, positions,
                                   uncond_text_ids)
from ...tasks.image.vq import Codec
from .data import load_layout, load_pixels, scene_spec_of, sequences
from .model import MODELS, base_path, default_device, load_model, pad_attention_mask, rm_settings

log = logging.getLogger(__name__)


METRICS_SCHEMA = """id: str, test example; kind: str; instruction: str; model: str (base / sft / rm); seed: int64, training seed
precision, coverage (%), mae_rgb, mse, psnr (dB), ssim; n_changed, n_region, n_outside: int (edit_metrics)
instr_ok: float, 1/0 from the mini instruction checker (NaN at paper scale)
vqascore: float in [0, 1] (paper scale; NaN when not computed)
turns: int64, RM: the last turn that changed the target (0 = none); MaskGIT: its step count
n_final_revealed: int64, RM: MASKs left after the last turn, revealed by the final reveal step
n_code_changes: int64, target codes that differ from the source codes"""


OUTPUTS_SCHEMA = """id: str; model: str; seed: int64, training seed
codes: list<int64>, final target codes, row-major
trajectory: list<int64>, RM only: (turns+1) states of the target grid, state s at [s*n:(s+1)*n], -1 = MASK"""


def cfg_denoiser(model, spec: LayoutSpec, ev: dict) -> CFGDenoiser:
    unc = uncond_text_ids(spec)
    return CFGDenoiser.for_positions(model, positions(spec, SEG_TEXT), unc, positions(spec, SEG_SRC),
                                     ev["text_scale"], ev["image_scale"], uncond_text_visible=unc != spec.pad_id)


def maskgit_kwargs(ev: dict) -> dict:
    """The base/SFT sampler's settings, as Lumina-DiMOO's i2i generator: its MaskGIT cosine plan,
    the confidence as the softmax over the image codes only, and ``eval.temperature`` (Gumbel
    sampling + noisy re-masking; 0 = greedy)."""
    return dict(schedule="cosine", confidence="allowed", temperature=float(ev["temperature"]))


@torch.no_grad()
def sample_edits(cfg: dict, which: str, model, spec: LayoutSpec, df: pd.DataFrame) -> dict:
    """Edit the test examples of ``df``: codes (B, n), trajectories (RM), turns, final reveals."""
    ev, dev = cfg["eval"], next(model.parameters()).device
    den = cfg_denoiser(model, spec, ev)
    forbid = non_code_ids(spec)
    n = spec.grid_h * spec.grid_w
    gen = torch.Generator().manual_seed(int(ev["seed"]))  # temperature > 0 only
    codes, trajs, turns, revealed = [], [], [], []
    for s in range(0, len(df), int(ev["batch_size"])):
        part = df.iloc[s:s + int(ev["batch_size"])]
        seqs = sequences(part, spec, with_target=False)
        editable = seqs["editable"].to(dev).expand(len(part), -1)
        attn = pad_attention_mask(seqs["src"].to(dev), spec, cfg["model"])
        if which == "rm":
            x0 = seqs["src"].to(dev)  # the target region starts as the source image's tokens
            rm = rm_settings(cfg)
            rm.eval.check_track("image.rm.eval", ("source",), final_reveal=True)
            T, extra = rm.eval.turns, 1 if rm.eval.final_reveal else 0
            res = rm_sample(den, x0, editable, T + extra, history=rm.history, forbid_ids=forbid,
                            attention_mask=attn, return_trajectory=True)
            traj = res.trajectory  # (B, T+1(+1), N) on CPU
            final = traj[:, T]
            if extra:
                still = final == spec.mask_id
                final = torch.where(still, traj[:, T + 1], final)
                revealed.append((still & seqs["editable"][None]).sum(-1))
            else:
                revealed.append(torch.zeros(len(part), dtype=torch.long))
            tg = extract_target(traj[:, : T + 1], spec).reshape(len(part), T + 1, n)
            changed = (tg[:, 1:] != tg[:, :-1]).any(-1)
            steps = torch.arange(1, T + 1)[None].expand_as(changed)
            turns.append(torch.where(changed, steps, torch.zeros_like(steps)).max(-1).values)
            trajs += [t.reshape(-1).tolist() for t in tg]
        else:
            x0 = seqs["ids"].to(dev)
            final = low_confidence_sample(den, x0, editable, int(ev["maskgit_steps"]), forbid_ids=forbid,
                                          attention_mask=attn, generator=gen, **maskgit_kwargs(ev)).cpu()
            turns.append(torch.full((len(part),), int(ev["maskgit_steps"])))
            revealed.append(torch.zeros(len(part), dtype=torch.long))
        c = extract_target(final.cpu(), spec).reshape(len(part), n)
        src = torch.as_tensor(np.stack([np.asarray(x) for x in part["source_codes"]]))
        codes.append(torch.where(c < 0, src, c))  # MASK left (final_reveal off): the source code
        log.info("%s: %d/%d edited", which, min(s + len(part), len(df)), len(df))
    return {"codes": torch.cat(codes).numpy(), "trajectory": trajs or None, "turns": torch.cat(turns).numpy(),
            "n_final_revealed": torch.cat(revealed).numpy()}


def edit_rows(ev: dict, src: np.ndarray, edited: np.ndarray, region: np.ndarray) -> list[dict]:
    """Table 1's per-edit pixel metrics of the decoded edits against the input images
    (``metrics.image_edit.edit_metrics`` with ``eval.threshold`` and ``eval.psnr_cap``)."""
    from ...metrics.image_edit import edit_metrics

    return [edit_metrics(src[i], edited[i], region[i], threshold=ev["threshold"], psnr_cap=ev["psnr_cap"])
            for i in range(len(edited))]


def evaluate(cfg: dict, which: str, run: str, edits: str, tokens: str, vq: str, metrics: str, outputs: str,
             split: str = "test") -> dict:
    """Sample the edits of ``split`` (test: Table 1; val: every choice of settings) with ``which``'s
    sampler, decode them and score them."""
    model_dir, data_dir, tokens_dir, vq_dir = (Path(p).parent for p in (run, edits, tokens, vq))  # the rule's files
    from ...metrics.image_edit import aggregate, mini_instruction_check
    if which not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {which!r}")
    spec, _ = load_layout(tokens_dir, cfg)
    toks = read_parquet(tokens)
    if split not in ("test", "val"):
        raise ValueError(f"split must be test|val, got {split!r}")
    test = toks[toks.split == split].reset_index(drop=True)
    if cfg["eval"].get("n_test"):
        test = test.iloc[: int(cfg["eval"]["n_test"])]
    path = base_path(model_dir) if which == "base" else model_dir
    model = load_model(cfg, path).to(default_device()).eval()
    out = sample_edits(cfg, which, model, spec, test)
    del model
    codec = Codec(vq_dir)
    edited = codec.decode(out["codes"].reshape(len(test), spec.grid_h, spec.grid_w))
    data = read_parquet(edits).set_index("id", drop=False)
    rows = data.loc[test["id"]]
    src, _, region = load_pixels(cfg, data_dir, rows)
    ev = cfg["eval"]
    scene_spec = scene_spec_of(cfg) if cfg["data"]["kind"] == "scenes" else None
    recs = []
    for i, m in enumerate(edit_rows(ev, src, edited, region)):
        ok = float("nan")
        if scene_spec is not None:
            ok = float(mini_instruction_check(rows["scene_after"].iloc[i], edited[i], scene_spec))
        recs.append({"id": test["id"].iloc[i], "kind": test["kind"].iloc[i], "instruction": test["instruction"].iloc[i],
                     "model": which, **m, "instr_ok": ok, "vqascore": float("nan")})
    scores = pd.DataFrame(recs)
    if ev["instruction_score"] == "vqascore":
        scores["vqascore"] = _vqascore(cfg, edited, list(test["instruction"]))
    src_codes = np.stack([np.asarray(x) for x in test["source_codes"]])
    scores["turns"] = out["turns"].astype(np.int64)
    scores["n_final_revealed"] = out["n_final_revealed"].astype(np.int64)
    scores["n_code_changes"] = (out["codes"] != src_codes).sum(1).astype(np.int64)
    seed = int(json.loads(Path(run).read_text())["seed"])
    scores.insert(4, "seed", seed)
    write_parquet(scores, metrics, METRICS_SCHEMA)
    write_parquet(pd.DataFrame({"id": test["id"], "model": which, "seed": seed,
                                "codes": [c.tolist() for c in out["codes"]],
                                "trajectory": out["trajectory"] or [[] for _ in range(len(test))]}),
                  outputs, OUTPUTS_SCHEMA)
    summary = aggregate(scores, ev["psnr_cap"])
    ok = scores["instr_ok"]
    summary["instr"] = float(np.nanmean(ok)) * 100 if ok.notna().any() else float("nan")
    log.info("%s: %s", which, summary)
    return summary


def _vqascore(cfg: dict, images: np.ndarray, texts: list[str]) -> np.ndarray:
    from ...metrics.image_edit import vqascore, vqascore_missing
    v = cfg["eval"]["vqascore"]
    missing = vqascore_missing(v["cache_dir"], v["model"])
    if missing:
        msg = "VQAScore weights/package not available locally; missing: " + "; ".join(missing)
        if v["required"]:
            raise RuntimeError(msg + " (set image.eval.vqascore.required: false to write NaN instead)")
        log.warning("%s -- the VQAScore column is NaN", msg)
        return np.full(len(texts), np.nan)
    return vqascore(list(images), texts, v["cache_dir"], v["model"], device=str(default_device()))
