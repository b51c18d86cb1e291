import json

import numpy as np
import pandas as pd
import pytest
from skimage.metrics import structural_similarity

from rm_core.metrics.image_edit import (
    DEFAULT_PSNR_CAP,
    aggregate,
    edit_metrics,
    mini_instruction_check,
    mini_instruction_report,
    vqascore,
    vqascore_missing,
)
from rm_core.tasks.image.scenes import SceneSpec, random_edit, random_scene, render


def _img(seed, h=32, w=32):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _box(h=32, w=32, r0=8, r1=20, c0=4, c1=16):
    m = np.zeros((h, w), bool)
    m[r0:r1, c0:c1] = True
    return m


def test_identical_images():
    src, region = _img(0), _box()
    m = edit_metrics(src, src.copy(), region)
    assert np.isnan(m["precision"]) and m["n_changed"] == 0
    assert m["coverage"] == 0.0 and m["mae_rgb"] == 0.0 and m["mse"] == 0.0
    assert m["psnr"] == DEFAULT_PSNR_CAP
    assert m["ssim"] == pytest.approx(1.0)


def test_change_only_inside_region():
    src, region = _img(1), _box()
    edited = src.copy()
    edited[region] = src[region] ^ 128  # every channel moves by 128 levels
    m = edit_metrics(src, edited, region)
    assert m["precision"] == 100.0 and m["coverage"] == 100.0
    assert m["mae_rgb"] == 0.0 and m["psnr"] == DEFAULT_PSNR_CAP
    assert m["ssim"] == pytest.approx(1.0)  # region filled from the source: no leakage


def test_partial_coverage_and_outside_change():
    src, region = _img(2), _box()
    edited = src.copy()
    edited[8:14, 4:16] = src[8:14, 4:16] ^ 128  # half the region (rows 8..13 of 8..19)
    m = edit_metrics(src, edited, region)
    assert m["precision"] == 100.0 and m["coverage"] == pytest.approx(50.0)
    out = src.copy()
    out[0:4, 20:30] = src[0:4, 20:30] ^ 128
    m = edit_metrics(src, out, region)
    assert m["precision"] == 0.0 and m["coverage"] == 0.0 and m["mae_rgb"] > 0
    assert m["psnr"] < DEFAULT_PSNR_CAP and m["ssim"] < 1.0


def test_threshold_is_strict():
    src = np.full((16, 16, 3), 100, np.uint8)
    edited = src.copy()
    edited[0, 0, 1] = 110  # exactly the threshold: unchanged
    edited[1, 1, 2] = 111  # above: changed
    region = np.zeros((16, 16), bool)
    region[1, 1] = True
    m = edit_metrics(src, edited, region, threshold=10)
    assert m["n_changed"] == 1 and m["precision"] == 100.0 and m["coverage"] == 100.0


def test_against_naive_formulas():
    src, region = _img(3), _box()
    edited = np.clip(src.astype(int) + np.random.default_rng(4).integers(-30, 31, src.shape), 0, 255).astype(np.uint8)
    m = edit_metrics(src, edited, region, threshold=10)
    d = edited.astype(float) - src.astype(float)
    changed = np.abs(d).max(-1) > 10
    assert m["precision"] == pytest.approx(100 * (changed & region).sum() / changed.sum())
    assert m["coverage"] == pytest.approx(100 * (changed & region).sum() / region.sum())
    outside = d[~region]
    assert m["mae_rgb"] == pytest.approx(np.abs(outside).mean())
    assert m["psnr"] == pytest.approx(10 * np.log10(255**2 / (outside**2).mean()))
    # SSIM with an empty region is the mean of skimage's full map
    m0 = edit_metrics(src, edited, np.zeros_like(region))
    _, smap = structural_similarity(src, edited, channel_axis=-1, data_range=255, full=True)
    assert m0["ssim"] == pytest.approx(smap.mean())


def test_whole_image_region_and_aggregate():
    src = _img(5)
    m = edit_metrics(src, src ^ 64, np.ones((32, 32), bool))
    assert m["precision"] == 100.0 and np.isnan(m["mae_rgb"]) and np.isnan(m["ssim"])
    rows = pd.DataFrame([edit_metrics(src, src.copy(), _box()), edit_metrics(src, src ^ 128, _box())])
    agg = aggregate(rows)
    assert agg["n"] == 2 and agg["n_precision_undefined"] == 1
    assert agg["precision"] == pytest.approx(rows.precision.iloc[1])
    assert agg["psnr_pooled"] == pytest.approx(10 * np.log10(255**2 / rows.mse.mean()))


def test_mini_instruction_check():
    spec = SceneSpec()
    rng = np.random.default_rng(0)
    for kind in ("add", "remove", "recolour", "move", "replace", "background"):
        scene = random_scene(rng, spec)
        _, after, _ = random_edit(scene, kind, rng, spec)
        target = render(after, spec)
        assert mini_instruction_check(json.dumps(after), target)
        assert not mini_instruction_check(after, render(scene, spec))  # edit not done
        noisy = np.clip(target.astype(int) + rng.integers(-6, 7, target.shape), 0, 255).astype(np.uint8)
        assert mini_instruction_check(after, noisy)  # robust to small VQ-like noise
    extra = target.copy()
    extra[:8, :8] = (235, 235, 235) if after["background"] != "black" else (220, 50, 50)
    rep = mini_instruction_report(after, extra)
    assert not rep["ok"]


def test_vqascore_missing_is_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    missing = vqascore_missing(tmp_path)
    assert any("zhiqiulin/clip-flant5-xxl" in m for m in missing)
    with pytest.raises(RuntimeError, match="clip-flant5-xxl"):
        vqascore([_img(0)], ["a photo"], tmp_path)
