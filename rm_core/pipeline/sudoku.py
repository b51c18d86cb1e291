"""The Sudoku track (paper Table 2): data -> train one RM variant -> evaluate -> table/figures.

Each function reads its inputs, writes its outputs atomically, and takes the track's
config section (``config.yaml: sudoku``) as a plain dict.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..backbones.small_transformer import SmallTransformer, SmallTransformerConfig
from ..history import HistoryConfig
from ..history_table import rm_model_input_table
from ..io import read_parquet, write_json, write_parquet
from ..method import RMConfig, merge
from ..metrics.sudoku import board_metrics, summarize
from ..objective import position_weights, rm_loss
from ..rule import rm_sample
from ..tasks.sudoku import (SCHEMA_DOC, SudokuSpec, boards_to_frame, corrupt_boards, frame_to_boards,
                            to_tokens, train_test_boards)
from ..train import TrainConfig, files_digest, train
from ..trajectory import UniformProposal, build_instances

log = logging.getLogger(__name__)

METRICS_SCHEMA = """board_id: int64, test board
exact, valid: bool; conflict_cells, n_wrong_initial, n_remasked_wrong, n_replay, n_remask_events,
n_replay_events, n_changed_correct,
n_broken_correct, turns_to_fixed_point: int64 (see rm_core.metrics.sudoku)
variant: string; turns: int64, the number of RM turns the final board was taken at
seed: int64, the training seed (run.json of the model; -1 if unknown)"""

TRAJECTORY_SCHEMA = """board_id: int64, test board
variant: string
trajectory: list<int64>, (turns+1)*n_cells token ids, row-major per state: state s is
  trajectory[s*n_cells:(s+1)*n_cells]; token id d-1 is digit d, id n is MASK
