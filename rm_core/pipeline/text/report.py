"""The text track, part 4: Table 3, Table 4 and the two figures.

Table 3: one row per benchmark (MATH500, MBPP, ARC-Challenge; at the mini scale their analogues
mini_math, mini_code, mini_mc), columns base (LLaDA) / vanilla SFT / RM, ours beside the paper's;
SFT and RM are the mean over seeds, with a 95 % bootstrap interval over seeds and problems
(``rm_core.stats``) and the per-seed values in extra columns.
Table 4: accuracy by subject, vanilla SFT vs RM, from the per-sample results: the paper scale has
the seven Minerva MATH subjects (+ the per-problem aggregate); the mini scale has the mini math
problem types (``tasks.text.mini.MATH_SUBJECTS``) and prints the paper's subjects in their own
rows, so no number of ours sits beside a paper number it does not correspond to.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ... import figures
from ...io import read_parquet, write_text

MODEL_LABELS = {"base": "LLaDA", "sft": "Vanilla SFT", "rm": "RM"}
METRIC = {"math_verify": "math", "pass_at_1": "code", "acc": "mc"}


def model_family(name: str) -> str:
    return name.split("_s")[0]


def model_seed(name: str):
    m = re.search(r"_s(\d+)$", name)
    return int(m.group(1)) if m else None


def load_summaries(paths: list[str]) -> dict:
    out = {}
    for p in paths:
        d = json.loads(Path(p).read_text())
        out[d["model"]] = d
    return out


def task_score(summary: dict, task: str) -> float:
    res = summary["results"].get(task, {})
    for k in ("math_verify", "pass_at_1", "acc"):
        if k in res:
            return 100.0 * float(res[k])
    return float("nan")


def accuracy_interval(samples: pd.DataFrame, names: list[str], reps: int = 1000) -> str:
    """95 % bootstrap interval over seeds and problems (``rm_core.stats``) of the accuracy (%) of
    the models ``names`` (one per seed) on the problems of ``samples``; "" without samples."""
    from ...stats import bootstrap_interval

    frames = [samples[samples["model"] == n].sort_values(["task", "doc_id"]).reset_index(drop=True) for n in names]
    if not frames or not all(len(f) for f in frames):
        return ""
    lo, hi = bootstrap_interval(frames, lambda f: {"acc": 100.0 * float(f["correct"].mean())}, reps=reps)["acc"]
    return f"[{lo:.1f}, {hi:.1f}]"


def ordering_verdict(r: dict) -> str:
    """Whether our means keep the paper's ordering RM > vanilla SFT > LLaDA on a row, with the RM − SFT
    gap beside the paper's: a missed target is stated in the table, not only in the README."""
    base, sft, rm = (r[f"{MODEL_LABELS[f]} (ours)"] for f in ("base", "sft", "rm"))
    gap, paper_gap = rm - sft, r["RM (paper)"] - r["Vanilla SFT (paper)"]
    holds = "holds" if rm > sft > base else "does not hold"
    return f"{holds} (RM − SFT {gap:+.1f}; paper {paper_gap:+.1f})"


