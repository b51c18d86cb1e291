"""Mini-scale image editing data (ours): procedurally drawn scenes and exact edits.

The paper fine-tunes Lumina-DiMOO on ImgEdit photos (Table 1). The mini scale replaces
the photos by drawn scenes whose edits are known exactly: a ``size``-px square canvas
cut into a grid of ``cell``-px cells (default 32 px, 4x4 cells of 8 px, so a 4x4-patch
VQ gives an 8x8 token grid); each object is a square, circle or triangle of one palette
colour drawn inside one cell; the background is plain or textured (2-px checker or
stripes). Six edit kinds: add, remove, recolour, move, replace (shape), background.

Edit region (the ground truth of Precision/Coverage), exact from the renderer: the
footprints of the objects that differ between the scenes (for a background change,
every pixel not covered by an object common to both), intersected with the pixels whose
colour changes. Object colours and background tones are pairwise distinct, so the
intersection only removes, for replace, the overlap of the old and new shape (same
colour, unchanged): the region is exactly the set of pixels a correct edit changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from .codec import encode_png

SHAPES = ("square", "circle", "triangle")
COLOURS = {
    "red": (220, 50, 50),
    "green": (50, 180, 70),
    "blue": (60, 90, 230),
    "yellow": (235, 205, 50),
    "purple": (150, 70, 200),
    "white": (235, 235, 235),
}
# name -> (pattern, tones); tones of all backgrounds and object colours are distinct.
BACKGROUNDS = {
    "black": ("plain", ((15, 15, 15),)),
    "gray": ("plain", ((120, 120, 120),)),
    "navy": ("plain", ((25, 35, 80),)),
    "checkered brown": ("checker", ((110, 80, 50), (140, 105, 70))),
    "striped teal": ("stripes", ((30, 100, 100), (50, 130, 125))),
    "checkered olive": ("checker", ((90, 100, 40), (115, 125, 60))),
}
EDIT_KINDS = ("add", "remove", "recolour", "move", "replace", "background")
_ROWS4 = ("top", "upper", "lower", "bottom")
_COLS4 = ("left", "middle-left", "middle-right", "right")
# one word per cell of a 3x3 grid (place_names: one-word)
_CELLS3 = ("top-left", "top", "top-right", "left", "centre", "right", "bottom-left", "bottom", "bottom-right")
PLACE_NAMES = ("row-column", "one-word")

SCHEMA_DOC = """\
id: str, unique example id '<split>-<index>'
split: str, 'train' or 'test' (split by source scene: no source scene on both sides)
scene_id: str, id of the source scene; several edits may share it (edits_per_scene)
kind: str, one of add, remove, recolour, move, replace, background
instruction: str, lowercase English edit instruction
source: bytes, PNG of the source image, RGB uint8 (height, width, 3)
target: bytes, PNG of the target image (the source scene with the edit applied)
region: bytes, PNG 0/255 of the edit region (bool (height, width)), exact from the renderer
height: int, image height in px
width: int, image width in px
scene_before: str, JSON scene {background, objects[{shape, colour, row, col}], size, cell}
scene_after: str, JSON scene after the edit
edit: str, JSON structured edit {kind, object?, colour?, shape?, to?, from?}"""


@dataclass(frozen=True)
class SceneSpec:
    """Canvas geometry and object counts of the mini scenes."""

    size: int = 32
    cell: int = 8
    min_objects: int = 1
    max_objects: int = 4
    # palette subsets (ours; default: everything). A smaller palette means fewer distinct
    # cells, hence fewer VQ codes for a small model to learn to copy.
    shapes: tuple = SHAPES
    colours: tuple = tuple(COLOURS)
    backgrounds: tuple = tuple(BACKGROUNDS)
    # how an instruction names a cell (ours): "row-column" ('row 2 column 3'; 'upper left' on a
    # 4x4 grid) or "one-word" (one word per cell: 'top-right', 'centre', ...; 'row2-column3' on
    # grids other than 3x3 and 4x4)
    place_names: str = "row-column"

    def __post_init__(self):
        if self.place_names not in PLACE_NAMES:
            raise ValueError(f"place_names must be one of {PLACE_NAMES}, got {self.place_names!r}")
        if self.size % self.cell or self.cell < 6:
            raise ValueError(f"size must be a multiple of cell >= 6, got size={self.size} cell={self.cell}")
        if not 1 <= self.min_objects <= self.max_objects < self.grid**2:
            raise ValueError("need 1 <= min_objects <= max_objects < grid**2 (an empty cell for add/move)")
        for name, chosen, known in (("shapes", self.shapes, SHAPES), ("colours", self.colours, tuple(COLOURS)),
                                    ("backgrounds", self.backgrounds, tuple(BACKGROUNDS))):
            object.__setattr__(self, name, tuple(chosen))
            bad = sorted(set(chosen) - set(known))
            if bad or len(set(chosen)) < 2:
                raise ValueError(f"{name} must be at least two distinct names of {known}; got {tuple(chosen)}")

    @property
    def grid(self) -> int:
        return self.size // self.cell


@lru_cache(maxsize=None)
def footprint(shape: str, cell: int) -> np.ndarray:
    """bool (cell, cell): the pixels a shape covers inside its cell (1-px border kept free)."""
    m = max(1, cell // 8)
    n = cell - 2 * m
    c = (cell - 1) / 2
    y, x = np.mgrid[0:cell, 0:cell].astype(float)
    inside = (y >= m) & (y < cell - m) & (x >= m) & (x < cell - m)
    if shape == "square":
        fp = inside
    elif shape == "circle":
        fp = (y - c) ** 2 + (x - c) ** 2 <= (n / 2) ** 2
    elif shape == "triangle":
        half = (y - m + 1) / n * (n / 2)
        fp = inside & (np.abs(x - c) <= half)
    else:
        raise ValueError(f"unknown shape {shape!r}; known {SHAPES}")
    fp = fp & inside
    fp.setflags(write=False)
    return fp


def object_mask(obj: dict, spec: SceneSpec) -> np.ndarray:
    """bool (size, size): the footprint of one object placed in its cell."""
    out = np.zeros((spec.size, spec.size), dtype=bool)
    r, c = obj["row"] * spec.cell, obj["col"] * spec.cell
    out[r : r + spec.cell, c : c + spec.cell] = footprint(obj["shape"], spec.cell)
    return out


def render_background(name: str, spec: SceneSpec) -> np.ndarray:
    """uint8 (size, size, 3): a plain colour, a 2-px checker or 2-px horizontal stripes."""
    pattern, tones = BACKGROUNDS[name]
    y, x = np.mgrid[0 : spec.size, 0 : spec.size]
    if pattern == "plain":
        idx = np.zeros_like(y)
    elif pattern == "checker":
        idx = (y // 2 + x // 2) % 2
    else:
        idx = (y // 2) % 2
    return np.asarray(tones, dtype=np.uint8)[idx]


def render(scene: dict, spec: SceneSpec) -> np.ndarray:
    """uint8 (size, size, 3) image of a scene."""
    img = render_background(scene["background"], spec).copy()
    for obj in scene["objects"]:
        img[object_mask(obj, spec)] = COLOURS[obj["colour"]]
    return img


def canonical(scene: dict) -> str:
    """The scene as sorted JSON (objects in row-major cell order): its identity."""
    objs = sorted(scene["objects"], key=lambda o: (o["row"], o["col"]))
    out = {k: v for k, v in scene.items() if k != "objects"}
    out["objects"] = [{k: o[k] for k in ("shape", "colour", "row", "col")} for o in objs]
    return json.dumps(out, sort_keys=True)


def location_name(row: int, col: int, spec: SceneSpec) -> str:
    """How an instruction names a cell. ``place_names`` "row-column": 'top left', 'lower
    middle-right', ... on a 4x4 grid, 'row r column c' otherwise; "one-word": a single word
    ('top-right', 'centre' on a 3x3 grid; 'upper-middle-left' on 4x4; 'row2-column3' otherwise)."""
    one = spec.place_names == "one-word"
    if one and spec.grid == 3:
        return _CELLS3[row * 3 + col]
    if spec.grid == 4:
        return f"{_ROWS4[row]}{'-' if one else ' '}{_COLS4[col]}"
    return f"row{row + 1}-column{col + 1}" if one else f"row {row + 1} column {col + 1}"


def reference(obj: dict, scene: dict, spec: SceneSpec) -> str:
    """How an instruction names an object: colour and shape, plus its place if ambiguous."""
    same = [o for o in scene["objects"] if o["shape"] == obj["shape"] and o["colour"] == obj["colour"]]
    ref = f"the {obj['colour']} {obj['shape']}"
    return ref if len(same) == 1 else f"{ref} at the {location_name(obj['row'], obj['col'], spec)}"


def random_scene(rng: np.random.Generator, spec: SceneSpec) -> dict:
    """A random scene: background, and min..max objects in distinct cells."""
    n = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    cells = rng.choice(spec.grid**2, size=n, replace=False)
    objs = [
        {
            "shape": spec.shapes[rng.integers(len(spec.shapes))],
            "colour": spec.colours[rng.integers(len(spec.colours))],
            "row": int(c // spec.grid),
            "col": int(c % spec.grid),
        }
        for c in cells
    ]
    bg = spec.backgrounds[rng.integers(len(spec.backgrounds))]
    return json.loads(canonical({"background": bg, "objects": objs, "size": spec.size, "cell": spec.cell}))


def _empty_cells(scene: dict, spec: SceneSpec) -> list[tuple[int, int]]:
    used = {(o["row"], o["col"]) for o in scene["objects"]}
    return [(r, c) for r in range(spec.grid) for c in range(spec.grid) if (r, c) not in used]


def _other(options, current, rng):
    rest = [o for o in options if o != current]
    return rest[rng.integers(len(rest))]


def random_edit(scene: dict, kind: str, rng: np.random.Generator, spec: SceneSpec) -> tuple[dict, dict, str]:
    """Apply a random edit of ``kind`` -> (structured edit, scene after, instruction)."""
    objs = [dict(o) for o in scene["objects"]]
    after = dict(scene, objects=objs)
    if kind == "background":
        new = _other(list(spec.backgrounds), scene["background"], rng)
        after["background"] = new
        edit = {"kind": kind, "from": scene["background"], "to": new}
        return edit, json.loads(canonical(after)), f"change the background to {new}"
    if kind == "add":
        empty = _empty_cells(scene, spec)
        r, c = empty[rng.integers(len(empty))]
        obj = {"shape": spec.shapes[rng.integers(len(spec.shapes))], "colour": spec.colours[rng.integers(len(spec.colours))],
               "row": r, "col": c}
        objs.append(obj)
        text = f"add a {obj['colour']} {obj['shape']} at the {location_name(r, c, spec)}"
        return {"kind": kind, "object": obj}, json.loads(canonical(after)), text
    i = int(rng.integers(len(objs)))
    obj = dict(objs[i])
    ref = reference(obj, scene, spec)
    if kind == "remove":
        del objs[i]
        edit, text = {"kind": kind, "object": obj}, f"remove {ref}"
    elif kind == "recolour":
        new = _other(list(spec.colours), obj["colour"], rng)
        objs[i]["colour"] = new
        edit, text = {"kind": kind, "object": obj, "colour": new}, f"make {ref} {new}"
    elif kind == "replace":
        new = _other(list(spec.shapes), obj["shape"], rng)
        objs[i]["shape"] = new
        edit, text = {"kind": kind, "object": obj, "shape": new}, f"replace {ref} with a {new}"
    elif kind == "move":
        empty = _empty_cells(scene, spec)
        r, c = empty[rng.integers(len(empty))]
        objs[i]["row"], objs[i]["col"] = r, c
        edit = {"kind": kind, "object": obj, "to": {"row": r, "col": c}}
        text = f"move {ref} to the {location_name(r, c, spec)}"
    else:
        raise ValueError(f"unknown edit kind {kind!r}; known {EDIT_KINDS}")
    return edit, json.loads(canonical(after)), text


def object_region(before: dict, after: dict, spec: SceneSpec) -> np.ndarray:
    """bool (size, size): footprints of the objects that differ; all pixels not covered by
    an object common to both scenes when the background changes (an object mask)."""
    key = lambda o: (o["shape"], o["colour"], o["row"], o["col"])  # noqa: E731
    b = {key(o): o for o in before["objects"]}
    a = {key(o): o for o in after["objects"]}
    region = np.zeros((spec.size, spec.size), dtype=bool)
    if before["background"] != after["background"]:
        for k in b.keys() & a.keys():
            region |= object_mask(b[k], spec)
        return ~region
    for k in b.keys() ^ a.keys():
        region |= object_mask(b.get(k) or a[k], spec)
    return region


def edit_region(before: dict, after: dict, spec: SceneSpec) -> np.ndarray:
    """bool (size, size): the object region restricted to the pixels that change."""
    changed = (render(before, spec) != render(after, spec)).any(axis=-1)
    return object_region(before, after, spec) & changed


def make_example(scene: dict, kind: str, rng: np.random.Generator, spec: SceneSpec) -> dict:
    """One edit of a source scene as arrays and descriptions (no encoding)."""
    edit, after, text = random_edit(scene, kind, rng, spec)
    return {
        "kind": kind,
        "instruction": text,
        "source": render(scene, spec),
        "target": render(after, spec),
        "region": edit_region(scene, after, spec),
        "scene_before": scene,
        "scene_after": after,
        "edit": edit,
    }


def _kind_probs(kinds, weights):
    """Drawing probabilities of ``kinds`` from relative ``weights`` (kind -> weight; a kind not
    named weighs 1), or None (uniform, the default draw) when ``weights`` is empty."""
    if not weights:
        return None
    unknown = set(weights) - set(kinds)
    if unknown:
        raise ValueError(f"kind weights name kinds not drawn: {sorted(unknown)}; drawn {list(kinds)}")
    w = np.array([float(weights.get(k, 1.0)) for k in kinds])
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"kind weights must be >= 0 with a positive sum, got {dict(weights)}")
    return w / w.sum()


def _draw_split(rng, n, spec, kinds, per_scene, exclude, split, weights=None):
    p = _kind_probs(kinds, weights)
    if p is not None and per_scene > int((p > 0).sum()):
        raise ValueError(f"edits_per_scene={per_scene} distinct kinds, but only {int((p > 0).sum())} have weight > 0")
    rows, seen, s = [], set(), 0
    while len(rows) < n:
        scene = random_scene(rng, spec)
        key = canonical(scene)
        if key in exclude or key in seen:
            continue
        seen.add(key)
        for kind in rng.choice(list(kinds), size=min(per_scene, len(kinds)), replace=False, p=p):
            if len(rows) == n:
                break
            ex = make_example(scene, str(kind), rng, spec)
            rows.append(
                {
                    "id": f"{split}-{len(rows):06d}",
                    "split": split,
                    "scene_id": f"{split}-s{s:06d}",
                    "kind": ex["kind"],
                    "instruction": ex["instruction"],
                    "source": encode_png(ex["source"]),
                    "target": encode_png(ex["target"]),
                    "region": encode_png(ex["region"]),
                    "height": spec.size,
                    "width": spec.size,
                    "scene_before": canonical(ex["scene_before"]),
                    "scene_after": canonical(ex["scene_after"]),
                    "edit": json.dumps(ex["edit"], sort_keys=True),
                }
            )
        s += 1
    return rows, seen


def build_edit_dataset(
    n_train: int,
    n_test: int,
    seed: int,
    spec: SceneSpec = SceneSpec(),
    kinds=EDIT_KINDS,
    edits_per_scene: int = 1,
    train_kind_weights=None,
    exclude_scenes=(),
) -> pd.DataFrame:
    """``n_train`` + ``n_test`` edit examples (schema: ``SCHEMA_DOC``), split by source scene.

    Test scenes come from their own random stream (seed, 1), so the test set does not
    depend on ``n_train``; train scenes (seed, 0) equal to a test source scene are
    redrawn. Each source scene yields ``edits_per_scene`` edits of distinct kinds, drawn
    uniformly, or for the training side by ``train_kind_weights`` (kind -> relative weight,
    ours: more location edits), which leaves the test side as it is. Train scenes in
    ``exclude_scenes`` (canonical scene JSON strings) are redrawn too.
    """
    unknown = set(kinds) - set(EDIT_KINDS)
    if unknown:
        raise ValueError(f"unknown edit kinds {sorted(unknown)}; known {EDIT_KINDS}")
    test, test_keys = _draw_split(np.random.default_rng([seed, 1]), n_test, spec, kinds, edits_per_scene, set(), "test")
    train, _ = _draw_split(np.random.default_rng([seed, 0]), n_train, spec, kinds, edits_per_scene,
                           test_keys | set(exclude_scenes), "train", train_kind_weights)
    return pd.DataFrame(train + test, columns=[line.split(":")[0] for line in SCHEMA_DOC.splitlines()])


def draw_pool(
    n: int,
    seed,
    spec: SceneSpec = SceneSpec(),
    kinds=EDIT_KINDS,
    edits_per_scene: int = 1,
    exclude_scenes=(),
    split: str = "pool",
    kind_weights=None,
) -> pd.DataFrame:
    """``n`` edit examples (schema ``SCHEMA_DOC``) from source scenes not in
    ``exclude_scenes`` (canonical scene JSON strings, e.g. another dataset's
    ``scene_before`` column), drawn from ``np.random.default_rng(seed)``; kinds uniformly,
    or by ``kind_weights`` (kind -> relative weight)."""
    unknown = set(kinds) - set(EDIT_KINDS)
    if unknown:
        raise ValueError(f"unknown edit kinds {sorted(unknown)}; known {EDIT_KINDS}")
    rows, _ = _draw_split(np.random.default_rng(seed), n, spec, kinds, edits_per_scene, set(exclude_scenes), split,
                          kind_weights)
    return pd.DataFrame(rows, columns=[line.split(":")[0] for line in SCHEMA_DOC.splitlines()])


def parse_scene(image: np.ndarray, spec: SceneSpec) -> tuple[dict, np.ndarray]:
    """Read a scene back from an image -> (scene, per-cell MAE of the best match (grid, grid)).

    Background: the candidate closest on the cell border rings (never covered by a
    shape). Each cell: the closest of 'empty' and every shape x colour drawn on it.
    """
    img = np.asarray(image, dtype=np.float32)
    ring = np.ones((spec.cell, spec.cell), dtype=bool)
    ring[1:-1, 1:-1] = False
    ring_full = np.tile(ring, (spec.grid, spec.grid))
    bgs = {name: render_background(name, spec).astype(np.float32) for name in spec.backgrounds}
    bg_name = min(bgs, key=lambda n: float(np.abs(img - bgs[n])[ring_full].mean()))
    bg = bgs[bg_name]
    cands = [None] + [(s, c) for s in spec.shapes for c in spec.colours]
    objs, errs = [], np.zeros((spec.grid, spec.grid))
    for r in range(spec.grid):
        for c in range(spec.grid):
            sl = (slice(r * spec.cell, (r + 1) * spec.cell), slice(c * spec.cell, (c + 1) * spec.cell))
            block, base = img[sl], bg[sl]
            best, best_err = None, np.inf
            for cand in cands:
                if cand is None:
                    tmpl = base
                else:
                    colour = np.asarray(COLOURS[cand[1]], np.float32)
                    tmpl = np.where(footprint(cand[0], spec.cell)[..., None], colour, base)
                err = float(np.abs(block - tmpl).mean())
                if err < best_err:
                    best, best_err = cand, err
            errs[r, c] = best_err
            if best is not None:
                objs.append({"shape": best[0], "colour": best[1], "row": r, "col": c})
    scene = json.loads(canonical({"background": bg_name, "objects": objs, "size": spec.size, "cell": spec.cell}))
    return scene, errs
