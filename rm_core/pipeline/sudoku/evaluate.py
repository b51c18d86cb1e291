"""The Sudoku track, evaluation: Eq. 1 turns from each corrupted board with the variant's
History Reference; per-board metrics (Exact, Valid, Replay Mistake, Conflicts) and the
trajectories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...backbones.load import load_backbone
from ...io import read_parquet, write_parquet
from ...method import RMConfig
from ...metrics.sudoku import board_metrics, summarize
from ...rule import rm_sample
from ...tasks.sudoku import frame_to_boards, to_tokens
from .data import spec_of
from .train import variant_history

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


@torch.no_grad()
def evaluate(cfg: dict, variant: str, model: str, test: str, metrics: str, trajectories: str, scaling: str) -> dict:
    """Run Eq. 1 for ``rm.eval.scaling_turns`` turns from the given board; metrics after
    ``rm.eval.turns`` (Table 2) and after each turn (scaling)."""
    model_dir = Path(model).parent  # <dir>/model.safetensors
    spec = spec_of(cfg)
    history = variant_history(cfg, variant)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = load_backbone("small", model_dir, device=device).eval()
    solution, initial, ids = frame_to_boards(read_parquet(test, ["solution", "initial", "board_id"]),
                                             source=str(test))
    sol_t, init_t = to_tokens(solution, spec), torch.as_tensor(to_tokens(initial, spec), device=device)
    rev = RMConfig.from_dict(cfg["rm"], "sudoku.rm").eval.check_track("sudoku.rm.eval", ("given",))
    T, turns = rev.turns, max(rev.scaling_turns, rev.turns)
    editable = torch.ones_like(init_t, dtype=torch.bool)
    trajs = []
    for start in range(0, len(init_t), cfg["eval_batch_size"]):
        sl = slice(start, start + cfg["eval_batch_size"])
        res = rm_sample(net, init_t[sl], editable[sl], turns, history=history, return_trajectory=True)
        trajs.append(res.trajectory.numpy())
    traj = np.concatenate(trajs)
    per_board = board_metrics(sol_t, to_tokens(initial, spec), traj[:, : T + 1], spec.mask_id, spec)
    per_board.insert(0, "board_id", ids)
    run = Path(model_dir) / "run.json"
    per_board["variant"], per_board["turns"] = variant, T
    per_board["seed"] = int(json.loads(run.read_text())["seed"]) if run.exists() else -1
    write_parquet(per_board, metrics, METRICS_SCHEMA)
    curve = []
    for k in range(1, turns + 1):
        s = summarize(board_metrics(sol_t, to_tokens(initial, spec), traj[:, : k + 1], spec.mask_id, spec))
        curve.append({"variant": variant, "turns": k, **{m: s[m] for m in
                        ("exact_acc", "valid_rate", "replay_mistake", "conflict_cells_per_board")}})
    write_parquet(pd.DataFrame(curve), scaling, SCALING_SCHEMA)
    write_parquet(pd.DataFrame({"board_id": ids, "variant": variant,
                                "trajectory": [t.reshape(-1).tolist() for t in traj],
                                "solution": [s.tolist() for s in sol_t]}), trajectories, TRAJECTORY_SCHEMA)
    summary = summarize(per_board)
    log.info("%s: %s", variant, summary)
    return summary
