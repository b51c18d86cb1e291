import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rm_core.io import read_parquet, write_parquet
from rm_core.tasks.image.imgedit import (
    SCHEMA_DOC,
    DiffRule,
    choose_crop_size,
    crop_pair,
    crop_size_list,
    load_example,
    prepare_imgedit,
    read_singleturn,
)

SIZES = crop_size_list(num_patches=(64 // 16) ** 2, patch_size=16)  # 64x64-budget buckets


def _photo(rng, w, h):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1)
    return np.clip(base + rng.integers(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)


def _sample(folder, rng, w, h, box, with_mask=True):
    """original.png, result.png (box painted), mask.png INVERTED (box black)."""
    folder.mkdir(parents=True)
    src = _photo(rng, w, h)
    tgt = src.copy()
    c0, r0, c1, r1 = box
    tgt[r0:r1, c0:c1] = (250, 20, 200)
    Image.fromarray(src).save(folder / "original.png")
    Image.fromarray(tgt).save(folder / "result.png")
    if with_mask:
        m = np.full((h, w), 255, np.uint8)
        m[r0:r1, c0:c1] = 0
        Image.fromarray(m).save(folder / "mask.png")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """A tiny ImgEdit: parquets + unpacked folders (one 'replace/' -> 'results/' alias)."""
    root = tmp_path_factory.mktemp("imgedit")
    unpack, pq = root / "unpacked", root / "Parquet"
    pq.mkdir()
    rng = np.random.default_rng(0)
    add_rows, rep_rows = [], []
    for i in range(12):
        key = f"00001_00002_{i:09d}"
        _sample(unpack / "results_add_laion_part0" / key, rng, 64, 64, (16, 16, 40, 32), with_mask=i % 3 != 0)
        add_rows.append({"input_images": [f"results_add_laion_part0/{key}/original.png"], "output_images": [f"results_add_laion_part0/{key}/result.png"], "prompt": f"add a thing {i}"})
        if i < 6:  # same source photo edited again in another parquet, stored under the aliased folder
            _sample(unpack / "results" / key, rng, 96, 64, (40, 8, 72, 40))
            rep_rows.append({"input_images": [f"replace/{key}/original.png"], "output_images": [f"replace/{key}/result.png"], "prompt": f"replace {i}"})
    add_rows.append({"input_images": ["results_add_laion_part0/missing/original.png"], "output_images": ["results_add_laion_part0/missing/result.png"], "prompt": "gone"})
    add_rows.append({"input_images": ["a/original.png", "b/original.png"], "output_images": ["c/result.png"], "prompt": "two inputs"})
    pd.DataFrame(add_rows).to_parquet(pq / "add_part0.parquet")
    pd.DataFrame(rep_rows).to_parquet(pq / "replace_part0.parquet")
    return root, sorted(pq.glob("*.parquet")), unpack


def test_crop_sizes_match_dimoo():
    sizes = crop_size_list()
    assert len(sizes) == 49 and (512, 512) in sizes and (1024, 256) in sizes and (256, 1024) in sizes
    assert all(w % 32 == 0 and h % 32 == 0 and w * h <= 512 * 512 for w, h in sizes)
    assert choose_crop_size(2000, 1333, sizes) == (608, 416)


def test_same_offset_crop():
    rng = np.random.default_rng(1)
    src = _photo(rng, 100, 64)
    tgt = src.copy()
    tgt[10:20, 30:50] = 0
    m = np.full((64, 100), 255, np.uint8)
    m[10:20, 30:50] = 0
    s, t, region, info = crop_pair(Image.fromarray(src), Image.fromarray(tgt), Image.fromarray(m), [(96, 64)])
    assert s.shape == t.shape == (64, 96, 3) and region.shape == (64, 96)
    assert info["crop_left"] == 2 and info["crop_top"] == 0  # centred, shared
    assert np.array_equal(s[~region], t[~region])  # aligned: outside the edit nothing moved
    assert region.sum() == 200 and region[10:20, 28:48].all()


def test_diff_rule():
    src = np.zeros((64, 64, 3), np.uint8)
    tgt = src.copy()
    tgt[10:30, 10:30] = 200
    tgt[20, 20] = 0  # a hole
    tgt[50, 50] = 255  # an isolated speck
    reg = DiffRule(threshold=24, close_radius=2, min_size=16, max_hole=16).region(src, tgt)
    assert reg[10:30, 10:30].all() and not reg[50, 50] and reg.sum() == 400


def test_prepare_split_disjoint_and_regions(fake, tmp_path):
    _, parquets, unpack = fake
    idx = read_singleturn(parquets)
    assert len(idx) == 19 and "two inputs" not in set(idx.instruction)
    df = prepare_imgedit(parquets, unpack, tmp_path / "out", n_train=10, n_test=5, seed=0, crop_sizes=SIZES)
    assert list(df.columns) == [line.split(":")[0] for line in SCHEMA_DOC.splitlines()]
    assert (df.split == "test").sum() == 5 and (df.split == "train").sum() == 10
    assert not set(df[df.split == "train"].source_key) & set(df[df.split == "test"].source_key)
    assert "gone" not in set(df.instruction) and df.id.is_unique
    assert set(df.edit_type) == {"add", "replace"} and set(df.region_source) == {"mask", "diff"}
    for row in df.itertuples():
        src, tgt, region = load_example(row._asdict(), tmp_path / "out")
        assert src.shape == tgt.shape and region.shape == src.shape[:2]
        changed = np.abs(tgt.astype(int) - src).max(-1) > 24
        # inverted mask read correctly: the painted box is the region, not its complement
        assert 0.05 < region.mean() < 0.5
        iou = (changed & region).sum() / (changed | region).sum()
        assert iou > 0.8, (row.id, row.region_source, iou)
    write_parquet(df, tmp_path / "split.parquet", schema_doc=SCHEMA_DOC)
    assert len(read_parquet(tmp_path / "split.parquet")) == 15
    again = prepare_imgedit(parquets, unpack, tmp_path / "out2", n_train=10, n_test=5, seed=0, crop_sizes=SIZES)
    assert again.id.tolist() == df.id.tolist()
    other = prepare_imgedit(parquets, unpack, tmp_path / "out3", n_train=10, n_test=5, seed=1, crop_sizes=SIZES)
    assert other.id.tolist() != df.id.tolist()
