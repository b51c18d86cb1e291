"""The image track, report: Table 1 beside the paper's numbers, the validation table, and the
figure grid of edits with RM's intermediate turns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ... import figures
from ...io import read_parquet
from ...tasks.image.vq import Codec
from .data import load_layout, load_pixels
from .model import MODEL_NAMES, MODELS, is_mini



def table1_rows(cfg: dict, frames: dict) -> tuple[pd.DataFrame, dict]:
    """Table 1's columns per model (``frames``: model -> per-edit metrics) and the extra figures
    of the notes (undefined precision, turns, final reveals, code changes)."""
    from ...metrics.image_edit import aggregate

    instr_col = "instr_ok" if cfg["eval"]["instruction_score"] == "checker" else "vqascore"
    rows, extra = {}, {}
    for m in MODELS:
        if m not in frames:
            continue
        df = frames[m]
        a = aggregate(df, cfg["eval"]["psnr_cap"])
        instr = float(np.nanmean(df[instr_col])) * 100 if df[instr_col].notna().any() else float("nan")
        psnr = a["psnr_pooled"] if cfg["eval"]["psnr"] == "pooled" else a["psnr"]
        rows[m] = {"Prec.": a["precision"], "Coverage": a["coverage"], "MAE-RGB": a["mae_rgb"], "PSNR (dB)": psnr,
                   "SSIM": a["ssim"], "Instr. score": instr}
        extra[m] = a | {"turns": float(df["turns"].mean()), "final_revealed": float(df["n_final_revealed"].mean()),
                        "code_changes": float(df["n_code_changes"].mean())}
    return pd.DataFrame.from_dict(rows, orient="index"), extra


def report(cfg: dict, scale: str, metrics: list[str], outputs: list[str], edits: str, tokens: str, vq: str,
           table: str, figure: str) -> pd.DataFrame:
    """Table 1 (ours beside the paper's) and the figure grid of edits and RM's turns."""
    data_dir, tokens_dir, vq_dir = (Path(p).parent for p in (edits, tokens, vq))  # the rule's files
    from ...tables import PAPER_TABLE1, side_by_side, write_table

    # ``table`` / ``figure``: the .md and .png paths; every format is written beside them
    table_stem, fig_stem = Path(table).with_suffix(""), Path(figure).with_suffix("")
    frames = {df["model"].iloc[0]: df for df in map(read_parquet, metrics)}
    instr_col = "instr_ok" if cfg["eval"]["instruction_score"] == "checker" else "vqascore"
    ours, extra = table1_rows(cfg, frames)
    t1 = side_by_side(ours, PAPER_TABLE1)
    t1.index = [MODEL_NAMES[m] for m in ours.index]
    n = len(next(iter(frames.values())))
    ev, tr = cfg["eval"], cfg["train"]
    instr_note = ("Instr. score (ours) = % of edits whose decoded image reads back as exactly the expected scene "
                  "(automatic checker)" if instr_col == "instr_ok" else
                  "Instr. score (ours) = mean VQAScore x 100 of the edited image against the instruction")
    lines = [
        f"Ours: {n} held-out edits; {instr_note}; paper column = VQAScore x 100.",
        f"Base/SFT: MaskGIT cosine sampler, {ev['maskgit_steps']} steps, from a fully masked target; RM: Eq. 1 for "
        f"{cfg['rm']['eval']['turns']} turns from the source tokens (HR {cfg['rm']['history']}); CFG text {ev['text_scale']}, "
        f"image {ev['image_scale']}. SFT and RM: {tr['steps']} steps x batch {tr['batch_size']} each from the base. "
        f"Base/SFT sampling temperature {float(ev['temperature'])} (0 = greedy; Lumina-DiMOO's default 1.0).",
        ("PSNR (ours) = 10 log10(255^2 / MSE) of the MSE pooled over all examples' non-target pixels (an unchanged "
         "image has infinite PSNR; the capped per-example mean would be " +
         ", ".join(f"{MODEL_NAMES[m]} {extra[m]['psnr']:.2f}" for m in extra) + ")."
         if ev["psnr"] == "pooled" else
         f"PSNR (ours) = mean over examples of the per-image PSNR (capped at {ev['psnr_cap']} dB when identical)."),
        f"Changed pixel: max_c |edit - input| > {ev['threshold']}; Precision undefined (nothing changed): "
        + ", ".join(f"{MODEL_NAMES[m]} {extra[m]['n_precision_undefined']}" for m in extra) + ".",
        "Mean RM turns until the target stopped changing: "
        + (f"{extra['rm']['turns']:.2f}; mean MASKs revealed by the final reveal step: "
           f"{extra['rm']['final_revealed']:.2f}." if "rm" in extra else "n/a."),
        "Mean target codes differing from the source codes: "
        + ", ".join(f"{MODEL_NAMES[m]} {extra[m]['code_changes']:.1f}" for m in extra) + ".",
    ]
    if is_mini(cfg):
        d = cfg["data"]
        sc, sm = d["scenes"], cfg["model"]["small"]
        lines.append(f"Mini scale: {sc['size']}x{sc['size']} px procedural scenes, {d['n_train']} "
                     f"training edits, a {sm['n_layers']}-layer d={sm['d_model']} MDM pre-trained "
                     f"{cfg['base']['train']['steps']} steps on a disjoint pool of {sc['n_base']} pairs (the base). "
                     "Paper: Lumina-DiMOO on 85,000 ImgEdit edits, 1,700 held out.")
    write_table(t1, table_stem, "Table 1: instruction-based image editing.", scale, "\n\n".join(lines), digits=3,
                index_name="Method")
    _figure(cfg, frames, outputs, data_dir, tokens_dir, vq_dir, fig_stem, scale)
    return t1


def validation_table(cfg: dict, scale: str, metrics: list[str], table: str) -> pd.DataFrame:
    """Table 1's columns on the VALIDATION edits, plus the share of edits left unchanged and the
    instruction score per edit kind: the numbers every choice of image settings is made on (the
    test edits feed only Table 1). Writes ``table`` and its .csv/.tex siblings."""
    from ...tables import write_table

    frames = {df["model"].iloc[0]: df for df in map(read_parquet, metrics)}
    ours, _ = table1_rows(cfg, frames)
    instr_col = "instr_ok" if cfg["eval"]["instruction_score"] == "checker" else "vqascore"
    for m in ours.index:
        df = frames[m]
        ours.loc[m, "Unchanged %"] = 100.0 * float((df["n_code_changes"] == 0).mean())
        for kind, g in df.groupby("kind", sort=True):
            ours.loc[m, f"Instr. {kind}"] = 100.0 * float(np.nanmean(g[instr_col])) if g[instr_col].notna().any() \
                else float("nan")
    ours.index = [MODEL_NAMES[m] for m in ours.index]
    n = len(next(iter(frames.values())))
    write_table(ours, Path(table).with_suffix(""), "Image editing on the validation split", scale,
                notes=f"{n} validation edits, split by source like the test edits and never used for Table 1; "
                      "settings are chosen on these numbers. There are no paper numbers for this split.",
                digits=3, index_name="Method", paper=False)
    return ours


def _figure(cfg, frames, outputs, data_dir, tokens_dir, vq_dir, stem, scale) -> None:
    spec, _ = load_layout(tokens_dir)
    outs = {df["model"].iloc[0]: df.set_index("id") for df in map(read_parquet, outputs)}
    rm = frames.get("rm")
    # one example per kind, preferring edits RM got right after re-masking something
    pick = []
    if rm is not None:
        score = rm.assign(good=rm["instr_ok"].fillna(0) + (rm["n_code_changes"] > 0) + rm["coverage"].fillna(0) / 100)
        for _, g in score.sort_values("good", ascending=False).groupby("kind", sort=False):
            pick.append(g["id"].iloc[0])
    else:
        pick = list(next(iter(frames.values()))["id"])
    pick = pick[: int(cfg["eval"]["n_figure"])]
    codec = Codec(vq_dir)
    data = read_parquet(Path(data_dir) / "edits.parquet").set_index("id", drop=False)
    src, tgt, _ = load_pixels(cfg, data_dir, data.loc[pick])
    gh, gw = spec.grid_h, spec.grid_w
    cols = [("Source", src), ("Target", tgt)]
    for m in MODELS:
        if m in outs:
            codes = np.stack([np.asarray(outs[m].loc[i, "codes"]) for i in pick]).reshape(-1, gh, gw)
            cols.append((MODEL_NAMES[m].replace(", no tuning (Lumina)", ""), codec.decode(codes)))
    if "rm" in outs:
        T = int(cfg["rm"]["eval"]["turns"])
        traj = np.stack([np.asarray(outs["rm"].loc[i, "trajectory"]) for i in pick]).reshape(len(pick), T + 1, gh, gw)
        for t in range(1, T + 1):
            c = traj[:, t]
            cols.append((f"RM turn {t}", figures.paint_masks(codec.decode(np.where(c < 0, 0, c)), c, codec.downsample)))
    figures.image_grid(cols, data.loc[pick, "instruction"].tolist(), stem,
                       f"Image editing ({scale} scale): base / SFT / RM and RM's turns (blue patches: MASK)")
