"""The image tokenizer: a small patch VQ for the mini scale (ours), with the paper-scale VQ's
interface, and ``Codec``, which loads either (Lumina-DiMOO's VQ through diffusers) from a VQ folder.

Lumina-DiMOO tokenizes images with an aMUSEd VQ (16x downsampling, 8192 codes; see
shared/notes/dimoo-imgedit-format.md). At mini scale the tokenizer is k-means over
non-overlapping p x p RGB patches: ``encode`` maps each patch to its nearest centroid,
``decode`` pastes the centroids back. k-means runs on the distinct patches weighted by
their counts (seeded MiniBatchKMeans); when there are no more distinct patches than
codes, the codebook is the distinct patches themselves (lossless on the fitted images)
and the spare rows repeat the first one (never chosen: ties go to the lowest index).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rm_core.io import load_tensors, save_tensors, write_json


def to_patches(images: np.ndarray, patch: int) -> np.ndarray:
    """uint8 (B, H, W, 3) -> (B, H/p, W/p, p*p*3) flattened patches (row-major)."""
    b, h, w, c = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}")
    x = images.reshape(b, h // patch, patch, w // patch, patch, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // patch, w // patch, patch * patch * c)


def from_patches(patches: np.ndarray, patch: int) -> np.ndarray:
    """Inverse of :func:`to_patches`."""
    b, gh, gw, _ = patches.shape
    x = patches.reshape(b, gh, gw, patch, patch, -1)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, gh * patch, gw * patch, -1)


def region_to_grid(region: np.ndarray, patch: int) -> np.ndarray:
    """bool (..., H, W) pixel mask -> bool (..., H/p, W/p): a patch is in if any pixel is."""
    *lead, h, w = region.shape
    return region.reshape(*lead, h // patch, patch, w // patch, patch).any(axis=(-3, -1))


class PatchVQ:
    """k-means patch tokenizer: ``fit(images)``, ``encode(images) -> codes``, ``decode(codes)``."""

    def __init__(self, n_codes: int = 512, patch: int = 4, seed: int = 0):
        self.n_codes = int(n_codes)
        self.patch = int(patch)
        self.seed = int(seed)
        self.codebook: torch.Tensor | None = None  # (n_codes, p*p*3) float32, 0..255
        self.n_distinct = 0

    @property
    def codebook_size(self) -> int:
        return self.n_codes

    @property
    def downsample(self) -> int:
        return self.patch

    def fit(self, images: np.ndarray) -> "PatchVQ":
        """Fit the codebook on uint8 (B, H, W, 3) images."""
        flat = to_patches(np.asarray(images, dtype=np.uint8), self.patch).reshape(-1, self.patch**2 * 3)
        rows = np.ascontiguousarray(flat).view(np.dtype((np.void, flat.shape[1]))).ravel()
        uniq, counts = np.unique(rows, return_counts=True)  # fast distinct rows via bytes
        uniq = uniq.view(np.uint8).reshape(-1, flat.shape[1])
        self.n_distinct = len(uniq)
        if len(uniq) <= self.n_codes:
            book = np.concatenate([uniq, np.repeat(uniq[:1], self.n_codes - len(uniq), axis=0)])
        else:
            from sklearn.cluster import MiniBatchKMeans

            km = MiniBatchKMeans(n_clusters=self.n_codes, random_state=self.seed, n_init=3, batch_size=4096)
            km.fit(uniq.astype(np.float32), sample_weight=counts.astype(np.float32))
            book = km.cluster_centers_
        self.codebook = torch.as_tensor(np.asarray(book, dtype=np.float32))
        return self

    def _book(self) -> torch.Tensor:
        if self.codebook is None:
            raise RuntimeError("PatchVQ has no codebook: call fit() or load() first")
        return self.codebook

    def encode(self, images: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """uint8 (B, H, W, 3) -> int64 codes (B, H/p, W/p): the nearest centroid per patch."""
        book = self._book()
        p = to_patches(np.asarray(images, dtype=np.uint8), self.patch)
        # centred at 128 so float32 keeps squared distances exact to well under 1 level^2
        flat = torch.as_tensor(p.reshape(-1, p.shape[-1]), dtype=torch.float32) - 128.0
        out = torch.empty(flat.shape[0], dtype=torch.long)
        book = book - 128.0
        b2 = (book**2).sum(1)
        for s in range(0, flat.shape[0], chunk):
            x = flat[s : s + chunk]
            d = b2[None, :] - 2 * x @ book.T  # |x|^2 is constant per row
            out[s : s + chunk] = d.argmin(dim=1)
        return out.reshape(p.shape[:3]).numpy()

    def decode(self, codes) -> np.ndarray:
        """int codes (B, h, w) -> uint8 images (B, h*p, w*p, 3)."""
        codes = torch.as_tensor(np.asarray(codes), dtype=torch.long)
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.n_codes):
            raise ValueError(f"codes must lie in [0, {self.n_codes}), got [{int(codes.min())}, {int(codes.max())}]")
        pix = self._book()[codes].round().clamp(0, 255).to(torch.uint8).numpy()
        return from_patches(pix, self.patch)

    def save(self, directory) -> None:
        """``codebook.safetensors`` + ``config.json`` in ``directory``."""
        d = Path(directory)
        save_tensors({"codebook": self._book()}, d / "codebook.safetensors")
        cfg = {"kind": "kmeans-patch", "n_codes": self.n_codes, "patch": self.patch, "seed": self.seed, "n_distinct": self.n_distinct}
        write_json(cfg, d / "config.json")

    @classmethod
    def load(cls, directory) -> "PatchVQ":
        d = Path(directory)
        cfg = json.loads((d / "config.json").read_text())
        vq = cls(n_codes=cfg["n_codes"], patch=cfg["patch"], seed=cfg["seed"])
        vq.n_distinct = cfg.get("n_distinct", 0)
        vq.codebook = load_tensors(d / "codebook.safetensors")["codebook"].float()
        return vq


class Codec:
    """The image tokenizer of a scale: ``encode`` uint8 images -> codes, ``decode`` back."""

    def __init__(self, vq_dir: str):
        meta = json.loads((Path(vq_dir) / "config.json").read_text())
        self.kind = meta["kind"]
        if self.kind == "kmeans-patch":
            self.vq = PatchVQ.load(vq_dir)
            self.downsample, self.n_codes = self.vq.patch, self.vq.n_codes
        elif self.kind == "dimoo-vq":
            from rm_core.backbones.dimoo import load_vq, vq_downsample
            self.vq = load_vq(meta["checkpoint"], device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
            self.downsample, self.n_codes = vq_downsample(self.vq), int(self.vq.config.num_vq_embeddings)
        else:
            raise ValueError(f"{vq_dir}: unknown VQ kind {self.kind!r}")

    def encode(self, images: np.ndarray, batch: int = 16) -> np.ndarray:
        if self.kind == "kmeans-patch":
            return self.vq.encode(images)
        from rm_core.backbones.dimoo import encode_images
        out = []
        for s in range(0, len(images), batch):
            px = torch.as_tensor(images[s:s + batch]).permute(0, 3, 1, 2).float() / 255.0
            out.append(encode_images(self.vq, px).cpu().numpy())
        return np.concatenate(out)

    def decode(self, codes: np.ndarray, batch: int = 16) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        if self.kind == "kmeans-patch":
            return self.vq.decode(codes)
        from rm_core.backbones.dimoo import decode_codes
        out = []
        for s in range(0, len(codes), batch):
            px = decode_codes(self.vq, torch.as_tensor(codes[s:s + batch])).float().cpu()
            out.append((px.permute(0, 2, 3, 1).numpy() * 255.0).round().clip(0, 255).astype(np.uint8))
        return np.concatenate(out)
