"""rm_core.stats: the two-level bootstrap of the tables' intervals, against a naive loop."""

import math

import numpy as np
import pandas as pd
import pytest

from rm_core.stats import bootstrap_interval, seed_mean


def _quantile(xs, q):
    """Linear-interpolation quantile (numpy's default), written out."""
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _naive(values, reps, level, seed):
    """values[s][i]: seed s, item i. The mean over drawn seeds of the mean over drawn items."""
    rng = np.random.default_rng(seed)
    S, n = len(values), len(values[0])
    out = []
    for _ in range(reps):
        seeds = [int(s) for s in rng.integers(0, S, S)]
        items = [int(i) for i in rng.integers(0, n, n)]
        out.append(sum(sum(values[s][i] for i in items) / n for s in seeds) / S)
    a = (1 - level) / 2
    return _quantile(out, a), _quantile(out, 1 - a)


def test_matches_a_naive_loop():
    g = np.random.default_rng(5)
    values = [list(g.normal(m, 1.0, 30)) for m in (0.0, 0.5, 2.0)]
    frames = [pd.DataFrame({"x": v}) for v in values]
    got = bootstrap_interval(frames, lambda f: {"x": float(f["x"].mean())}, reps=300, level=0.9, seed=11)["x"]
    want = _naive(values, 300, 0.9, 11)
    assert got == pytest.approx(want, abs=1e-12)


def test_seed_spread_widens_the_interval_and_items_narrow_it():
    g = np.random.default_rng(0)
    stat = lambda f: {"x": float(f["x"].mean())}  # noqa: E731
    same = [pd.DataFrame({"x": g.normal(0, 1, 200)})] * 3
    apart = [pd.DataFrame({"x": f["x"] + off}) for f, off in zip(same, (-1.0, 0.0, 1.0))]
    w = lambda iv: iv[1] - iv[0]  # noqa: E731
    w_same = w(bootstrap_interval(same, stat, reps=400)["x"])
    w_apart = w(bootstrap_interval(apart, stat, reps=400)["x"])
    assert w_apart > 5 * w_same  # seed-to-seed spread of 1.0 dominates the item noise (~0.14)
    small = [pd.DataFrame({"x": g.normal(0, 1, 50)})]
    large = [pd.DataFrame({"x": g.normal(0, 1, 800)})]
    ratio = w(bootstrap_interval(small, stat, reps=400)["x"]) / w(bootstrap_interval(large, stat, reps=400)["x"])
    assert 2.5 < ratio < 6  # ~ sqrt(800 / 50) = 4
    lo, hi = bootstrap_interval(apart, stat, reps=400)["x"]
    assert lo < seed_mean(apart, stat)["x"] < hi


def test_seeds_must_score_the_same_items():
    frames = [pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": [1.0]})]
    with pytest.raises(ValueError, match="same items"):
        bootstrap_interval(frames, lambda f: {"x": float(f["x"].mean())})
