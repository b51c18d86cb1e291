"""Paper-scale Table 2 (config/paper.yaml, 9x9): train variants x seeds in one process, curve on
validation boards, final metrics on the 500 test boards -> docs/results/table2_paper.{md,csv}.

All models of the run are trained together by the grouped trainer (rm_core.grouped, tested equal
to separate runs), with the config's schedule; ``--stop-after`` truncates it (the table then says
how many steps ran). Every ``--every`` steps each model runs Eq. 1 for T turns on the validation
boards (steps-to-accuracy curve: docs/results/table2_paper_curve.csv). At the end each model is
evaluated on the test boards; a model with at least ``--save-min-exact`` % exact is copied to
docs/results/sudoku9/<variant>_s<seed>/ (model.safetensors + config.json + run.json).

    python bench/table2_paper.py --config config/paper.yaml --variants rm_no_hr rm_hr_decay_her \
        --seeds 0 --stop-after 1000 --every 200

Runs made in separate processes (one variant per core, each with its own ``--work`` and ``--out``)
are joined into one table, curve and Markdown with ``--merge PREFIX ... --out OUT``. Both write the
curve's figure, <out>_curve.png and .pdf.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rm_core.config import load_config
from rm_core.figures import learning_curve
from rm_core.method import merge
from rm_core.grouped import train_grouped
from rm_core.io import read_parquet, write_json, write_text
from rm_core.pipeline.sudoku import data as sudoku_data
from rm_core.pipeline.sudoku import evaluate as sudoku_eval
from rm_core.pipeline.sudoku import train as sudoku_train
from rm_core.pipeline.sudoku.report import seed_summary
from rm_core.tables import PAPER_TABLE2, VARIANT_NAMES
from rm_core.tasks.sudoku import frame_to_boards, to_tokens
from rm_core.train import TrainConfig

METRICS = {"exact": "exact_acc", "valid": "valid_rate", "replay": "replay_mistake", "conflicts": "conflict_cells_per_board"}
PAPER_COLS = {"exact": "Exact Acc (%)", "valid": "Valid Rate (%)", "replay": "Replay Mistake (%)",
              "conflicts": "Conflict Cells / board"}


def table_md(final: pd.DataFrame, cfg: dict, out: Path) -> str:
    """Markdown of the test rows (one per variant x seed run), the paper's numbers beside ours."""
    steps, sched = int(final["steps"].min()), int(final["schedule_steps"].max())
    ended = bool((final["steps"] >= final["schedule_steps"]).all())
    lines = [f"# Table 2 at paper scale (9x9, {' / '.join(final['config'].unique())}) — "
             + (f"every run to the end of its {sched}-step schedule" if ended else f"{steps} of {sched} scheduled steps"), "",
             f"Test: {cfg['n_test'] * cfg.get('test_corruptions', 1)} boards with {cfg['test_wrong'][0]}-{cfg['test_wrong'][1]} "
             f"wrong digits, T = {cfg['rm']['eval']['turns']} turns, batch {cfg['train']['batch_size']}. Paper numbers beside ours; "
             + ("every schedule ran to its end." if ended else
                "ours are from runs truncated before the end of their schedule, NOT the converged numbers."), "",
             "| Variant | seed | steps | Exact (ours) | Exact (paper) | Valid (ours) | Valid (paper) | Replay % (ours) | "
             "Replay % (paper) | Conflicts (ours) | Conflicts (paper) | wall s | hardware |", "|" + "---|" * 13]
    for _, r in final.iterrows():
        lines.append(f"| {VARIANT_NAMES.get(r['variant'], r['variant'])} | {r['seed']} | {r['steps']} | {r['exact']:.1f} | "
                     f"{r['paper_exact']} | {r['valid']:.1f} | {r['paper_valid']} | {r['replay']:.2f} | {r['paper_replay']} | "
                     f"{r['conflicts']:.3f} | {r['paper_conflicts']} | {r['wall_s']} | {r['hardware']} |")
    if final.groupby("variant")["seed"].nunique().max() > 1:
        per_seed = final.rename(columns=PAPER_COLS)[["variant", "seed", *PAPER_COLS.values()]]
        lines += ["", "Mean over seeds, ± the half-width of its 95 % t-interval (a variant with one seed has none):", "",
                  "| Variant | seeds | Exact (ours) | Exact (paper) | Valid (ours) | Replay % (ours) | Conflicts (ours) | exact per seed |",
                  "|" + "---|" * 8]
        pm = lambda r, c, d: f"{r[c]:.{d}f}" + ("" if np.isnan(r[f"{c} ± 95%"]) else f" ± {r[f'{c} ± 95%']:.{d}f}")  # noqa: E731
        for v, r in seed_summary(per_seed).iterrows():
            lines.append(f"| {VARIANT_NAMES.get(v, v)} | {(final['variant'] == v).sum()} | {pm(r, PAPER_COLS['exact'], 1)} | "
                         f"{PAPER_TABLE2.loc[v, PAPER_COLS['exact']]} | {pm(r, PAPER_COLS['valid'], 1)} | "
                         f"{pm(r, PAPER_COLS['replay'], 2)} | {pm(r, PAPER_COLS['conflicts'], 3)} | {r['Exact per seed']} |")
    lines += ["", "Commands (one per run; `--work` and `--out` only move the scratch and output files):", ""]
    lines += [f"- `{c}`" for c in final["command"].unique()]
    lines += ["", f"Validation curve (steps-to-accuracy): `{out.name}_curve.csv`, drawn in `{out.name}_curve.png`/`.pdf`.", ""]
    return "\n".join(lines)


