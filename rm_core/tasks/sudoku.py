"""Sudoku boards for the revision task of Table 2.

A board is n x n with n = box_rows * box_cols (4x4 with 2x2 boxes at mini scale, 9x9 with
3x3 boxes at paper scale), flattened row-major to n*n cells. Two encodings:

- digits: int64, a digit d in 1..n, and 0 for an empty / MASK cell (the task side);
- tokens: int64 ids, digit d -> d - 1, MASK -> n (= ``SudokuSpec.mask_id``; the model side).

Test boards (paper, Table 2): "solved 9x9 boards with 4-20 randomly chosen cells replaced by
incorrect digits; any of the 81 cells may be revised" -> ``corrupt_boards``.

Parquet schema written by ``boards_to_frame`` (one row per board, digits, not tokens):

    board_id:  int64       index of the board within its file, unique
    solution:  list<int64> the solved board, n*n digits in 1..n, row-major
    initial:   list<int64> the corrupted board shown to the model, n*n digits in 1..n
    n_wrong:   int64       number of cells where initial != solution
    split:     string      "train", "val" or "test"
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

SCHEMA_DOC = "\n".join([
    "board_id: int64, index of the board, unique within the file",
    "solution: list<int64>, solved board, n*n digits 1..n row-major",
    "initial: list<int64>, corrupted board shown to the model, n*n digits 1..n",
    "n_wrong: int64, number of cells where initial != solution",
    "split: string, train, val or test",
])


@dataclass(frozen=True)
class SudokuSpec:
    """Box geometry: a band is ``box_rows`` rows, a stack is ``box_cols`` columns."""

    box_rows: int
    box_cols: int

    @property
    def n(self) -> int:
        return self.box_rows * self.box_cols

    @property
    def n_cells(self) -> int:
        return self.n * self.n

    @property
    def mask_id(self) -> int:
        return self.n

    @property
    def vocab_size(self) -> int:
        return self.n + 1

    @classmethod
    def from_cells(cls, n_cells: int) -> "SudokuSpec":
        """Square boxes inferred from the number of cells (16 -> 2x2, 81 -> 3x3)."""
        n = math.isqrt(n_cells)
        b = math.isqrt(n)
        if n * n != n_cells or b * b != n:
            raise ValueError(f"{n_cells} cells is not a board with square boxes; pass a SudokuSpec")
        return cls(b, b)


def _spec_for(boards: np.ndarray, spec: Optional[SudokuSpec]) -> SudokuSpec:
    spec = spec or SudokuSpec.from_cells(boards.shape[-1])
    if boards.shape[-1] != spec.n_cells:
        raise ValueError(f"boards have {boards.shape[-1]} cells, spec {spec} needs {spec.n_cells}")
    return spec


# ----------------------------------------------------------------------------- generation


def _pattern_board(spec: SudokuSpec) -> np.ndarray:
    """The canonical solved board, value (box_cols*(i % box_rows) + i // box_rows + j) % n + 1."""
    i, j = np.meshgrid(np.arange(spec.n), np.arange(spec.n), indexing="ij")
    return (spec.box_cols * (i % spec.box_rows) + i // spec.box_rows + j) % spec.n + 1


def _random_fill(spec: SudokuSpec, rng: np.random.Generator) -> np.ndarray:
    """One solved board by randomised backtracking (a second base, outside the pattern's orbit)."""
    n, br, bc = spec.n, spec.box_rows, spec.box_cols
    board = np.zeros((n, n), dtype=np.int64)
    orders = [rng.permutation(n) + 1 for _ in range(n * n)]

    def fill(k: int) -> bool:
        if k == n * n:
            return True
        i, j = divmod(k, n)
        bi, bj = i - i % br, j - j % bc
        used = set(board[i, :j]) | set(board[:i, j]) | set(board[bi:i + 1, bj:bj + bc].ravel())
        for d in orders[k]:
            if d not in used:
                board[i, j] = d
                if fill(k + 1):
                    return True
        board[i, j] = 0
        return False

    fill(0)
    return board


def _grouped_permutation(rng: np.random.Generator, count: int, n_groups: int, size: int) -> np.ndarray:
    """(count, n_groups*size) index arrays: permute the groups, then the members within each group."""
    group_order = np.argsort(rng.random((count, n_groups)), axis=1)
    within = np.argsort(rng.random((count, n_groups, size)), axis=2)
    return (group_order[:, :, None] * size + within).reshape(count, n_groups * size)


def _transform(bases: np.ndarray, spec: SudokuSpec, count: int, rng: np.random.Generator) -> np.ndarray:
    """Apply random validity-preserving symmetries to randomly chosen bases: (count, n, n)."""
    n, br, bc = spec.n, spec.box_rows, spec.box_cols
    which = rng.integers(0, len(bases), size=count)
    rows = _grouped_permutation(rng, count, bc, br)  # bc bands of br rows
    cols = _grouped_permutation(rng, count, br, bc)  # br stacks of bc columns
    boards = bases[which[:, None, None], rows[:, :, None], cols[:, None, :]]
    if br == bc:
        flip = rng.random(count) < 0.5
        boards = np.where(flip[:, None, None], boards.transpose(0, 2, 1), boards)
    relabel = np.argsort(rng.random((count, n)), axis=1) + 1
    return np.take_along_axis(relabel, (boards - 1).reshape(count, -1), axis=1)


def generate_solved_boards(count: int, spec: SudokuSpec, seed: int, max_rounds: int = 200) -> np.ndarray:
    """``count`` distinct solved boards, (count, n*n) int64 digits 1..n, a function of ``seed``.

    Bases are the canonical pattern plus randomised-backtracking fills (one orbit of the pattern
    alone holds 192 of the 288 4x4 boards); each board is a base under random digit relabelling,
    band / row-in-band / stack / column-in-stack permutations and (square boxes) transposition.
    Duplicates are dropped and topped up; ``ValueError`` if ``count`` cannot be reached.
    """
    rng = np.random.default_rng(seed)
    bases = [_pattern_board(spec)]
    seen: set[bytes] = set()
    kept: list[np.ndarray] = []
    for _ in range(max_rounds):
        need = count - len(kept)
        if need <= 0:
            break
        bases.append(_random_fill(spec, rng))
        for board in _transform(np.stack(bases), spec, 2 * need + 16, rng):
            key = board.tobytes()
            if key not in seen:
                seen.add(key)
                kept.append(board)
                if len(kept) == count:
                    break
    if len(kept) < count:
        raise ValueError(f"found only {len(kept)} distinct {spec.n}x{spec.n} boards, {count} asked")
    return np.stack(kept).astype(np.int64) if kept else np.zeros((0, spec.n_cells), np.int64)


def train_test_boards(n_train: int, n_test: int, spec: SudokuSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train and test sets of solved boards (drawn together, so no board is in both)."""
    boards = generate_solved_boards(n_train + n_test, spec, seed)
    return boards[:n_train], boards[n_train:]


# ----------------------------------------------------------------------------- corruption


def corrupt_boards(boards: np.ndarray, n_wrong: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Replace k ~ U{low..high} distinct cells per board by a uniformly drawn incorrect digit.

    ``boards``: (B, n*n) digits 1..n. Returns (corrupted digits, wrong_mask bool), same shape.
    Paper (Table 2): 4-20 cells of a 9x9 board.
    """
    boards = np.asarray(boards, dtype=np.int64)
    low, high = n_wrong
    n_boards, n_cells = boards.shape
    n = math.isqrt(n_cells)
    if not 0 <= low <= high <= n_cells:
        raise ValueError(f"n_wrong={n_wrong} must satisfy 0 <= low <= high <= {n_cells}")
    rng = np.random.default_rng(seed)
    k = rng.integers(low, high + 1, size=n_boards)
    rank = np.argsort(np.argsort(rng.random((n_boards, n_cells)), axis=1), axis=1)
    wrong_mask = rank < k[:, None]
    shift = rng.integers(1, n, size=boards.shape)  # d -> d + shift (mod n): uniform over the others
    corrupted = np.where(wrong_mask, (boards - 1 + shift) % n + 1, boards)
    return corrupted, wrong_mask


# ----------------------------------------------------------------------------- validity


def conflict_cells(boards: np.ndarray, spec: Optional[SudokuSpec] = None) -> np.ndarray:
    """Per board, the number of cells that break a rule (digits, 0 = empty / MASK).

    A digit cell counts once if its digit appears elsewhere in its row, column or box. An empty
    (MASK) cell counts as a conflict cell too: a board that still holds MASK is not a solution.
    Empty cells do not make other cells conflict. Square boxes are assumed without ``spec``.
    """
    boards = np.asarray(boards, dtype=np.int64)
    spec = _spec_for(boards, spec)
    n, br, bc = spec.n, spec.box_rows, spec.box_cols
    if boards.min(initial=0) < 0 or boards.max(initial=0) > n:
        raise ValueError(f"digits must lie in 0..{n}")
    b = boards.reshape(-1, n, n)
    onehot = (b[..., None] == np.arange(1, n + 1)).astype(np.int64)  # (B, n, n, n digits)
    row = onehot.sum(axis=2, keepdims=True)
    col = onehot.sum(axis=1, keepdims=True)
    box = onehot.reshape(-1, bc, br, br, bc, n).sum(axis=(2, 4), keepdims=True)
    box = np.broadcast_to(box, (box.shape[0], bc, br, br, bc, n)).reshape(-1, n, n, n)
    dup = ((row > 1) | (col > 1) | (box > 1)) & (onehot == 1)
    bad = dup.any(axis=-1) | (b == 0)
    return bad.reshape(*boards.shape[:-1], n * n).sum(axis=-1)


def is_valid(boards: np.ndarray, spec: Optional[SudokuSpec] = None) -> np.ndarray:
    """Bool per board: completely filled and no rule broken."""
    return conflict_cells(boards, spec) == 0


# ----------------------------------------------------------------------------- encodings


def to_tokens(boards: np.ndarray, spec: Optional[SudokuSpec] = None) -> np.ndarray:
    """Digits -> token ids: d -> d - 1, 0 (empty) -> MASK id n."""
    boards = np.asarray(boards, dtype=np.int64)
    spec = _spec_for(boards, spec)
    return np.where(boards == 0, spec.mask_id, boards - 1)


def from_tokens(tokens: np.ndarray, spec: Optional[SudokuSpec] = None) -> np.ndarray:
    """Token ids -> digits: id -> id + 1, MASK id n -> 0."""
    tokens = np.asarray(tokens, dtype=np.int64)
    spec = _spec_for(tokens, spec)
    return np.where(tokens == spec.mask_id, 0, tokens + 1)


def boards_to_frame(solution: np.ndarray, initial: np.ndarray, split: str,
                    board_ids: Optional[np.ndarray] = None) -> pd.DataFrame:
    """One row per board in the schema of the module docstring (digits)."""
    solution = np.asarray(solution, dtype=np.int64)
    initial = np.asarray(initial, dtype=np.int64)
    if solution.shape != initial.shape:
        raise ValueError(f"solution {solution.shape} and initial {initial.shape} differ")
    ids = np.arange(len(solution)) if board_ids is None else np.asarray(board_ids, dtype=np.int64)
    return pd.DataFrame({
        "board_id": ids.astype(np.int64),
        "solution": [row.tolist() for row in solution],
        "initial": [row.tolist() for row in initial],
        "n_wrong": (solution != initial).sum(axis=1).astype(np.int64),
        "split": split,
    })


def frame_to_boards(df: pd.DataFrame, split: Optional[str] = None,
                    source: Optional[str] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(solution, initial, board_id) arrays from a frame of ``boards_to_frame``, one split if given;
    ``source`` (the file it was read from) names it in the error when the frame has no rows."""
    if len(df) == 0:
        raise ValueError(f"{source or 'boards frame'}: the file is empty (0 boards)")
    if split is not None:
        df = df[df["split"] == split]
    solution = np.array([np.asarray(v, dtype=np.int64) for v in df["solution"]], dtype=np.int64)
    initial = np.array([np.asarray(v, dtype=np.int64) for v in df["initial"]], dtype=np.int64)
    return solution, initial, df["board_id"].to_numpy(dtype=np.int64)
