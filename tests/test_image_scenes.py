import json

import numpy as np
import pandas as pd
import pytest

from rm_core.io import read_parquet, write_parquet
from rm_core.tasks.image.codec import stack_images, stack_masks
from rm_core.tasks.image.layout import CHARS
from rm_core.tasks.image.scenes import (
    EDIT_KINDS,
    SCHEMA_DOC,
    SceneSpec,
    build_edit_dataset,
    canonical,
    location_name,
    object_region,
    parse_scene,
    render,
)


def test_deterministic_and_schema():
    a = build_edit_dataset(60, 30, seed=3)
    b = build_edit_dataset(60, 30, seed=3)
    pd.testing.assert_frame_equal(a, b)
    c = build_edit_dataset(60, 30, seed=4)
    assert not a.instruction.equals(c.instruction)
    assert list(a.columns) == [line.split(":")[0] for line in SCHEMA_DOC.splitlines()]
    assert (a.split == "train").sum() == 60 and (a.split == "test").sum() == 30
    assert a.id.is_unique


def test_split_by_source_scene_and_test_stable():
    df = build_edit_dataset(300, 100, seed=0, edits_per_scene=2)
    tr, te = df[df.split == "train"], df[df.split == "test"]
    assert not set(tr.scene_before) & set(te.scene_before)
    assert not set(tr.scene_id) & set(te.scene_id)
    assert df.groupby("scene_id").kind.nunique().eq(df.groupby("scene_id").size()).all()
    other = build_edit_dataset(50, 100, seed=0, edits_per_scene=2)
    pd.testing.assert_frame_equal(te.reset_index(drop=True), other[other.split == "test"].reset_index(drop=True))


def test_train_kind_weights_shift_the_training_side_only():
    plain = build_edit_dataset(1200, 200, seed=5)
    heavy = build_edit_dataset(1200, 200, seed=5, train_kind_weights={"add": 4, "move": 4})
    test_of = lambda df: df[df.split == "test"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(test_of(plain), test_of(heavy))
    share = heavy[heavy.split == "train"].kind.value_counts(normalize=True)
    # weights 4, 1, 1, 4, 1, 1 -> add and move 4/12 each, the others 1/12 each
    assert abs(share["add"] - 1 / 3) < 0.05 and abs(share["move"] - 1 / 3) < 0.05
    assert all(abs(share[k] - 1 / 12) < 0.03 for k in ("remove", "recolour", "replace", "background"))
    plain_share = plain[plain.split == "train"].kind.value_counts(normalize=True)
    assert abs(plain_share["add"] - 1 / 6) < 0.04
    only = build_edit_dataset(100, 10, seed=5, train_kind_weights={k: 0 for k in EDIT_KINDS if k != "add"})
    assert set(only[only.split == "train"].kind) == {"add"} and len(set(only[only.split == "test"].kind)) > 1
    with pytest.raises(ValueError, match="not drawn"):
        build_edit_dataset(10, 10, seed=5, kinds=("add", "remove"), train_kind_weights={"move": 2})
    with pytest.raises(ValueError, match="positive sum"):
        build_edit_dataset(10, 10, seed=5, train_kind_weights={k: 0 for k in EDIT_KINDS})


def test_region_is_exact_per_kind():
    df = build_edit_dataset(600, 0, seed=1)
    assert set(df.kind) == set(EDIT_KINDS)
    src, tgt, reg = stack_images(df.source), stack_images(df.target), stack_masks(df.region)
    diff = (src != tgt).any(-1)
    assert np.array_equal(diff, reg)  # pixels differ exactly inside the region
    assert diff.reshape(len(df), -1).any(1).all()  # every edit changes something
    spec = SceneSpec()
    for row, r in zip(df.itertuples(), reg):
        obj = object_region(json.loads(row.scene_before), json.loads(row.scene_after), spec)
        assert not (r & ~obj).any()  # changes stay inside the edited objects' footprints
        assert np.array_equal(r, obj) or row.kind == "replace"  # replace keeps the shapes' overlap


def test_renderer_and_parser_agree():
    df = build_edit_dataset(120, 0, seed=2)
    spec = SceneSpec()
    for row in df.itertuples():
        before, after = json.loads(row.scene_before), json.loads(row.scene_after)
        assert np.array_equal(render(before, spec), stack_images([row.source])[0])
        parsed, errs = parse_scene(stack_images([row.target])[0], spec)
        assert canonical(parsed) == canonical(after) and errs.max() == 0


def test_instructions_fit_the_mini_vocab(tmp_path):
    df = build_edit_dataset(300, 0, seed=5)
    assert set("".join(df.instruction)) <= set(CHARS)
    assert df.instruction.str.len().max() <= 96
    write_parquet(df, tmp_path / "d.parquet", schema_doc=SCHEMA_DOC)
    back = read_parquet(tmp_path / "d.parquet")
    pd.testing.assert_frame_equal(df, back)


@pytest.mark.parametrize("size", [24, 32, 40])
@pytest.mark.parametrize("names", ["row-column", "one-word"])
def test_place_names_name_each_cell_once(size, names):
    """Every cell has its own name; one-word names are single words, and an `add` or `move`
    instruction ends with the name of the cell the object lands in."""
    spec = SceneSpec(size=size, cell=8, max_objects=3, place_names=names)
    cells = [(r, c) for r in range(spec.grid) for c in range(spec.grid)]
    got = [location_name(r, c, spec) for r, c in cells]
    assert len(set(got)) == len(cells)
    assert all((len(n.split()) == 1) == (names == "one-word") for n in got)
    df = build_edit_dataset(200, 0, seed=3, spec=spec, kinds=("add", "move"))
    for row in df.itertuples():
        edit = json.loads(row.edit)
        r, c = (edit["object"]["row"], edit["object"]["col"]) if row.kind == "add" else (edit["to"]["row"], edit["to"]["col"])
        assert row.instruction.endswith(" the " + location_name(r, c, spec))
    if size == 24 and names == "one-word":
        assert got == ["top-left", "top", "top-right", "left", "centre", "right", "bottom-left", "bottom", "bottom-right"]


def test_place_names_are_checked():
    with pytest.raises(ValueError, match="place_names"):
        SceneSpec(place_names="compass")
