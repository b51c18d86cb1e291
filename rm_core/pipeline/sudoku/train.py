"""The Sudoku track, training: one Table-2 variant (a History Reference setting, Eq. 2) trained
from scratch with RM (Appendix C with wrong digits as the proposal, the Eq. 4 loss)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch

from ...backbones.small_transformer import SmallTransformer, SmallTransformerConfig
from ...history import HistoryConfig
from ...history_table import rm_model_input_table
from ...io import read_parquet, write_json
from ...method import RMConfig, merge
from ...objective import position_weights, rm_loss
from ...tasks.sudoku import (SudokuSpec, frame_to_boards, to_tokens)
from ...train import TrainConfig, files_digest, train as run_training
from ...trajectory import UniformProposal, build_instances
from .data import spec_of

log = logging.getLogger(__name__)


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
        inst = build_instances(target, editable, T, spec.mask_id, proposal, g, rm.edit_set, rm.p_wrong,
                               p_wrong_reveal=rm.p_wrong_reveal, p_wrong_again=rm.p_wrong_again)
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


def train_variant(cfg: dict, variant: str, seed: int, train: str, model: str, stop_after: int | None = None) -> None:
    """Train one Table-2 variant from scratch (the variant only changes the History Reference)."""
    out_dir = Path(model).parent  # <out>/model.safetensors
    spec = spec_of(cfg)
    history = variant_history(cfg, variant)
    solution, _, _ = frame_to_boards(read_parquet(train, ["solution", "initial", "board_id"]),
                                     source=str(train))
    solutions = torch.as_tensor(to_tokens(solution, spec))
    torch.manual_seed(seed)
    model = build_model(cfg, spec)
    log.info("variant %s: %s, %d parameters", variant, history, model.num_parameters())
    tcfg = TrainConfig.from_dict({**cfg["train"], "seed": seed})
    fp = {"variant": variant, "history": asdict(history), "rm": cfg["rm"], "model": cfg["model"],
          "n_train": len(solutions), "box": list(cfg["box"]), "data": files_digest([train])}
    run_training(model, rm_sudoku_loss(cfg, history, solutions, spec), tcfg, out_dir, stop_after=stop_after,
                 fingerprint=fp)
    write_json({"variant": variant, "history": asdict(history), "T": cfg["rm"]["T"], "seed": seed},
               Path(out_dir) / "run.json")
