"""Figures (matplotlib, PNG + PDF): revision trajectories and test-time scaling curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path  # noqa: E402

COLOURS = {"correct": "#d9f0d3", "wrong": "#f4a582", "mask": "#92c5de", "fixed": "#1b7837"}


def save(fig, stem: str | Path) -> None:
    """Save ``fig`` as stem.png and stem.pdf, atomically."""
    stem = Path(stem)
    for ext in ("png", "pdf"):
        with atomic_path(stem.with_suffix(f".{ext}")) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
    plt.close(fig)


def scaling_curve(df: pd.DataFrame, metric: str, stem: str | Path, title: str, label_col: str = "variant",
                  names: dict | None = None, mark_turn: int | None = None, ylabel: str | None = None) -> None:
    """Accuracy (or any metric) against the number of RM turns, one line per model/variant."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for key, part in df.groupby(label_col, sort=False):
        part = part.sort_values("turns")
        ax.plot(part["turns"], part[metric], marker="o", ms=3, label=(names or {}).get(key, key))
    if mark_turn:
        ax.axvline(mark_turn, color="grey", ls=":", lw=1, label=f"T = {mark_turn} (training)")
    ax.set_xlabel("RM turns at test time")
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, stem)


def sudoku_trajectory(traj: np.ndarray, solution: np.ndarray, n: int, mask_id: int, stem: str | Path, title: str) -> None:
    """One board's revision: a panel per turn; wrong digits orange, MASK blue, correct green.

    traj: (turns+1, n*n) token ids; solution: (n*n,) token ids. Cells that changed at a
    turn are outlined.
    """
    steps = traj.shape[0]
    fig, axes = plt.subplots(1, steps, figsize=(1.6 * steps, 1.9))
    axes = np.atleast_1d(axes)
    box = int(round(n ** 0.5)) if int(round(n ** 0.5)) ** 2 == n else None
    for s, ax in enumerate(axes):
        board = traj[s].reshape(n, n)
        img = np.zeros((n, n, 3))
        for r in range(n):
            for c in range(n):
                v = board[r, c]
                key = "mask" if v == mask_id else ("correct" if v == solution[r * n + c] else "wrong")
                img[r, c] = matplotlib.colors.to_rgb(COLOURS[key])
                if v != mask_id:
                    ax.text(c, r, str(int(v) + 1), ha="center", va="center", fontsize=7 if n > 4 else 10)
                if s > 0 and traj[s - 1][r * n + c] != v:
                    ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="black", lw=1.2))
        ax.imshow(img)
        if box:
            for k in range(0, n + 1, box):
                ax.axhline(k - 0.5, color="k", lw=0.8)
                ax.axvline(k - 0.5, color="k", lw=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("input" if s == 0 else f"turn {s}", fontsize=8)
    fig.suptitle(title + "  (orange: wrong digit, blue: MASK, green: correct; outlined: changed this turn)", fontsize=8)
    save(fig, stem)
