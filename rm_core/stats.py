"""Confidence intervals of the tables: a two-level bootstrap over seeds and test items.

A model family (e.g. RM) is trained once per seed and every seed is scored on the same test items.
Its number in a table is the mean over seeds of a statistic of the per-item scores (a mean, or a
pooled quantity such as Table 1's pooled PSNR). One bootstrap replicate draws the seeds with
replacement and, independently, the items with replacement (the same draw for every seed, as the
items are shared), and recomputes that mean; the interval is the replicates' percentile interval.
With one seed it is the ordinary bootstrap over items.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd


def seed_mean(frames: Sequence[pd.DataFrame], stat: Callable[[pd.DataFrame], dict]) -> dict:
    """The mean over seeds of ``stat`` (a dict of numbers per frame)."""
    rows = [stat(f) for f in frames]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def bootstrap_interval(frames: Sequence[pd.DataFrame], stat: Callable[[pd.DataFrame], dict], reps: int = 1000,
                       level: float = 0.95, seed: int = 0) -> dict:
    """{key: (lo, hi)}: the ``level`` percentile interval of ``seed_mean`` over ``reps`` replicates
    that resample seeds and items. ``frames``: one per seed, rows in the same item order."""
    n = len(frames[0])
    if any(len(f) != n for f in frames):
        raise ValueError(f"every seed must score the same items: got {[len(f) for f in frames]} rows")
    rng = np.random.default_rng(seed)
    reps_out: dict[str, list[float]] = {}
    for _ in range(reps):
        seeds = rng.integers(0, len(frames), len(frames))
        items = rng.integers(0, n, n)
        for k, v in seed_mean([frames[s].iloc[items] for s in seeds], stat).items():
            reps_out.setdefault(k, []).append(v)
    a = (1 - level) / 2
    return {k: (float(np.nanquantile(v, a)), float(np.nanquantile(v, 1 - a))) for k, v in reps_out.items()}
