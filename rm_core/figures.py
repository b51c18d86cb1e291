"""Every figure of the pipeline (matplotlib, PNG + PDF): test-time scaling curves (accuracy vs RM
turns, Eq. 1 applied T' times), learning curves (accuracy vs training steps) and revision
trajectories of Sudoku boards, text answers and image edits. The report stages compute what to
draw; this module only draws it."""

from __future__ import annotations

import textwrap
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


def learning_curve(curve: pd.DataFrame, stem: str | Path, title: str, metric: str = "exact",
                   names: dict | None = None, paper: dict | None = None) -> None:
    """Steps-to-accuracy: validation ``metric`` against training steps, one colour per variant and one
    line style per seed; the paper's number for a variant, when given, as a dotted line of its colour."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    styles = ["-", "--", "-.", ":"]
    for i, (variant, part) in enumerate(curve.groupby("variant", sort=False)):
        colour = f"C{i}"
        for j, (seed, run) in enumerate(part.groupby("seed")):
            run = run.sort_values("steps")
            ax.plot(run["steps"], run[metric], color=colour, ls=styles[j % len(styles)], marker="o", ms=2.5,
                    label=f"{(names or {}).get(variant, variant)}, seed {seed}")
        if paper and variant in paper:
            ax.axhline(paper[variant], color=colour, ls=":", lw=1)
    ax.set_xlabel("training steps")
    ax.set_ylabel(f"validation {metric} (%)")
    ax.set_title(title + ("\n(dotted: the paper's test number, same colour)" if paper else ""), fontsize=9)
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


def turn_panels(panels: list[dict], T: int, stem: str | Path, title: str) -> None:
    """Accuracy against RM turns, one panel per task. Each panel: ``title``, ``curves`` (a list of
    (label, turns, accuracy)) and ``refs`` (horizontal lines: (label, value, colour, linestyle))."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, turns, acc in panel["curves"]:
            ax.plot(turns, acc, marker="o", ms=3, label=label)
        for label, value, colour, ls in panel["refs"]:
            ax.axhline(value, color=colour, ls=ls, lw=1, label=label)
        ax.axvline(T, color="tab:red", ls=":", lw=1, label=f"T = {T} (training; Table 3)")
        ax.set_xlabel("RM turns at test time (0 = the first state)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(panel["title"], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    save(fig, stem)


def _literal(text: str) -> str:
    """Literal text for matplotlib (no mathtext)."""
    return text.replace("$", "\\$")


TOKEN_COLOURS = {"mask": "#92c5de", "remask": "#d6604d", "reveal": "#fddbc7", "keep": "#ffffff"}


def token_trajectory(lines: list[list[tuple[str, str]]], title: str, stem: str | Path, max_cells: int = 120) -> None:
    """A text answer's revision: one row per state, one cell per token (at most ``max_cells``; token
    text cut to 3 characters), coloured by its kind (mask, remask, reveal, keep)."""
    lines = [cells[:max_cells] for cells in lines]
    title = _literal(title if len(title) < 160 else title[:157] + "...")
    n, w = len(lines), max(len(x) for x in lines)
    fig, ax = plt.subplots(figsize=(0.16 * w + 1.2, 0.36 * n + 0.9))
    for r, cells in enumerate(lines):
        ax.text(-1.0, r, "start" if r == 0 else f"turn {r}", ha="right", va="center", fontsize=7)
        for c, (ch, k) in enumerate(cells):
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.45), 1, 0.9, color=TOKEN_COLOURS[k], lw=0))
            ax.text(c, r, _literal(ch[:3]), ha="center", va="center", fontsize=7 if len(ch) < 2 else 4,
                    family="monospace",
                    color="white" if k == "remask" else "black")
    ax.set_xlim(-5, w)
    ax.set_ylim(n - 0.5, -0.5)
    ax.axis("off")
    ax.set_title(title + "\n(blue: MASK; red: re-masked at this turn; peach: revealed at this turn)", fontsize=8)
    save(fig, stem)


def paint_masks(images: np.ndarray, codes: np.ndarray, f: int, colour=(146, 197, 222)) -> np.ndarray:
    """Paint the f x f patches whose code is -1 (MASK) in the MASK colour."""
    out = images.copy()
    for b in range(len(codes)):
        for r, c in zip(*np.nonzero(codes[b] < 0)):
            out[b, r * f:(r + 1) * f, c * f:(c + 1) * f] = colour
    return out


def image_grid(columns: list[tuple[str, np.ndarray]], row_labels: list[str], stem: str | Path, title: str) -> None:
    """A grid of images: one row per example (labelled by its instruction), one column per
    (name, images) pair, e.g. source, target, each model's edit and RM's turns."""
    n_rows = len(row_labels)
    fig, axes = plt.subplots(n_rows, len(columns), figsize=(1.25 * len(columns), 1.45 * n_rows), squeeze=False)
    for r in range(n_rows):
        for c, (name, imgs) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(imgs[r], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=7)
        axes[r, 0].set_ylabel("\n".join(textwrap.wrap(row_labels[r], 22)), fontsize=6, rotation=0, ha="right",
                              va="center")
    fig.suptitle(title, fontsize=8)
    save(fig, stem)