def table3_rows(summaries: dict, info: dict, samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per benchmark: each family's accuracy (mean over seeds), its 95 % interval over seeds and
    problems (from the per-sample ``samples``), the per-seed values and the paper's number."""
    from ...tables import PAPER_TABLE3

    rows = {}
    for row in [r for r in ("MATH500", "MBPP", "ARC-Challenge") if r in info["table3"]]:
        task = info["table3"][row]
        label = row if info["kind"] != "mini" else f"{row} (mini: {task})"
        r = {}
        for fam in ("base", "sft", "rm"):
            names = sorted(n for n in summaries if model_family(n) == fam)
            vals = [task_score(summaries[n], task) for n in names]
            r[f"{MODEL_LABELS[fam]} (ours)"] = float(np.mean(vals)) if vals else float("nan")
            r[f"{MODEL_LABELS[fam]} (paper)"] = float(PAPER_TABLE3.loc[row, fam])
            r[f"{MODEL_LABELS[fam]} 95% CI"] = (accuracy_interval(samples[samples["task"] == task], names)
                                                if samples is not None else "")
            if fam != "base":
                r[f"{MODEL_LABELS[fam]} per seed"] = ", ".join(
                    f"s{model_seed(n)}: {v:.1f}" for n, v in zip(names, vals))
        r["RM > SFT > LLaDA (paper's claim)"] = ordering_verdict(r)
        rows[label] = r
    cols = ["LLaDA (ours)", "LLaDA 95% CI", "LLaDA (paper)", "Vanilla SFT (ours)", "Vanilla SFT 95% CI",
            "Vanilla SFT (paper)", "RM (ours)", "RM 95% CI", "RM (paper)", "RM > SFT > LLaDA (paper's claim)",
            "Vanilla SFT per seed", "RM per seed"]
    return pd.DataFrame.from_dict(rows, orient="index")[cols]


def subject_frame(samples: pd.DataFrame, info: dict) -> pd.DataFrame:
    """Per-sample rows of the Table 4 problems with a ``subject`` column (display name)."""
    subj = info.get("subjects") or {}
    if subj.get("source") == "mini_math":
        test = read_parquet(info["paths"]["mini_math"], ["unique_id", "subject"])
        names = subj["names"]
        s = samples[samples["task"] == "mini_math"].copy()
        s["subject"] = s["prompt_id"].map(dict(zip(test["unique_id"], test["subject"]))).map(names)
        return s
    prefix = "minerva_math_rm_"
    s = samples[samples["task"].str.startswith(prefix)].copy()
    s["subject"] = s["task"].str[len(prefix):].map(subj.get("names") or {})
    return s


def table4_rows(samples: pd.DataFrame, info: dict) -> pd.DataFrame:
    """Rows: subjects + Aggregate; columns: SFT/RM ours (mean over seeds) and paper."""
    from ...tables import PAPER_TABLE4

    s = subject_frame(samples, info)
    s["family"] = s["model"].map(model_family)
    present = set(s["subject"].dropna())
    order = [n for n in (info.get("subjects") or {}).get("names", {}).values() if n in present]
    out = {}
    for subject in order + ["Aggregate"]:
        part = s if subject == "Aggregate" else s[s["subject"] == subject]
        r = {}
        for fam in ("sft", "rm"):
            per_seed = part[part["family"] == fam].groupby("model")["correct"].mean() * 100
            r[f"{MODEL_LABELS[fam]} (ours)"] = float(per_seed.mean()) if len(per_seed) else float("nan")
            r[f"{MODEL_LABELS[fam]} 95% CI"] = accuracy_interval(part, list(per_seed.index))
            r[f"{MODEL_LABELS[fam]} (paper)"] = (float(PAPER_TABLE4.loc[fam, subject]) if subject in PAPER_TABLE4.columns
                                                 else float("nan"))
            r[f"{MODEL_LABELS[fam]} per seed"] = ", ".join(f"s{model_seed(m)}: {v:.1f}" for m, v in per_seed.items())
        r["n problems"] = str(part[part["family"] == "sft"]["prompt_id"].nunique())
        out[subject] = r
    for subject in PAPER_TABLE4.columns:  # the paper's subjects that are not ours (mini scale)
        if subject not in out:
            out[f"{subject} (paper only)"] = {f"{MODEL_LABELS[f]} (paper)": float(PAPER_TABLE4.loc[f, subject])
                                              for f in ("sft", "rm")}
    cols = ["Vanilla SFT (ours)", "Vanilla SFT 95% CI", "Vanilla SFT (paper)", "RM (ours)", "RM 95% CI", "RM (paper)",
            "Vanilla SFT per seed", "RM per seed", "n problems"]
    return pd.DataFrame.from_dict(out, orient="index").reindex(columns=cols)


# ------------------------------------------------------------------------------ figures

TASK_TITLES = {"mini_math": "mini math (MATH500 analogue)", "mini_code": "mini code (MBPP analogue)",
               "math500_rm": "MATH500", "mbpp_rm": "MBPP (70% test)"}


def scaling_panels(curve: pd.DataFrame, results: dict) -> list[dict]:
    """Per generation task: each RM seed's accuracy after every turn, and the mean accuracy of SFT
    and of the base (low-confidence decoding) as reference lines."""
    panels = []
    for task in dict.fromkeys(curve["task"]):
        part = curve[curve["task"] == task]
        curves = []
        for name, p in part.groupby("model", sort=True):
            p = p.sort_values("turns")
            curves.append((f"RM seed {model_seed(name)}", p["turns"], p["accuracy"]))
        refs = []
        for fam, ls in (("sft", "--"), ("base", ":")):
            vals = [task_score(results[n], task) for n in results if model_family(n) == fam]
            if vals:
                refs.append((f"{MODEL_LABELS[fam]} (low-confidence){' mean' if len(vals) > 1 else ''}",
                             float(np.mean(vals)), "grey" if fam == "base" else "black", ls))
        panels.append({"title": TASK_TITLES.get(task, task), "curves": curves, "refs": refs})
    return panels


def _changes(states: np.ndarray, mask_id: int):
    """Per state s >= 1 and position: 'remask' (visible -> MASK), 'reveal' (MASK -> token), 'keep'."""
    prev, cur = states[:-1], states[1:]
    kind = np.full(cur.shape, "keep", dtype=object)
    kind[(prev != mask_id) & (cur == mask_id)] = "remask"
    kind[(prev == mask_id) & (cur != mask_id)] = "reveal"
    return kind


def pick_example(traj: pd.DataFrame, mask_id: int, T: int):
    """The most instructive example (the paper's Fig. 4): one that is wrong in its first state and
    correct at turn T after re-masking a token that then changed (a repair); else one that ends
    correct after such a change; else a correct one with re-masks; else the one with the most
    re-masks. Ties go to the first task (math) and the first row."""
    best, best_key = None, None
    tasks = list(dict.fromkeys(traj["task"]))
    for i, r in traj.reset_index(drop=True).iterrows():
        G = int(r["gen_length"])
        st = np.asarray(r["states"]).reshape(-1, G)[: T + 1]
        kinds = _changes(st, mask_id)
        last = len(st) - 1
        n_remask = int((kinds == "remask").sum())
        fixed = 0
        for pos in range(G):  # a token re-masked and later revealed as another token
            col = st[:, pos]
            vis = [(s, v) for s, v in enumerate(col) if v != mask_id]
            fixed += sum(1 for (s1, a), (s2, b) in zip(vis, vis[1:]) if a != b and s2 > s1 + 1)
        correct = bool(r["correct"][last])
        repaired = correct and fixed > 0 and not r["correct"][0]
        key = (repaired, correct and fixed > 0, correct and n_remask > 0, n_remask > 0, correct,
               -tasks.index(r["task"]), fixed, n_remask)
        if best_key is None or key > best_key:
            best, best_key = r, key
    return best


def repair_counts(traj: pd.DataFrame, T: int) -> str:
    """How often the shown kind of event happens: per RM model, of its answers, how many are wrong
    in the first state and right at turn T (repaired) and how many the reverse (broken)."""
    lines = [f"How the example was chosen: among the trajectories of every RM model, an answer repaired "
             f"(wrong in the first state, right at turn {T}) is shown first. How often each happens:", "",
             "| model | answers | repaired | broken |", "|---|---|---|---|"]
    for name, g in traj.groupby("model", sort=True):
        first = g["correct"].map(lambda c: bool(c[0]))
        last = g["correct"].map(lambda c: bool(c[min(T, len(c) - 1)]))
        lines.append(f"| {name} | {len(g)} | {int((~first & last).sum())} | {int((first & ~last).sum())} |")
    return "\n".join(lines) + "\n"


def render_trajectory(row, tok, T: int) -> tuple[list[list[tuple[str, str]]], str]:
    """States 0..T of one example as [(char, kind)] rows and a Markdown rendering.

    kind: 'mask' (MASK), 'remask' (re-masked at this turn), 'reveal' (revealed this turn, a change),
    'keep'. EOS fill is cut after the first EOS; newlines are shown as '⏎'.
    """
    G = int(row["gen_length"])
    st = np.asarray(row["states"]).reshape(-1, G)[: T + 1]
    kinds = np.vstack([np.full((1, G), "keep", dtype=object), _changes(st, tok.mask_id)])
    eos = [int(np.argmax(s == tok.eos_id)) if (s == tok.eos_id).any() else G for s in st]
    width = max(eos) + 1 if max(eos) < G else G
    lines, md = [], []
    for s in range(len(st)):
        cells = []
        for pos in range(width):
            v = int(st[s, pos])
            if v == tok.mask_id:
                ch, k = "_", "remask" if kinds[s, pos] == "remask" else "mask"
            elif v == tok.eos_id:
                ch, k = "·", "reveal" if kinds[s, pos] == "reveal" else "keep"
            else:
                ch = tok.decode([v]).replace("\n", "⏎") or "?"
                k = "reveal" if kinds[s, pos] == "reveal" and s > 0 and st[s - 1, pos] == tok.mask_id else kinds[s, pos]
            cells.append((ch, k))
        lines.append(cells)
        txt = "".join(f"[{c}]" if k == "remask" else c for c, k in cells)
        md.append(f"| {s} | `{txt}` | {'✓' if row['correct'][s] else '✗'} |")
    head = [f"Prompt: `{row['prompt']}` ({row['task']}, {row['model']}, prompt id {row['prompt_id']})", "",
            "State 0 is the first state; each later row is one turn of Eq. 1. `_` = MASK, `[_]` = re-masked "
            "at this turn (it was a visible token), `·` = EOS fill, ⏎ = newline.", "",
            "| turn | answer region | correct |", "|---|---|---|"]
    return lines, "\n".join(head + md) + "\n"


def report(cfg: dict, scale: str, tasks: str, summaries: list[str], samples: list[str], scaling: list[str],
           trajectories: list[str], table3: str, table4: str, fig_scaling: str, fig_trajectory: str):
    from ...tables import write_table

    table3_stem, table4_stem, scaling_stem, traj_stem = (Path(p).with_suffix("") for p in
                                                         (table3, table4, fig_scaling, fig_trajectory))
    info = json.loads(Path(tasks).read_text())
    results = load_summaries(summaries)
    per_doc = pd.concat([read_parquet(p) for p in samples], ignore_index=True)
    T = int(cfg["rm"]["T"])
    ft = cfg["finetune"]["train"]
    ev = cfg["eval"]
    seeds = sorted({model_seed(n) for n in results if model_seed(n) is not None})
    n_docs = {t: int(per_doc[(per_doc["task"] == t) & (per_doc["model"] == "base")].shape[0])
              for t in info["table3"].values()}
    bb = cfg["backbone"]
    who = ("a SmallTransformer MDM (char vocabulary) pre-trained here as a plain MDM" if bb["kind"] == "small"
           else "LLaDA-8B-Instruct")
    rev = cfg["rm"]["eval"]
    rm_dec = (f"Eq. 1 for {rev['turns']} turns from "
              + ("an all-MASK answer region" if rev["init"] == "mask"
                 else f"a {rev['draft_steps']}-step low-confidence draft"))
    notes = (f"Ours: base = {who}; vanilla SFT and RM fine-tuned from it on the same pairs for the same "
             f"{ft['steps']} steps of batch {ft['batch_size']} (equal compute), seeds {seeds}; the (ours) cells of "
             f"SFT and RM are the mean over seeds; 95% CI = percentile interval of a bootstrap over seeds and problems "
             f"(1,000 replicates; the base is one model, its interval is over problems). Decoding: base and SFT low-confidence remasking "
             f"({ev['low_confidence']['steps']} steps, {cfg['layout']['gen_length']} answer tokens); RM {rm_dec}, "
             f"History Reference {cfg['rm']['history']}. Test docs per row: {n_docs}. Multiple choice is forward-only "
             "(log-likelihood of each choice). Paper: LLaDA-8B-Instruct, MATH500 / MBPP 70% test / ARC-Challenge.")
    if info["kind"] == "mini":
        notes += (" Mini rows are procedurally generated analogues of the benchmarks (rm_core/tasks/text/mini.py): "
                  "their numbers measure the same mechanism, not the benchmarks themselves.")
    t3 = table3_rows(results, info, per_doc)
    write_table(t3, table3_stem, "Table 3: text reasoning, LLaDA vs vanilla SFT vs RM (accuracy, %).", scale, notes,
                digits=1, index_name="Benchmark")
    t4 = table4_rows(per_doc, info)
    sub_note = ("Mini subjects are the mini math problem types (by their operators; "
                "rm_core/tasks/text/mini.py: MATH_SUBJECTS); the paper's seven Minerva MATH subjects are listed in "
                "their own rows with no number of ours. Aggregate = per-problem accuracy over all test problems."
                if info["kind"] == "mini" else
                "Minerva MATH 0-shot by subject over the 5000-problem MATH test set; Aggregate = per-problem accuracy.")
    write_table(t4, table4_stem, "Table 4: math accuracy by subject, vanilla SFT vs RM (%).", scale,
                sub_note + " " + notes, digits=2, index_name="Subject")
    curve = pd.concat([read_parquet(p) for p in scaling], ignore_index=True)
    figures.turn_panels(scaling_panels(curve, results), T, scaling_stem,
                        f"Text ({scale}): accuracy vs RM turns (test-time scaling)")
    traj = pd.concat([read_parquet(p) for p in trajectories], ignore_index=True)  # every RM seed
    tok = _tokenizer_for(cfg, results, trajectories[0])  # one base, one tokenizer for all seeds
    row = pick_example(traj, tok.mask_id, T)
    lines, md = render_trajectory(row, tok, T)
    figures.token_trajectory(lines, f"{row['model']} on {row['task']}: {row['prompt']!r}", traj_stem)
    write_text(f"# One RM revision trajectory ({scale})\n\n" + md + "\n" + repair_counts(traj, T),
               traj_stem.with_suffix(".md"))
    return t3, t4


def _tokenizer_for(cfg: dict, summaries: dict, traj_path: str):
    """The tokenizer of the RM model whose trajectories are shown (its model folder)."""
    from ...backbones.load import load_tokenizer, read_model_ref

    model_dir = Path(traj_path).parents[1] / "models" / read_parquet(traj_path, ["model"])["model"].iloc[0]
    ref = read_model_ref(model_dir / "model.json")
    return load_tokenizer(ref["kind"], ref["dir"])


def validation_table(scale: str, summaries: list[str], table: str) -> pd.DataFrame:
    """Accuracy (%) of every model on the VALIDATION split, one row per model and one column per
    task, plus the mean over seeds of each family: the numbers every choice of settings is made on
    (the test split feeds only Tables 3 and 4). Writes ``table`` and its .csv/.tex siblings."""
    from ...tables import write_table

    results = load_summaries(summaries)
    bad = sorted(n for n, s in results.items() if s.get("split") != "val")
    if bad:
        raise ValueError(f"validation table: {bad} were not evaluated on the validation split")
    tasks = sorted({t for s in results.values() for t in s["results"]})
    per_model = pd.DataFrame({n: {t: task_score(s, t) for t in tasks} for n, s in sorted(results.items())}).T
    fams = {f: [n for n in per_model.index if model_family(n) == f] for f in ("base", "sft", "rm")}
    means = pd.DataFrame({f"{MODEL_LABELS[f]}, mean of {len(ns)}": per_model.loc[ns].mean()
                          for f, ns in fams.items() if ns}).T
    df = pd.concat([per_model, means])
    stem = Path(table).with_suffix("")
    write_table(df, stem, "Text track on the validation split (accuracy %)", scale,
                notes="Validation problems are held out of the training side; settings are chosen on these "
                      "numbers, never on the test split. There are no paper numbers for this split.",
                digits=1, index_name="model", paper=False)
    return df
