import numpy as np
import pytest

from rm_core.tasks.image.codec import stack_images
from rm_core.tasks.image.scenes import build_edit_dataset
from rm_core.tasks.image.vq import PatchVQ, from_patches, region_to_grid, to_patches


@pytest.fixture(scope="module")
def data():
    df = build_edit_dataset(400, 100, seed=0)
    tr, te = df[df.split == "train"], df[df.split == "test"]
    fit = np.concatenate([stack_images(tr.source), stack_images(tr.target)])
    return fit, stack_images(te.source)


def test_patch_roundtrip():
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
    assert np.array_equal(from_patches(to_patches(x, 4), 4), x)
    r = np.zeros((8, 12), bool)
    r[5, 9] = True
    g = region_to_grid(r, 4)
    assert g.shape == (2, 3) and g.sum() == 1 and g[1, 2]


def test_reconstruction_error(data, tmp_path):
    fit, test = data
    vq = PatchVQ(n_codes=512, patch=4, seed=0).fit(fit)
    codes = vq.encode(test)
    assert codes.shape == (len(test), 8, 8) and codes.min() >= 0 and codes.max() < 512
    mae = np.abs(vq.decode(codes).astype(int) - test).mean()
    print(f"PatchVQ(512, 4x4) held-out MAE = {mae:.3f} levels; distinct patches = {vq.n_distinct}")
    assert vq.n_distinct <= 512 and mae < 0.5  # the mini scenes have few distinct patches
    vq.save(tmp_path / "vq")
    back = PatchVQ.load(tmp_path / "vq")
    assert np.array_equal(back.encode(test), codes)


def test_lossy_codebook_is_reasonable(data):
    fit, test = data
    small = PatchVQ(n_codes=48, patch=4, seed=0).fit(fit)
    mae = np.abs(small.decode(small.encode(test)).astype(int) - test).mean()
    print(f"PatchVQ(48, 4x4) held-out MAE = {mae:.3f} levels")
    assert mae < 15
    again = PatchVQ(n_codes=48, patch=4, seed=0).fit(fit)
    assert np.array_equal(again.codebook.numpy(), small.codebook.numpy())  # seeded


def test_errors():
    with pytest.raises(RuntimeError):
        PatchVQ().encode(np.zeros((1, 8, 8, 3), np.uint8))
    vq = PatchVQ(n_codes=4, patch=4).fit(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError):
        vq.decode(np.full((1, 2, 2), 9))
