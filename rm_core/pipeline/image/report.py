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



COLUMN_DIGITS = {"Prec.": 1, "Coverage": 1, "MAE-RGB": 3, "PSNR (dB)": 2, "SSIM": 3, "Instr. score": 1}


def instruction_column(cfg: dict) -> str:
    return "instr_ok" if cfg["eval"]["instruction_score"] == "checker" else "vqascore"


def table1_columns(cfg: dict, df: pd.DataFrame) -> dict:
    """Table 1's columns for one model's per-edit metrics."""
    from ...metrics.image_edit import aggregate

    a = aggregate(df, cfg["eval"]["psnr_cap"])
    col = instruction_column(cfg)
    instr = float(np.nanmean(df[col])) * 100 if df[col].notna().any() else float("nan")
    psnr = a["psnr_pooled"] if cfg["eval"]["psnr"] == "pooled" else a["psnr"]
    return {"Prec.": a["precision"], "Coverage": a["coverage"], "MAE-RGB": a["mae_rgb"], "PSNR (dB)": psnr,
            "SSIM": a["ssim"], "Instr. score": instr}


def by_family(frames: list[pd.DataFrame]) -> dict:
    """{family: [per-seed metrics, by seed]} in Table 1's row order, each seed's rows by edit id."""
    out: dict = {}
    for df in frames:
        out.setdefault(df["model"].iloc[0], []).append(df.sort_values("id").reset_index(drop=True))
    return {m: sorted(out[m], key=lambda f: int(f["seed"].iloc[0])) for m in MODELS if m in out}