solution: list<int64>, token ids"""

SCALING_SCHEMA = """variant: string; turns: int64, RM turns run
exact_acc, valid_rate, replay_mistake, conflict_cells_per_board: float (Table 2 metrics after that many turns)"""


def spec_of(cfg: dict) -> SudokuSpec:
    return SudokuSpec(*cfg["box"])


def make_data(cfg: dict, seed: int, out_train: str, out_test: str, out_val: str | None = None) -> None:
    """Solved boards, train/val/test disjoint; val and test corrupted with ``test_wrong`` wrong digits.

    Settings are chosen on the validation boards (``n_val``, ours); the test boards are read only
    for the final table.
    """
    spec = spec_of(cfg)
    n_val = int(cfg.get("n_val", 0)) if out_val else 0
    train_b, rest = train_test_boards(cfg["n_train"], cfg["n_test"] + n_val, spec, seed)
    test_b, val_b = rest[: cfg["n_test"]], rest[cfg["n_test"]:]
    # Each test solution is corrupted ``test_corruptions`` times (independent draws): a 4x4
    # Sudoku has only 288 solutions, so this is how the mini test set gets enough boards.
    reps = int(cfg.get("test_corruptions", 1))
    test_b, val_b = np.repeat(test_b, reps, axis=0), np.repeat(val_b, reps, axis=0)
    corrupted, _ = corrupt_boards(test_b, tuple(cfg["test_wrong"]), seed + 1)
    write_parquet(boards_to_frame(train_b, train_b, "train"), out_train, SCHEMA_DOC)
    write_parquet(boards_to_frame(test_b, corrupted, "test"), out_test, SCHEMA_DOC)
    if out_val:
        if not len(val_b):
            raise ValueError("sudoku.n_val must be >= 1 to write a validation split")
        val_corrupted, _ = corrupt_boards(val_b, tuple(cfg["test_wrong"]), seed + 2)
        write_parquet(boards_to_frame(val_b, val_corrupted, "val"), out_val, SCHEMA_DOC)
    log.info("wrote %d train, %d val and %d test boards (%dx%d)", len(train_b), len(val_b), len(test_b), spec.n, spec.n)


def build_model(cfg: dict, spec: SudokuSpec) -> SmallTransformer:
    return SmallTransformer(SmallTransformerConfig(vocab_size=spec.vocab_size, n_positions=spec.n_cells,
                                                   mask_id=spec.mask_id, **cfg["model"]))


def variant_history(cfg: dict, variant: str) -> HistoryConfig:
    """A Table-2 row: the track's History Reference (``rm.history``) with the variant's keys over it."""
    return HistoryConfig(**merge(cfg["rm"]["history"], cfg["variants"][variant]))


def rm_sudoku_parts(cfg: dict, history: HistoryConfig, solutions: torch.Tensor, spec: SudokuSpec):
    """The RM objective on Sudoku in two halves: ``make_input(model, g) -> (inputs, aux)`` draws
    the Appendix C instances (wrong-digit proposal) and builds the History Reference input;
    ``finish(logits, aux) -> (loss, parts)`` is the Eq. 4 loss. The grouped trainer
    (rm_core.grouped) runs the backbone between them for several models at once."""
    rm = RMConfig.from_dict(cfg["rm"], "sudoku.rm")
    T = rm.T
    proposal = UniformProposal(range(spec.n))

    def make_input(model, g):
        idx = torch.randint(0, len(solutions), (cfg["train"]["batch_size"],), generator=g, device=g.device)
        target = solutions.to(g.device)[idx]
        editable = torch.ones_like(target, dtype=torch.bool)
        inst = build_instances(target, editable, T, spec.mask_id, proposal, g, rm.edit_set, rm.p_wrong)
        # Eq. 2 from the (token, lag span) table: equal to rm_model_input, faster (rm_core.history_table)
        return rm_model_input_table(model, inst, editable, history, T, spec.vocab_size), (inst, target, editable)

    def finish(logits, aux):
        inst, target, editable = aux
        w = position_weights(inst.edit_set, editable, rm.other_weight)
        out = rm_loss(logits, inst.z, target, editable, spec.mask_id, weights=w, eps=rm.eps)
        return out.total, out.as_floats()

    return make_input, finish


def rm_sudoku_loss(cfg: dict, history: HistoryConfig, solutions: torch.Tensor, spec: SudokuSpec):
    """The RM objective on Sudoku: Appendix C instances with the wrong-digit proposal, Eq. 4 loss."""
    make_input, finish = rm_sudoku_parts(cfg, history, solutions, spec)

    def loss_fn(model, step, g):
        inputs, aux = make_input(model, g)
        return finish(model.logits(inputs), aux)

    return loss_fn


def train_variant(cfg: dict, variant: str, seed: int, train_path: str, out_dir: str, stop_after=None) -> None:
    """Train one Table-2 variant from scratch (the variant only changes the History Reference)."""
    spec = spec_of(cfg)
    history = variant_history(cfg, variant)
    solution, _, _ = frame_to_boards(read_parquet(train_path, ["solution", "initial", "board_id"]),
                                     source=str(train_path))
    solutions = torch.as_tensor(to_tokens(solution, spec))
    torch.manual_seed(seed)
    model = build_model(cfg, spec)
    log.info("variant %s: %s, %d parameters", variant, history, model.num_parameters())
    tcfg = TrainConfig.from_dict({**cfg["train"], "seed": seed})
    fp = {"variant": variant, "history": asdict(history), "rm": cfg["rm"], "model": cfg["model"],
          "n_train": len(solutions), "box": list(cfg["box"]), "data": files_digest([train_path])}
    train(model, rm_sudoku_loss(cfg, history, solutions, spec), tcfg, out_dir, stop_after=stop_after, fingerprint=fp)
    write_json({"variant": variant, "history": asdict(history), "T": cfg["rm"]["T"], "seed": seed},
               Path(out_dir) / "run.json")


@torch.no_grad()
def evaluate(cfg: dict, variant: str, model_dir: str, test_path: str, out_metrics: str, out_traj: str,
             out_scaling: str) -> dict:
    """Run Eq. 1 for ``rm.eval.scaling_turns`` turns from the given board; metrics after
    ``rm.eval.turns`` (Table 2) and after each turn (scaling)."""
    spec = spec_of(cfg)
    history = variant_history(cfg, variant)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = SmallTransformer.from_pretrained(model_dir).to(device).eval()
    solution, initial, ids = frame_to_boards(read_parquet(test_path, ["solution", "initial", "board_id"]),
                                             source=str(test_path))
    sol_t, init_t = to_tokens(solution, spec), torch.as_tensor(to_tokens(initial, spec), device=device)
    rev = RMConfig.from_dict(cfg["rm"], "sudoku.rm").eval.check_track("sudoku.rm.eval", ("given",))
    T, turns = rev.turns, max(rev.scaling_turns, rev.turns)
    editable = torch.ones_like(init_t, dtype=torch.bool)
    trajs = []
    for start in range(0, len(init_t), cfg["eval_batch_size"]):
        sl = slice(start, start + cfg["eval_batch_size"])
        res = rm_sample(model, init_t[sl], editable[sl], turns, history=history, return_trajectory=True)
        trajs.append(res.trajectory.numpy())
    traj = np.concatenate(trajs)
    metrics = board_metrics(sol_t, to_tokens(initial, spec), traj[:, : T + 1], spec.mask_id, spec)
    metrics.insert(0, "board_id", ids)
    run = Path(model_dir) / "run.json"
    metrics["variant"], metrics["turns"] = variant, T
    metrics["seed"] = int(json.loads(run.read_text())["seed"]) if run.exists() else -1
    write_parquet(metrics, out_metrics, METRICS_SCHEMA)
    scaling = []
    for k in range(1, turns + 1):
        s = summarize(board_metrics(sol_t, to_tokens(initial, spec), traj[:, : k + 1], spec.mask_id, spec))
        scaling.append({"variant": variant, "turns": k, **{m: s[m] for m in
                        ("exact_acc", "valid_rate", "replay_mistake", "conflict_cells_per_board")}})
    write_parquet(pd.DataFrame(scaling), out_scaling, SCALING_SCHEMA)
    write_parquet(pd.DataFrame({"board_id": ids, "variant": variant,
                                "trajectory": [t.reshape(-1).tolist() for t in traj],
                                "solution": [s.tolist() for s in sol_t]}), out_traj, TRAJECTORY_SCHEMA)
    summary = summarize(metrics)
    log.info("%s: %s", variant, summary)
    return summary


TABLE2_COLUMNS = {"Exact Acc (%)": "exact_acc", "Valid Rate (%)": "valid_rate",
                  "Replay Mistake (%)": "replay_mistake", "Conflict Cells / board": "conflict_cells_per_board"}


def seed_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per variant (rows in first-seen order): the mean of each Table 2 metric over seeds, then
    "<metric> ± 95%": the half-width t_{0.975, n-1} * sd / sqrt(n) (NaN with one seed), and the
    per-seed exact accuracies."""
    from scipy import stats

    rows = {}
    for variant, part in per_seed.groupby("variant", sort=False):
        n = len(part)
        r = {col: float(part[col].mean()) for col in TABLE2_COLUMNS}
        for col in TABLE2_COLUMNS:
            r[f"{col} ± 95%"] = (float(stats.t.ppf(0.975, n - 1) * part[col].std(ddof=1) / np.sqrt(n))
                                 if n > 1 else float("nan"))
        r["Exact per seed"] = ", ".join(f"s{int(s)}: {v:.1f}" for s, v in zip(part["seed"], part["Exact Acc (%)"]))
        rows[variant] = r
    return pd.DataFrame.from_dict(rows, orient="index")


