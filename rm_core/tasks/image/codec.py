"""Images and masks as PNG bytes, the storage format of every image column in this track.

RGB images are uint8 (H, W, 3); masks are bool (H, W), stored as 8-bit PNG with 0/255.
"""

from __future__ import annotations

import io
from typing import Iterable

import numpy as np
from PIL import Image


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W, 3) RGB or bool/uint8 (H, W) mask -> PNG bytes (lossless)."""
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise TypeError(f"encode_png needs uint8 or bool, got {arr.dtype}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 (H, W, 3) RGB (grey or RGBA inputs are converted)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).copy()


def decode_mask(data: bytes) -> np.ndarray:
    """PNG bytes of a 0/255 mask -> bool (H, W)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L")) >= 128


def stack_images(blobs: Iterable[bytes]) -> np.ndarray:
    """A column of PNG bytes -> uint8 (B, H, W, 3); all images must share one size."""
    return np.stack([decode_png(b) for b in blobs])


def stack_masks(blobs: Iterable[bytes]) -> np.ndarray:
    """A column of mask PNG bytes -> bool (B, H, W)."""
    return np.stack([decode_mask(b) for b in blobs])