def plot_curve(curve: pd.DataFrame, final: pd.DataFrame, out: Path) -> None:
    """<out>_curve.png/.pdf: validation exact by step for every run, the paper's exact beside it."""
    paper = dict(zip(final["variant"], final["paper_exact"]))
    learning_curve(curve, f"{out}_curve", f"Table 2, 9x9: validation exact by step\n{', '.join(final['config'].unique())}",
                   names=VARIANT_NAMES, paper=paper)


def merge_runs(parts: list[str], out: Path, cfg: dict) -> pd.DataFrame:
    """One table from runs made in separate processes (e.g. one variant per core): rows and curves
    concatenated in the config's variant order, the Markdown rebuilt."""
    final = pd.concat([pd.read_csv(f"{p}.csv") for p in parts], ignore_index=True)
    missing = {"variant", "seed", "steps", "schedule_steps", "hardware", "config", "command"} - set(final.columns)
    if missing:
        raise SystemExit(f"--merge: {sorted(missing)} missing from the CSVs of {parts}")
    curve = pd.concat([pd.read_csv(f"{p}_curve.csv") for p in parts], ignore_index=True)
    dup = final[final.duplicated(["variant", "seed"], keep=False)]
    if len(dup):
        raise SystemExit(f"--merge: {sorted(set(zip(dup['variant'], dup['seed'])))} appear in more than one of {parts}")
    order = {v: i for i, v in enumerate(cfg["variants"])}
    in_config_order = lambda c: c.map(order) if c.name == "variant" else c  # noqa: E731
    final = final.sort_values(["variant", "seed"], key=in_config_order, ignore_index=True)
    curve = curve.sort_values(["variant", "seed", "steps"], key=in_config_order, ignore_index=True)
    write_text(final.to_csv(index=False), f"{out}.csv")
    write_text(curve.to_csv(index=False), f"{out}_curve.csv")
    write_text(table_md(final, cfg, out), f"{out}.md")
    plot_curve(curve, final, out)
    return final


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config/paper.yaml")
    ap.add_argument("--overlay", nargs="*", default=[],
                    help="YAML files merged over --config in order (e.g. config/sudoku_cpu.yaml, a CPU schedule)")
    ap.add_argument("--variants", nargs="+", default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=None)
    ap.add_argument("--stop-after", type=int, default=None, help="steps to run of the config's schedule")
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="results/bench/table2_paper")
    ap.add_argument("--out", default="docs/results/table2_paper")
    ap.add_argument("--save-min-exact", type=float, default=50.0)
    ap.add_argument("--save-suffix", default="", help="checkpoint folders <variant>_s<seed><suffix> (keeps another schedule's)")
    ap.add_argument("--max-wall-s", type=float, default=None,
                    help="stop at the first validation point after this many seconds (a CPU session's budget)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="PREFIX",
                    help="train nothing: merge the <PREFIX>.csv and <PREFIX>_curve.csv of earlier runs into --out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, *args.overlay)["sudoku"]
    if args.merge:
        print(merge_runs(args.merge, Path(args.out), cfg).to_string(index=False))
        return
    variants, seeds = args.variants or list(cfg["variants"]), args.seeds or list(cfg["seeds"])
    work, out = Path(args.work), Path(args.out)
    tr, te, va = work / "data/train.parquet", work / "data/test.parquet", work / "data/val.parquet"
    if not va.exists():
        sudoku_data.make_data(cfg, 0, tr, te, va)
    spec = sudoku_data.spec_of(cfg)
    solution, _, _ = frame_to_boards(read_parquet(tr, ["solution", "initial", "board_id"]))
    solutions = torch.as_tensor(to_tokens(solution, spec))
    runs = [(v, s) for v in variants for s in seeds]
    models, parts, cfgs = [], [], []
    for v, s in runs:
        torch.manual_seed(s)  # the init of train_variant for this seed
        models.append(sudoku_train.build_model(cfg, spec))
        parts.append(sudoku_train.rm_sudoku_parts(cfg, sudoku_train.variant_history(cfg, v), solutions, spec))
        cfgs.append(TrainConfig.from_dict({**cfg["train"], "seed": s}))
    hardware = f"{platform.processor() or platform.machine()} CPU, {args.threads} torch thread(s)"
    if torch.cuda.is_available():
        hardware = torch.cuda.get_device_name()
    curve, t0 = [], time.time()
    eval_cfg = merge(cfg, {"rm": {"eval": {"scaling_turns": cfg["rm"]["eval"]["turns"]}}})

    def evaluate(step, mods, boards, tag):
        rows = []
        for (v, s), m in zip(runs, mods):
            d = work / "models" / f"{v}_s{s}"
            m.save_pretrained(d)
            write_json({"variant": v, "history": sudoku_train.variant_history(cfg, v).__dict__, "T": cfg["rm"]["T"], "seed": s, "steps": step}, d / "run.json")
            r = sudoku_eval.evaluate(eval_cfg, v, Path(d) / "model.safetensors", boards, work / "m.parquet", work / "t.parquet", work / "s.parquet")
            rows.append({"variant": v, "seed": s, "steps": step, "split": tag, "wall_s": round(time.time() - t0, 1),
                         **{k: r[m_] for k, m_ in METRICS.items()}})
            print(rows[-1], flush=True)
        return rows

    class Stop(Exception):
        pass

    def on_step(step, mods):
        curve.extend(evaluate(step, mods, va, "val"))
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(pd.DataFrame(curve).to_csv(index=False), f"{out}_curve.csv")
        if args.max_wall_s and time.time() - t0 > args.max_wall_s:
            raise Stop(step)

    try:
        logs = train_grouped(models, parts, cfgs, stop_after=args.stop_after, callback=on_step, callback_every=args.every)
        steps = int(logs[0]["step"].iloc[-1])
        on_step(steps, models) if not curve or curve[-1]["steps"] != steps else None
    except Stop as stop:  # the models hold the weights of that step (written back before the callback)
        steps = int(stop.args[0])
    final = pd.DataFrame(evaluate(steps, models, te, "test"))
    final["paper_exact"] = [PAPER_TABLE2.loc[v, PAPER_COLS["exact"]] for v in final["variant"]]
    for k in ("valid", "replay", "conflicts"):
        final[f"paper_{k}"] = [PAPER_TABLE2.loc[v, PAPER_COLS[k]] for v in final["variant"]]
    final["schedule_steps"] = cfg["train"]["steps"]
    final["hardware"] = hardware
    final["config"] = " + ".join([args.config, *args.overlay])
    final["command"] = "python bench/table2_paper.py " + " ".join(sys.argv[1:])
    final = final.drop(columns="split")
    write_text(final.to_csv(index=False), f"{out}.csv")
    write_text(table_md(final, cfg, out), f"{out}.md")
    plot_curve(pd.DataFrame(curve), final, out)
    for (v, s), (_, r) in zip(runs, final.iterrows()):
        if r["exact"] >= args.save_min_exact:
            dst = out.parent / "sudoku9" / f"{v}_s{s}{args.save_suffix}"
            dst.mkdir(parents=True, exist_ok=True)
            for f in ("model.safetensors", "config.json", "run.json"):
                shutil.copy(work / "models" / f"{v}_s{s}" / f, dst / f)
    print(final.to_string(index=False))


if __name__ == "__main__":
    main()
