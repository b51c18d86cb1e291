"""The Sudoku track, data stage: solved boards, train / validation / test disjoint, the
validation and test boards corrupted with wrong digits."""

from __future__ import annotations

import logging

import numpy as np

from ...io import write_parquet
from ...tasks.sudoku import (SCHEMA_DOC, SudokuSpec, boards_to_frame, corrupt_boards, train_test_boards)

log = logging.getLogger(__name__)


def spec_of(cfg: dict) -> SudokuSpec:
    return SudokuSpec(*cfg["box"])


def make_data(cfg: dict, seed: int, train: str, test: str, val: str | None = None) -> None:
    """Solved boards, train/val/test disjoint; val and test corrupted with ``test_wrong`` wrong digits.

    Settings are chosen on the validation boards (``n_val``, ours); the test boards are read only
    for the final table.
    """
    spec = spec_of(cfg)
    n_val = int(cfg["n_val"]) if val else 0
    train_b, rest = train_test_boards(cfg["n_train"], cfg["n_test"] + n_val, spec, seed)
    test_b, val_b = rest[: cfg["n_test"]], rest[cfg["n_test"]:]
    # Each test solution is corrupted ``test_corruptions`` times (independent draws): a 4x4
    # Sudoku has only 288 solutions, so this is how the mini test set gets enough boards.
    reps = int(cfg["test_corruptions"])
    test_b, val_b = np.repeat(test_b, reps, axis=0), np.repeat(val_b, reps, axis=0)
    corrupted, _ = corrupt_boards(test_b, tuple(cfg["test_wrong"]), seed + 1)
    write_parquet(boards_to_frame(train_b, train_b, "train"), train, SCHEMA_DOC)
    write_parquet(boards_to_frame(test_b, corrupted, "test"), test, SCHEMA_DOC)
    if val:
        if not len(val_b):
            raise ValueError("sudoku.n_val must be >= 1 to write a validation split")
        val_corrupted, _ = corrupt_boards(val_b, tuple(cfg["test_wrong"]), seed + 2)
        write_parquet(boards_to_frame(val_b, val_corrupted, "val"), val, SCHEMA_DOC)
    log.info("wrote %d train, %d val and %d test boards (%dx%d)", len(train_b), len(val_b), len(test_b), spec.n, spec.n)
