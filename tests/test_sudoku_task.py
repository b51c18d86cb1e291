"""Sudoku boards: validity (naive loops), determinism, uniqueness, splits, corruption, codecs."""

import numpy as np
import pytest
import torch

from rm_core.tasks.sudoku import (
    SudokuSpec, boards_to_frame, conflict_cells, corrupt_boards, frame_to_boards, from_tokens,
    generate_solved_boards, is_valid, to_tokens, train_test_boards,
)

torch.set_num_threads(1)
SPECS = [SudokuSpec(2, 2), SudokuSpec(3, 3), SudokuSpec(2, 3), SudokuSpec(3, 2)]


def naive_conflicts(board, br, bc):
    """Count cells that are empty or share their digit with another cell of a row/col/box."""
    n = br * bc
    g = [list(board[i * n:(i + 1) * n]) for i in range(n)]
    count = 0
    for i in range(n):
        for j in range(n):
            d = g[i][j]
            if d == 0:
                count += 1
                continue
            peers = [(i, c) for c in range(n)] + [(r, j) for r in range(n)]
            bi, bj = i - i % br, j - j % bc
            peers += [(r, c) for r in range(bi, bi + br) for c in range(bj, bj + bc)]
            if any(g[r][c] == d for r, c in set(peers) if (r, c) != (i, j)):
                count += 1
    return count


def naive_valid(board, br, bc):
    n = br * bc
    g = np.asarray(board).reshape(n, n)
    full = set(range(1, n + 1))
    rows = all(set(g[i]) == full for i in range(n))
    cols = all(set(g[:, j]) == full for j in range(n))
    boxes = all(set(g[a:a + br, b:b + bc].ravel()) == full for a in range(0, n, br) for b in range(0, n, bc))
    return rows and cols and boxes


def test_spec_properties():
    s = SudokuSpec(3, 3)
    assert (s.n, s.n_cells, s.mask_id, s.vocab_size) == (9, 81, 9, 10)
    assert SudokuSpec.from_cells(16) == SudokuSpec(2, 2)
    with pytest.raises(ValueError):
        SudokuSpec.from_cells(36)


@pytest.mark.parametrize("spec", SPECS)
def test_generated_boards_valid_unique_deterministic(spec):
    boards = generate_solved_boards(150, spec, seed=3)
    assert boards.shape == (150, spec.n_cells) and boards.dtype == np.int64
    assert all(naive_valid(b, spec.box_rows, spec.box_cols) for b in boards)
    assert len({b.tobytes() for b in boards}) == 150
    np.testing.assert_array_equal(boards, generate_solved_boards(150, spec, seed=3))
    assert not np.array_equal(boards, generate_solved_boards(150, spec, seed=4))


def test_all_288_4x4_boards_reachable():
    boards = generate_solved_boards(288, SudokuSpec(2, 2), seed=0)
    assert len({b.tobytes() for b in boards}) == 288
    with pytest.raises(ValueError):
        generate_solved_boards(289, SudokuSpec(2, 2), seed=0)


def test_9x9_boards_varied():
    boards = generate_solved_boards(2000, SudokuSpec(3, 3), seed=1)
    assert is_valid(boards).all()
    # every digit appears in every cell across boards (no fixed structure leaks)
    for d in range(1, 10):
        assert ((boards == d).mean(axis=0) > 0.05).all()


def test_train_test_disjoint():
    train, test = train_test_boards(200, 50, SudokuSpec(2, 2), seed=7)
    assert train.shape == (200, 16) and test.shape == (50, 16)
    assert not ({b.tobytes() for b in train} & {b.tobytes() for b in test})


@pytest.mark.parametrize("low,high", [(4, 20), (1, 4), (0, 0), (81, 81)])
def test_corruption_changes_k_cells_to_wrong_digits(low, high):
    boards = generate_solved_boards(300, SudokuSpec(3, 3), seed=2)
    corrupted, wrong = corrupt_boards(boards, (low, high), seed=5)
    k = wrong.sum(axis=1)
    assert k.min() >= low and k.max() <= high
    if high > low:
        assert set(k) == set(range(low, high + 1))
    np.testing.assert_array_equal(corrupted != boards, wrong)
    assert corrupted.min() >= 1 and corrupted.max() <= 9
    c2, w2 = corrupt_boards(boards, (low, high), seed=5)
    np.testing.assert_array_equal(c2, corrupted)
    np.testing.assert_array_equal(w2, wrong)


def test_wrong_digits_uniform_over_others():
    boards = np.full((20000, 16), 1, dtype=np.int64)  # not a board, but exercises the draw
    corrupted, wrong = corrupt_boards(boards, (16, 16), seed=0)
    counts = np.bincount(corrupted.ravel(), minlength=5)[1:]
    assert counts[0] == 0
    assert np.allclose(counts[1:] / counts[1:].sum(), 1 / 3, atol=0.01)


@pytest.mark.parametrize("spec", [SudokuSpec(2, 2), SudokuSpec(3, 3), SudokuSpec(2, 3)])
def test_conflict_cells_matches_naive(spec):
    rng = np.random.default_rng(0)
    solved = generate_solved_boards(60, spec, seed=1)
    corrupted, _ = corrupt_boards(solved, (0, spec.n_cells // 3), seed=1)
    holes = rng.random(corrupted.shape) < 0.05
    boards = np.concatenate([solved, corrupted, np.where(holes, 0, corrupted),
                             rng.integers(0, spec.n + 1, size=(30, spec.n_cells))])
    got = conflict_cells(boards, spec)
    want = [naive_conflicts(b, spec.box_rows, spec.box_cols) for b in boards]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(is_valid(boards, spec), np.array(want) == 0)
    assert (got[:60] == 0).all()


def test_masked_cell_is_a_conflict():
    board = generate_solved_boards(1, SudokuSpec(2, 2), seed=0).copy()
    board[0, 5] = 0
    assert conflict_cells(board)[0] == 1 and not is_valid(board)[0]


def test_token_roundtrip():
    spec = SudokuSpec(3, 3)
    boards = generate_solved_boards(10, spec, seed=0)
    boards[:, ::7] = 0
    tokens = to_tokens(boards)
    assert tokens.min() == 0 and tokens.max() == spec.mask_id
    np.testing.assert_array_equal(tokens[boards == 0], spec.mask_id)
    np.testing.assert_array_equal(tokens[boards > 0], boards[boards > 0] - 1)
    np.testing.assert_array_equal(from_tokens(tokens), boards)


def test_frame_roundtrip(tmp_path):
    from rm_core.io import read_parquet, write_parquet
    from rm_core.tasks.sudoku import SCHEMA_DOC

    solved = generate_solved_boards(12, SudokuSpec(2, 2), seed=0)
    initial, wrong = corrupt_boards(solved, (1, 4), seed=0)
    df = boards_to_frame(solved, initial, split="test")
    assert list(df.columns) == ["board_id", "solution", "initial", "n_wrong", "split"]
    np.testing.assert_array_equal(df["n_wrong"], wrong.sum(axis=1))
    write_parquet(df, tmp_path / "b.parquet", schema_doc=SCHEMA_DOC)
    s, i, ids = frame_to_boards(read_parquet(tmp_path / "b.parquet"), split="test")
    np.testing.assert_array_equal(s, solved)
    np.testing.assert_array_equal(i, initial)
    np.testing.assert_array_equal(ids, np.arange(12))
    assert len(frame_to_boards(df, split="train")[0]) == 0
