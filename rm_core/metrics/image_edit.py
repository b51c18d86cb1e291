"""Table 1 metrics (image editing), per example, plus the mini-scale instruction check.

Paper, Table 1: Edit Precision = % of changed pixels inside the target edit region;
Edit Coverage = % of the target region that changed; MAE-RGB, PSNR, SSIM between the
edited and the input image on the non-target region; VQAScore (Lin et al., ECCV 2024).
Our settings (the paper gives none):
- changed pixel: max over RGB of |edited - source| > ``threshold`` levels (0..255 scale,
  default 10, strict >).
- Precision is NaN when nothing changed (undefined; ``aggregate`` reports the count and
  averages over the defined ones); Coverage is NaN for an empty region.
- MAE-RGB: mean |edited - source| over non-target pixels and the 3 channels (0..255).
- PSNR = 10 log10(255^2 / MSE) over the same values, capped at ``psnr_cap`` dB (default
  100) when MSE = 0; ``aggregate`` also reports the PSNR of the pooled MSE.
- SSIM: skimage.metrics.structural_similarity (channel_axis=-1, data_range=255, 7x7
  uniform window, K1/K2 defaults, full map incl. reflect-padded borders) between the
  source and the edited image *with the target region filled by the source pixels*, so
  that edits inside the region cannot leak into windows around it; the map (channel
  mean) is averaged over non-target pixels only.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

DEFAULT_THRESHOLD = 10.0
DEFAULT_PSNR_CAP = 100.0


def changed_pixels(source: np.ndarray, edited: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """bool (H, W): max_c |edited - source| > threshold."""
    return np.abs(edited.astype(np.int16) - source.astype(np.int16)).max(axis=-1) > threshold


def _ssim_outside(source: np.ndarray, edited: np.ndarray, region: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    filled = edited.copy()
    filled[region] = source[region]
    win = min(7, min(source.shape[:2]) - (1 - min(source.shape[:2]) % 2))
    _, smap = structural_similarity(source, filled, channel_axis=-1, data_range=255, full=True, win_size=win)
    return float(smap.mean(axis=-1)[~region].mean())


def edit_metrics(
    source: np.ndarray,
    edited: np.ndarray,
    region: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    psnr_cap: float = DEFAULT_PSNR_CAP,
) -> dict:
    """Table 1 metrics of one example: uint8 (H, W, 3) source and edited, bool (H, W) region."""
    source, edited = np.asarray(source, np.uint8), np.asarray(edited, np.uint8)
    region = np.asarray(region, bool)
    if source.shape != edited.shape or source.shape[:2] != region.shape:
        raise ValueError(f"shape mismatch: source {source.shape}, edited {edited.shape}, region {region.shape}")
    changed = changed_pixels(source, edited, threshold)
    n_changed, n_region, hit = int(changed.sum()), int(region.sum()), int((changed & region).sum())
    outside = ~region
    out = {
        "precision": 100.0 * hit / n_changed if n_changed else float("nan"),
        "coverage": 100.0 * hit / n_region if n_region else float("nan"),
        "n_changed": n_changed,
        "n_region": n_region,
        "n_outside": int(outside.sum()),
    }
    if not outside.any():
        return {**out, "mae_rgb": float("nan"), "mse": float("nan"), "psnr": float("nan"), "ssim": float("nan")}
    diff = edited[outside].astype(np.float64) - source[outside].astype(np.float64)
    mse = float((diff**2).mean())
    psnr = psnr_cap if mse == 0 else min(psnr_cap, 10 * np.log10(255.0**2 / mse))
    return {**out, "mae_rgb": float(np.abs(diff).mean()), "mse": mse, "psnr": float(psnr), "ssim": _ssim_outside(source, edited, region)}


def aggregate(rows: pd.DataFrame, psnr_cap: float = DEFAULT_PSNR_CAP) -> dict:
    """Means over examples (NaN-skipping), the undefined-precision count and pooled PSNR."""
    mean = lambda c: float(np.nanmean(rows[c])) if rows[c].notna().any() else float("nan")  # noqa: E731
    mse = mean("mse")
    return {
        "precision": mean("precision"),
        "coverage": mean("coverage"),
        "mae_rgb": mean("mae_rgb"),
        "psnr": mean("psnr"),
        "psnr_pooled": psnr_cap if mse == 0 else float(min(psnr_cap, 10 * np.log10(255.0**2 / mse))),
        "ssim": mean("ssim"),
        "n": int(len(rows)),
        "n_precision_undefined": int(rows["precision"].isna().sum()),
    }


def region_stats(codes: np.ndarray, traj: list | None, src: np.ndarray, tgt: np.ndarray) -> dict:
    """Code-level shares of the edit region (target code != source code) over B edits.

    ``codes`` (B, n) are the final codes, ``traj`` the RM trajectories ((T+1)*n each, -1 = MASK)
    or None. Region shares: ``changed`` (final != source), ``exact`` (final == target),
    ``remask_t1`` / ``remask_any`` (MASK at the first / any turn), ``restored`` (re-masked and
    revealed back to the source code); ``outside``: share of non-region codes changed;
    ``unchanged_edits``: share of edits whose final codes equal the source codes. Used by the
    coverage and failure diagnoses in ``bench/`` (README, image section)."""
    region = src != tgt
    out = {"changed": float((codes != src)[region].mean()), "exact": float((codes == tgt)[region].mean()),
           "outside": float((codes != src)[~region].mean()),
           "unchanged_edits": float((codes == src).all(1).mean())}
    if traj:
        n = src.shape[1]
        states = np.stack([np.asarray(t).reshape(-1, n) for t in traj])  # (B, T+1, n)
        masked = states[:, 1:] < 0
        ever = masked.any(1)
        out["remask_t1"] = float(masked[:, 0][region].mean())
        out["remask_any"] = float(ever[region].mean())
        out["restored"] = float((ever & (codes == src))[region].mean())
    return out


def mini_instruction_report(scene_after_expected, edited_image: np.ndarray, spec=None, max_cell_mae: float = 24.0) -> dict:
    """Read the edited mini scene back (scenes.parse_scene) and compare with the expected one.

    ok = same background and the same objects (shape, colour, cell) — so the requested
    change happened at the right place and nothing else changed — and every cell is
    within ``max_cell_mae`` levels of its best template (no unreadable garbage).
    """
    from rm_core.tasks.image.scenes import SceneSpec, canonical, parse_scene

    expected = json.loads(scene_after_expected) if isinstance(scene_after_expected, str) else scene_after_expected
    spec = spec or SceneSpec(size=expected.get("size", 32), cell=expected.get("cell", 8))
    parsed, errs = parse_scene(edited_image, spec)
    same = canonical(parsed) == canonical(expected)
    ok = bool(same and errs.max() <= max_cell_mae)
    return {"ok": ok, "same_scene": same, "max_cell_mae": float(errs.max()), "parsed": canonical(parsed)}


def mini_instruction_check(scene_after_expected, edited_image: np.ndarray, spec=None, max_cell_mae: float = 24.0) -> bool:
    """True iff the edited image shows exactly the expected scene (see the report)."""
    return mini_instruction_report(scene_after_expected, edited_image, spec, max_cell_mae)["ok"]


# VQAScore (paper scale) -------------------------------------------------------------

VQA_MODELS = {
    "clip-flant5-xxl": ("zhiqiulin/clip-flant5-xxl", "google/flan-t5-xxl", "openai/clip-vit-large-patch14-336"),
    "clip-flant5-xl": ("zhiqiulin/clip-flant5-xl", "google/flan-t5-xl", "openai/clip-vit-large-patch14-336"),
}


def _hf_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def _cached(repo: str, dirs: Sequence[Path]) -> bool:
    name = "models--" + repo.replace("/", "--")
    return any(any((d / name / "snapshots").glob("*")) for d in dirs if (d / name / "snapshots").is_dir())


def vqascore_missing(cache_dir, model: str = "clip-flant5-xxl") -> list[str]:
    """What VQAScore still needs locally: the t2v_metrics package and hub-cache snapshots
    of the model, its tokenizer and its vision tower (in ``cache_dir`` or the HF cache)."""
    if model not in VQA_MODELS:
        raise ValueError(f"unknown VQAScore model {model!r}; known {sorted(VQA_MODELS)}")
    missing = []
    try:
        import t2v_metrics  # noqa: F401
    except ImportError:
        missing.append("package t2v_metrics (the 3.0 legacy line that still has clip-flant5; `pip install t2v-metrics==3.0`)")
    dirs = [Path(cache_dir), _hf_cache()]
    for repo in VQA_MODELS[model]:
        if not _cached(repo, dirs):
            missing.append(f"weights {repo} (hub snapshot models--{repo.replace('/', '--')} in {dirs[0]} or {dirs[1]})")
    return missing


@lru_cache(maxsize=2)
def _scorer(model: str, device: str, cache_dir: str):
    import t2v_metrics

    return t2v_metrics.VQAScore(model=model, device=device, cache_dir=cache_dir)


def vqascore(images, texts: Sequence[str], cache_dir, model: str = "clip-flant5-xxl", device: str = "cuda") -> np.ndarray:
    """P('Yes') that image i shows text i, for paired lists; images are paths or uint8 arrays.

    Runs offline (HF_HUB_OFFLINE=1); raises RuntimeError naming every missing piece.
    """
    missing = vqascore_missing(cache_dir, model)
    if missing:
        raise RuntimeError("VQAScore unavailable; missing: " + "; ".join(missing))
    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} texts")
    os.environ["HF_HUB_OFFLINE"] = "1"
    scorer = _scorer(model, device, str(cache_dir))
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (img, txt) in enumerate(zip(images, texts)):
            if not isinstance(img, (str, os.PathLike)):
                from PIL import Image

                path = os.path.join(tmp, f"{i}.png")
                Image.fromarray(np.asarray(img, np.uint8)).save(path)
                img = path
            scores.append(float(scorer(images=[str(img)], texts=[txt]).reshape(-1)[0]))
    return np.asarray(scores)