def table1_rows(cfg: dict, families: dict, reps: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(mean over seeds, 95 % interval strings, extras of the notes) per model family. The interval
    is the bootstrap over seeds and edits (``rm_core.stats``)."""
    from ...metrics.image_edit import aggregate
    from ...stats import bootstrap_interval, seed_mean

    def stat(df):
        return table1_columns(cfg, df)

    means, intervals, extra = {}, {}, {}
    for m, fs in families.items():
        means[m] = seed_mean(fs, stat)
        iv = bootstrap_interval(fs, stat, reps=reps)
        intervals[m] = {c: f"[{lo:.{COLUMN_DIGITS[c]}f}, {hi:.{COLUMN_DIGITS[c]}f}]" for c, (lo, hi) in iv.items()}
        pooled = pd.concat(fs, ignore_index=True)
        extra[m] = aggregate(pooled, cfg["eval"]["psnr_cap"]) | {
            "turns": float(pooled["turns"].mean()), "final_revealed": float(pooled["n_final_revealed"].mean()),
            "code_changes": float(pooled["n_code_changes"].mean()), "unchanged": 100.0 * float((pooled["n_code_changes"] == 0).mean()),
            "seeds": [int(f["seed"].iloc[0]) for f in fs],
            "n_precision_undefined": float(np.mean([int(f["precision"].isna().sum()) for f in fs]))}
    return (pd.DataFrame.from_dict(means, orient="index"), pd.DataFrame.from_dict(intervals, orient="index"), extra)


def report(cfg: dict, scale: str, metrics: list[str], outputs: list[str], edits: str, tokens: str, vq: str,
           table: str, figure: str) -> pd.DataFrame:
    """Table 1 (ours, mean over seeds with a 95 % interval, beside the paper's) and the figure grid
    of edits and RM's turns (the first seed's models)."""
    data_dir, tokens_dir, vq_dir = (Path(p).parent for p in (edits, tokens, vq))  # the rule's files
    from ...tables import PAPER_TABLE1, write_table

    # ``table`` / ``figure``: the .md and .png paths; every format is written beside them
    table_stem, fig_stem = Path(table).with_suffix(""), Path(figure).with_suffix("")
    families = by_family([read_parquet(p) for p in metrics])
    instr_col = instruction_column(cfg)
    ours, intervals, extra = table1_rows(cfg, families)
    t1 = pd.DataFrame(index=ours.index)
    for col in ours.columns:
        t1[f"{col} (ours)"] = ours[col]
        t1[f"{col} 95% CI"] = intervals[col]
        t1[f"{col} (paper)"] = PAPER_TABLE1[col].reindex(ours.index)
    t1["Seeds"] = [", ".join(map(str, extra[m]["seeds"])) for m in ours.index]
    t1.index = [MODEL_NAMES[m] for m in ours.index]
    n = len(next(iter(families.values()))[0])
    ev, tr = cfg["eval"], cfg["train"]
    instr_note = ("Instr. score (ours) = % of edits whose decoded image reads back as exactly the expected scene "
                  "(automatic checker)" if instr_col == "instr_ok" else
                  "Instr. score (ours) = mean VQAScore x 100 of the edited image against the instruction")
    lines = [
        f"Ours: {n} held-out edits; {instr_note}; paper column = VQAScore x 100. (ours) = the mean over the "
        "training seeds of each column; 95% CI = percentile interval of a bootstrap over seeds and edits "
        "(1,000 replicates, rm_core/stats.py). The base is not fine-tuned here: one model, the interval is over edits.",
        f"Base/SFT: MaskGIT cosine sampler, {ev['maskgit_steps']} steps, from a fully masked target; RM: Eq. 1 for "
        f"{cfg['rm']['eval']['turns']} turns from the source tokens (HR {cfg['rm']['history']}); CFG text {ev['text_scale']}, "
        f"image {ev['image_scale']}. SFT and RM: {tr['steps']} steps x batch {tr['batch_size']} each from the base. "
        f"Base/SFT sampling temperature {float(ev['temperature'])} (0 = greedy; Lumina-DiMOO's default 1.0).",
        ("PSNR (ours) = 10 log10(255^2 / MSE) of the MSE pooled over all examples' non-target pixels (an unchanged "
         "image has infinite PSNR; the capped per-example mean would be " +
         ", ".join(f"{MODEL_NAMES[m]} {extra[m]['psnr']:.2f}" for m in extra) + ")."
         if ev["psnr"] == "pooled" else
         f"PSNR (ours) = mean over examples of the per-image PSNR (capped at {ev['psnr_cap']} dB when identical)."),
        f"Changed pixel: max_c |edit - input| > {ev['threshold']}; Precision undefined (nothing changed), edits per "
        "seed: " + ", ".join(f"{MODEL_NAMES[m]} {extra[m]['n_precision_undefined']:g}" for m in extra) + ".",
        "Edits left unchanged (no code differs from the source): "
        + ", ".join(f"{MODEL_NAMES[m]} {extra[m]['unchanged']:.1f}%" for m in extra) + ".",
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
    first = {m: fs[0] for m, fs in families.items()}
    seed_of = {m: int(f["seed"].iloc[0]) for m, f in first.items()}
    outs = [df for df in map(read_parquet, outputs) if df["model"].iloc[0] in first
            and int(df["seed"].iloc[0]) == seed_of[df["model"].iloc[0]]]
    _figure(cfg, first, outs, data_dir, tokens_dir, vq_dir, fig_stem, scale)
    return t1


def validation_table(cfg: dict, scale: str, metrics: list[str], table: str) -> pd.DataFrame:
    """Table 1's columns on the VALIDATION edits for every model and seed, and the mean over seeds
    of each family, plus the share of edits left unchanged and the instruction score per edit
    kind: the numbers every choice of image settings is made on (the test edits feed only
    Table 1). Writes ``table`` and its .csv/.tex siblings."""
    from ...tables import write_table

    families = by_family([read_parquet(p) for p in metrics])
    col = instruction_column(cfg)

    def row(df: pd.DataFrame) -> dict:
        out = table1_columns(cfg, df) | {"Unchanged %": 100.0 * float((df["n_code_changes"] == 0).mean())}
        for kind, g in df.groupby("kind", sort=True):
            out[f"Instr. {kind}"] = 100.0 * float(np.nanmean(g[col])) if g[col].notna().any() else float("nan")
        return out

    rows = {}
    for m, fs in families.items():
        for f in fs:
            rows[f"{MODEL_NAMES[m]} (seed {int(f['seed'].iloc[0])})"] = row(f)
        if len(fs) > 1:
            rows[f"{MODEL_NAMES[m]}, mean of {len(fs)} seeds"] = pd.DataFrame([row(f) for f in fs]).mean().to_dict()
    ours = pd.DataFrame.from_dict(rows, orient="index")
    n = len(next(iter(families.values()))[0])
    write_table(ours, Path(table).with_suffix(""), "Image editing on the validation split", scale,
                notes=f"{n} validation edits, split by source like the test edits and never used for Table 1; "
                      "settings are chosen on these numbers. There are no paper numbers for this split.",
                digits=3, index_name="Method", paper=False)
    return ours


def _figure(cfg, frames: dict, outputs: list, data_dir, tokens_dir, vq_dir, stem, scale) -> None:
    """The figure grid: one edit per kind (RM's best first), source, target, each model's edit and
    RM's turns. ``frames``: family -> metrics; ``outputs``: the output frames of the same models."""
    spec, _ = load_layout(tokens_dir)
    outs = {df["model"].iloc[0]: df.set_index("id") for df in outputs}
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