def report(cfg: dict, scale: str, metrics_paths: list[str], scaling_paths: list[str], traj_path: str,
           table_stem: str, fig_traj_stem: str, fig_scaling_stem: str) -> pd.DataFrame:
    """Table 2 beside the paper's numbers, a trajectory figure and the turns-vs-accuracy curve.

    The three out paths are stems: any suffix is dropped and every format is written.
    """
    from .. import figures
    from ..tables import PAPER_TABLE2, VARIANT_NAMES, side_by_side, write_table

    table_stem, fig_traj_stem, fig_scaling_stem = (Path(p).with_suffix("") for p in
                                                    (table_stem, fig_traj_stem, fig_scaling_stem))

    per_seed = []
    for p in metrics_paths:
        df = read_parquet(p)
        s = summarize(df)
        per_seed.append({"variant": df["variant"].iloc[0], "seed": int(df["seed"].iloc[0]) if "seed" in df else -1,
                         **{col: s[key] for col, key in TABLE2_COLUMNS.items()}})
    ours = seed_summary(pd.DataFrame(per_seed))
    paired = side_by_side(ours[list(TABLE2_COLUMNS)], PAPER_TABLE2)
    table = pd.DataFrame(index=paired.index)
    for col in TABLE2_COLUMNS:
        table[f"{col} (ours)"] = paired[f"{col} (ours)"]
        table[f"{col} ± 95%"] = ours[f"{col} ± 95%"]
        table[f"{col} (paper)"] = paired[f"{col} (paper)"]
    table["Exact per seed"] = ours["Exact per seed"]
    table.index = [VARIANT_NAMES.get(v, v) for v in table.index]
    spec = spec_of(cfg)
    n_boards = len(read_parquet(metrics_paths[0]))
    seeds = sorted({r["seed"] for r in per_seed})
    notes = (f"Ours: {spec.n}x{spec.n} boards ({spec.box_rows}x{spec.box_cols} boxes), {n_boards} test boards "
             f"({cfg['n_test']} solutions x {cfg.get('test_corruptions', 1)} corruptions) with "
             f"{cfg['test_wrong'][0]}-{cfg['test_wrong'][1]} wrong digits, T = {cfg['rm']['eval']['turns']} turns, "
             f"{cfg['train']['steps']} training steps of batch {cfg['train']['batch_size']}; (ours) is the mean over "
             f"seeds {seeds}, ± the half-width of its 95 % t-interval. Paper: 9x9 boards with "
             "4-20 wrong digits, 500 test boards, a 0.81M-parameter 4-layer Transformer.")
    write_table(table, table_stem, "Table 2: Sudoku revision, History Reference ablation.", scale, notes, digits=3,
                index_name="Variant")

    scaling = pd.concat([read_parquet(p) for p in scaling_paths], ignore_index=True)
    scaling = scaling.groupby(["variant", "turns"], sort=False, as_index=False).mean(numeric_only=True)  # over seeds
    figures.scaling_curve(scaling, "exact_acc", fig_scaling_stem, f"Sudoku ({scale}): exact accuracy vs turns",
                          names=VARIANT_NAMES, mark_turn=int(cfg["rm"]["eval"]["turns"]), ylabel="Exact Acc (%)")
    trajs = read_parquet(traj_path)
    # the most instructive board: one the model fixed with the most re-masks
    shown = [np.asarray(t).reshape(-1, spec.n_cells)[: int(cfg["rm"]["eval"]["turns"]) + 1] for t in trajs["trajectory"]]
    mask_counts = [int((t == spec.mask_id).sum()) for t in shown]
    solved = [bool((t[-1] == np.asarray(s)).all()) for t, s in zip(shown, trajs["solution"])]
    i = sorted(range(len(trajs)), key=lambda k: (not solved[k], -mask_counts[k]))[0]
    traj = shown[i]
    figures.sudoku_trajectory(traj, np.asarray(trajs["solution"].iloc[i]), spec.n, spec.mask_id, fig_traj_stem,
                              f"{trajs['variant'].iloc[i]}, test board {int(trajs['board_id'].iloc[i])}")
    return table
