"""Table 2 metrics on hand-built trajectories with known counts, and against a naive loop."""

import numpy as np
import pytest
import torch

from rm_core.metrics.sudoku import board_metrics, summarize
from rm_core.tasks.sudoku import SudokuSpec, conflict_cells, from_tokens, generate_solved_boards, to_tokens

torch.set_num_threads(1)
SPEC = SudokuSpec(2, 2)
M = SPEC.mask_id


def wrong_id(tok, k=1):
    return (tok + k) % SPEC.n


@pytest.fixture
def case():
    sol = to_tokens(generate_solved_boards(3, SPEC, seed=0))
    T = 4
    traj = np.repeat(sol[:, None], T + 1, axis=1).copy()
    # board 0: cell 0 wrong w -> M M -> w (replay) -> M (to the end: event, no replay);
    # cell 1 wrong -> M -> correct (event, no replay); cell 2 correct -> M -> correct.
    w0, w1 = wrong_id(sol[0, 0]), wrong_id(sol[0, 1], 2)
    traj[0, :, 0] = [w0, M, M, w0, M]
    traj[0, :, 1] = [w1, M, sol[0, 1], sol[0, 1], sol[0, 1]]
    traj[0, :, 2] = [sol[0, 2], M, sol[0, 2], sol[0, 2], sol[0, 2]]
    # board 1: untouched solved board.
    # board 2: cell 3 wrong a -> b (direct overwrite) -> M -> a -> a: the event's previous wrong
    # digit is b, revealed a: no replay. Cell 5 correct -> M -> wrong (broken correct cell).
    a, b = wrong_id(sol[2, 3], 1), wrong_id(sol[2, 3], 2)
    traj[2, :, 3] = [a, b, M, a, a]
    c = wrong_id(sol[2, 5])
    traj[2, :, 5] = [sol[2, 5], sol[2, 5], M, c, c]
    return sol, traj[:, 0].copy(), traj


def test_hand_built_counts(case):
    sol, init, traj = case
    df = board_metrics(sol, init, traj, M)
    assert list(df["n_wrong_initial"]) == [2, 0, 1]
    # per cell (the paper's definition): board 0 re-masks cells 0 and 1 (cell 0 twice), cell 0
    # replays once; per event: 3 re-masks, 1 replay.
    assert list(df["n_remasked_wrong"]) == [2, 0, 1]
    assert list(df["n_replay"]) == [1, 0, 0]
    assert list(df["n_remask_events"]) == [3, 0, 1]
    assert list(df["n_replay_events"]) == [1, 0, 0]
    assert list(df["n_changed_correct"]) == [1, 0, 1]
    assert list(df["n_broken_correct"]) == [0, 0, 1]
    assert list(df["exact"]) == [False, True, False]
    assert list(df["valid"]) == [False, True, False]
    assert list(df["turns_to_fixed_point"]) == [4, 0, 3]
    # board 0 ends with one MASK cell (a conflict cell); board 2 has two wrong digits.
    assert df["conflict_cells"][0] == 1
    assert df["conflict_cells"][2] == conflict_cells(from_tokens(traj[2:3, -1]))[0] > 0
    s = summarize(df)
    assert s["exact_acc"] == pytest.approx(100 / 3)
    assert s["valid_rate"] == pytest.approx(100 / 3)
    assert s["replay_mistake"] == pytest.approx(100 * 1 / 3)  # 1 of 3 re-masked wrong cells
    assert s["conflict_cells_per_board"] == pytest.approx(df["conflict_cells"].mean())
    assert (s["n_boards"], s["n_remasked_wrong"], s["n_replay"]) == (3, 3, 1)


def test_no_events_gives_zero_replay(case):
    sol, _, _ = case
    traj = np.repeat(sol[:, None], 3, axis=1)
    s = summarize(board_metrics(sol, sol, traj, M))
    assert s["replay_mistake"] == 0.0 and s["exact_acc"] == 100.0 and s["valid_rate"] == 100.0


def test_initial_must_match_trajectory(case):
    sol, init, traj = case
    with pytest.raises(ValueError):
        board_metrics(sol, sol, traj, M)


def naive_events(sol, traj):
    """Per board (events, replays, cells re-masked, cells replayed) by walking each cell's sequence."""
    out = []
    for b in range(traj.shape[0]):
        ev = rp = cells = cells_rp = 0
        for i in range(traj.shape[2]):
            seq = list(traj[b, :, i])
            cell_ev = cell_rp = False
            for t in range(len(seq) - 1):
                if seq[t] != M and seq[t] != sol[b, i] and seq[t + 1] == M:
                    ev += 1
                    cell_ev = True
                    later = [v for v in seq[t + 1:] if v != M]
                    if later and later[0] == seq[t]:
                        rp += 1
                        cell_rp = True
            cells += cell_ev
            cells_rp += cell_rp
        out.append((ev, rp, cells, cells_rp))
    return out


def test_events_match_naive_on_random_trajectories():
    rng = np.random.default_rng(0)
    sol = to_tokens(generate_solved_boards(40, SPEC, seed=3))
    traj = rng.integers(0, M + 1, size=(40, 7, SPEC.n_cells))
    traj[rng.random(traj.shape) < 0.4] = M
    df = board_metrics(sol, traj[:, 0], traj, M)
    naive = naive_events(sol, traj)
    assert list(df["n_remask_events"]) == [n[0] for n in naive]
    assert list(df["n_replay_events"]) == [n[1] for n in naive]
    assert list(df["n_remasked_wrong"]) == [n[2] for n in naive]
    assert list(df["n_replay"]) == [n[3] for n in naive]
    final = traj[:, -1]
    np.testing.assert_array_equal(df["exact"], (final == sol).all(axis=1))
    last_change = [max([t for t in range(1, 7) if (traj[b, t] != traj[b, t - 1]).any()], default=0)
                   for b in range(40)]
    assert list(df["turns_to_fixed_point"]) == last_change


def test_replay_mistake_is_per_cell_as_the_paper_defines():
    """Paper: of the erroneous cells that were re-masked, the share later decoded back to their
    previous wrong digit. One cell re-masked and replayed three times, three cells re-masked and
    fixed: 1 of 4 cells (25 %), not 3 of 6 events (50 %)."""
    sol = to_tokens(generate_solved_boards(1, SPEC, seed=5))
    w = wrong_id(sol[0, 0])
    traj = np.repeat(sol[:, None], 7, axis=1).copy()
    traj[0, :, 0] = [w, M, w, M, w, M, w]
    for i in (1, 2, 3):
        traj[0, :, i] = [wrong_id(sol[0, i]), M] + [sol[0, i]] * 5
    s = summarize(board_metrics(sol, traj[:, 0], traj, M))
    assert (s["n_remasked_wrong"], s["n_replay"]) == (4, 1)
    assert s["replay_mistake"] == pytest.approx(25.0)
