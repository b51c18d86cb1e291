"""Paper-scale data: ImgEdit single-turn pairs for Table 1 (85,000 train / 1,700 held out).

Input: the single-turn parquets (``input_images``, ``output_images``, ``prompt``; paths
relative to the unpacked tars) and the unpacked sample folders (``original.png``,
``result.png``, ``mask.png``). See shared/notes/dimoo-imgedit-format.md §5.

- Rows with exactly one input and one output image are kept (``reference_*`` pairs with
  two inputs are not single-source edits).
- Split by source image: the source key is the sample folder name (ImgEdit names it after
  the source photo, e.g. ``00094_00030_000304748``; the file stem when the path has no
  folder). Keys are shuffled with ``seed``; test is filled first, then train, from
  disjoint keys, so no source image is on both sides. Unreadable rows are skipped.
- Crop (ours, fixing the official pitfall): DiMOO's ``var_center_crop`` size choice
  (``generate_crop_size_list``, best aspect match) and resize (BOX halving, then
  BICUBIC), but one *centred* offset shared by source, target and mask (the official
  code draws a random offset per image). A target whose size differs from the source
  is first resized to the source size (BICUBIC).
- Edit region: ``mask.png`` when present — INVERTED, the edit region is black (< 128) —
  resized NEAREST to the source size and cropped alike. Otherwise the pixel-difference
  rule :class:`DiffRule` on the cropped pair: max_c |target - source| > threshold, closing
  with a disk (skimage isotropic_closing), 8-connected components under ``min_size`` px
  removed, holes up to ``max_hole`` px filled.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from PIL import Image

SCHEMA_DOC = """\
id: str, '<parquet stem>-<row>' (unique)
split: str, 'train', 'val' or 'test' (split by source_key)
source_key: str, source image identity (sample folder name, or file stem)
parquet: str, parquet file stem (e.g. add_part0)
row: int, row index in that parquet
edit_type: str, parquet stem without '_partN' (add, remove, replace, background, ...)
instruction: str, the ImgEdit prompt
source_rel: str, input image path as written in the parquet
target_rel: str, output image path as written in the parquet
source_png: str, cropped source image, path relative to the output folder
target_png: str, cropped target image, relative path
region_png: str, edit region 0/255 (255 = edit), relative path
region_source: str, 'mask' (from mask.png, inverted) or 'diff' (DiffRule)
height: int, crop height in px
width: int, crop width in px
orig_height: int, source image height before cropping
orig_width: int, source image width before cropping
crop_left: int, crop offset in the resized source (shared by target and mask)
crop_top: int, crop offset (rows)
region_frac: float, fraction of crop pixels in the edit region"""

DEFAULT_PREFIX_ALIAS = {"replace": "results"}  # replace_part0: parquet 'replace/', tar top 'results/'


@dataclass(frozen=True)
class DiffRule:
    """Edit region from pixel differences (ours; ImgEdit has no canonical rule)."""

    threshold: float = 24.0  # levels of max_c |target - source|, 0..255
    close_radius: int = 3  # px, binary closing with a disk
    min_size: int = 64  # px, components smaller than this are dropped
    max_hole: int = 64  # px, holes up to this area are filled

    def region(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        from skimage.morphology import isotropic_closing

        diff = np.abs(target.astype(np.int16) - source.astype(np.int16)).max(axis=-1) > self.threshold
        if self.close_radius > 0:
            diff = isotropic_closing(diff, self.close_radius)
        if self.min_size > 0:
            diff = _drop_small(diff, self.min_size)
        if self.max_hole > 0:
            diff = ~_drop_small(~diff, self.max_hole + 1)
        return diff


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Remove 8-connected components of fewer than ``min_size`` pixels."""
    from scipy import ndimage

    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def crop_size_list(num_patches: int = (512 // 32) ** 2, patch_size: int = 32, max_ratio: float = 4.0) -> list[tuple[int, int]]:
    """DiMOO's ``generate_crop_size_list``: (w, h) multiples of patch_size, w*h <= budget."""
    sizes, wp, hp = [], num_patches, 1
    while wp > 0:
        if max(wp, hp) / min(wp, hp) <= max_ratio:
            sizes.append((wp * patch_size, hp * patch_size))
        if (hp + 1) * wp <= num_patches:
            hp += 1
        else:
            wp -= 1
    return sizes


def choose_crop_size(w: int, h: int, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """DiMOO's ``var_center_crop`` choice (top-1): the size keeping the most of the image."""
    rem = [min(cw / w, ch / h) / max(cw / w, ch / h) for cw, ch in sizes]
    return max(zip(rem, sizes))[1]


def _resize_like_dimoo(im: Image.Image, crop: tuple[int, int]) -> Image.Image:
    while im.size[0] >= 2 * crop[0] and im.size[1] >= 2 * crop[1]:
        im = im.resize(tuple(x // 2 for x in im.size), resample=Image.BOX)
    scale = max(crop[0] / im.size[0], crop[1] / im.size[1])
    return im.resize(tuple(round(x * scale) for x in im.size), resample=Image.BICUBIC)


def crop_pair(source: Image.Image, target: Image.Image, mask: Optional[Image.Image], sizes: Sequence[tuple[int, int]]):
    """Same-offset centre crop -> (src uint8, tgt uint8, mask-region bool or None, info)."""
    source, target = source.convert("RGB"), target.convert("RGB")
    if target.size != source.size:
        target = target.resize(source.size, resample=Image.BICUBIC)
    cw, ch = choose_crop_size(*source.size, sizes)
    src, tgt = _resize_like_dimoo(source, (cw, ch)), _resize_like_dimoo(target, (cw, ch))
    left, top = (src.size[0] - cw) // 2, (src.size[1] - ch) // 2
    box = (left, top, left + cw, top + ch)
    region = None
    if mask is not None:
        m = mask.convert("L")
        if m.size != source.size:
            m = m.resize(source.size, resample=Image.NEAREST)
        region = np.asarray(m.resize(src.size, resample=Image.NEAREST).crop(box)) < 128  # inverted mask
    info = {"orig_width": source.size[0], "orig_height": source.size[1], "crop_left": left, "crop_top": top, "width": cw, "height": ch}
    return np.asarray(src.crop(box)), np.asarray(tgt.crop(box)), region, info


def read_singleturn(parquet_paths: Sequence) -> pd.DataFrame:
    """Single-input single-output rows -> [parquet, row, edit_type, source_rel, target_rel, instruction]."""
    frames = []
    for p in parquet_paths:
        df = pd.read_parquet(p, columns=["input_images", "output_images", "prompt"])
        keep = df.input_images.map(len).eq(1) & df.output_images.map(len).eq(1)
        stem = Path(p).stem
        frames.append(
            pd.DataFrame(
                {
                    "parquet": stem,
                    "row": np.flatnonzero(keep.to_numpy()),
                    "edit_type": re.sub(r"_part\d+$", "", stem),
                    "source_rel": df.input_images[keep].map(lambda x: str(x[0])).to_numpy(),
                    "target_rel": df.output_images[keep].map(lambda x: str(x[0])).to_numpy(),
                    "instruction": df.prompt[keep].astype(str).to_numpy(),
                }
            )
        )
    cols = ["parquet", "row", "edit_type", "source_rel", "target_rel", "instruction"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def source_key(rel: str) -> str:
    """The sample folder name of a relative image path (its file stem if it has no folder)."""
    p = Path(rel)
    return p.parent.name if p.parent.name else p.stem


class Resolver:
    """Parquet path -> file under the unpack root, coping with the tars' folder names.

    Tries root/rel; the aliased first component (``prefix_alias``); root/<stem>/rel and,
    for action parquets (bare file names), root/partN/rel; finally a lazily built index of
    the files under root by their last two path components.
    """

    def __init__(self, root, prefix_alias: Optional[dict] = None):
        self.root = Path(root)
        self.alias = DEFAULT_PREFIX_ALIAS if prefix_alias is None else prefix_alias
        self._index: Optional[dict] = None

    def _tail_index(self) -> dict:
        if self._index is None:
            self._index = {}
            for dirpath, _, files in os.walk(self.root):
                for f in files:
                    full = Path(dirpath) / f
                    self._index.setdefault((full.parent.name, f), full)
        return self._index

    def resolve(self, rel: str, stem: str = "") -> Optional[Path]:
        p = Path(rel)
        cands = [self.root / p]
        if p.parts and p.parts[0] in self.alias:
            cands.append(self.root / self.alias[p.parts[0]] / Path(*p.parts[1:]))
        if stem:
            cands.append(self.root / stem / p)
            m = re.match(r"action_(part\d+)$", stem)
            if m:
                cands.append(self.root / m.group(1) / p)
        for c in cands:
            if c.is_file():
                return c
        return self._tail_index().get((p.parent.name, p.name))


def _process(job) -> Optional[dict]:
    """Worker: crop one pair, compute its region, write the three PNGs."""
    src_path, tgt_path, out_dir, ident, sizes, rule = job
    try:
        with Image.open(src_path) as s, Image.open(tgt_path) as t:
            mask_path = Path(src_path).parent / "mask.png"
            mask = Image.open(mask_path) if mask_path.is_file() else None
            src, tgt, region, info = crop_pair(s, t, mask, sizes)
            if mask is not None:
                mask.close()
    except (OSError, ValueError):
        return None
    kind = "mask" if region is not None else "diff"
    if region is None:
        region = rule.region(src, tgt)
    rel = {k: f"images/{ident}_{k}.png" for k in ("source", "target", "region")}
    for k, arr in (("source", src), ("target", tgt), ("region", region.astype(np.uint8) * 255)):
        tmp = Path(out_dir) / (rel[k] + ".tmp.png")
        Image.fromarray(arr).save(tmp)
        os.replace(tmp, Path(out_dir) / rel[k])
    return {
        "source_png": rel["source"],
        "target_png": rel["target"],
        "region_png": rel["region"],
        "region_source": kind,
        "region_frac": float(region.mean()),
        **info,
    }


def prepare_imgedit(
    parquet_paths: Sequence,
    unpack_root,
    out_dir,
    n_train: int,
    n_test: int,
    seed: int,
    crop_sizes: Optional[Sequence[tuple[int, int]]] = None,
    rule: DiffRule = DiffRule(),
    include_types: Optional[Sequence[str]] = None,
    exclude_types: Sequence[str] = ("style_transfer",),
    prefix_alias: Optional[dict] = None,
    processes: int = 1,
    chunk: int = 256,
    n_val: int = 0,
) -> pd.DataFrame:
    """Sample, crop and write the ImgEdit split -> DataFrame (schema ``SCHEMA_DOC``).

    Source images are taken in a seeded order: first the test quota, then the training quota,
    then ``n_val`` validation edits (out of what would be the training side, so the training set
    does not depend on ``n_val``); no source image is on two sides.
    ``crop_sizes`` defaults to DiMOO's 512-px list; pass [(256, 256)] for one fixed size.
    ``exclude_types`` drops style transfer by default (no mask; the whole image changes).
    """
    sizes = list(crop_sizes or crop_size_list())
    idx = read_singleturn(parquet_paths)
    if include_types is not None:
        idx = idx[idx.edit_type.isin(list(include_types))]
    idx = idx[~idx.edit_type.isin(list(exclude_types))].reset_index(drop=True)
    idx["source_key"] = idx.source_rel.map(source_key)
    groups = {k: g.index.to_numpy() for k, g in idx.sort_values(["parquet", "row"]).groupby("source_key", sort=True)}
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    resolver = Resolver(unpack_root, prefix_alias)
    (Path(out_dir) / "images").mkdir(parents=True, exist_ok=True)
    pool = Pool(processes) if processes > 1 else None
    rows, pos = [], 0
    try:
        for split, quota in (("test", n_test), ("train", n_train), ("val", n_val)):
            got = 0
            while got < quota and pos < len(keys):
                jobs, meta = [], []
                while len(jobs) < chunk and pos < len(keys):
                    for i in groups[keys[order[pos]]]:
                        r = idx.loc[i]
                        s, t = resolver.resolve(r.source_rel, r.parquet), resolver.resolve(r.target_rel, r.parquet)
                        if s is not None and t is not None:
                            ident = f"{r.parquet}-{r.row}"
                            jobs.append((str(s), str(t), str(out_dir), ident, sizes, rule))
                            meta.append((pos, {"id": ident, "split": split, **r.to_dict()}))
                    pos += 1
                done = pool.map(_process, jobs) if pool else list(map(_process, jobs))
                last_pos = None
                for (p, m), res in zip(meta, done):
                    if res is None:
                        continue
                    if got == quota:  # processed beyond the quota: drop its files
                        for k in ("source_png", "target_png", "region_png"):
                            (Path(out_dir) / res[k]).unlink(missing_ok=True)
                        continue
                    rows.append({**m, **res})
                    got += 1
                    last_pos = p
                if got == quota and last_pos is not None:
                    pos = last_pos + 1  # keys after the last used one stay available to train
    finally:
        if pool:
            pool.close()
            pool.join()
    cols = [line.split(":")[0] for line in SCHEMA_DOC.splitlines()]
    return pd.DataFrame(rows, columns=cols)


def load_example(row, out_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source uint8, target uint8, region bool) of one prepared row."""
    d = Path(out_dir)
    rd = lambda k: np.asarray(Image.open(d / row[k]).convert("RGB"))  # noqa: E731
    return rd("source_png"), rd("target_png"), np.asarray(Image.open(d / row["region_png"]).convert("L")) >= 128
