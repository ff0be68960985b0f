"""Ground-truth colour images for the 2D problems: a bundled scikit-image name or a path to your own file.

``load_rgb_image(image, size)`` returns a (3, H, W) float64 CPU tensor in [0, 1]:

* a name in ``RGB_IMAGES`` — ``skimage.data.<name>()`` (bundled, no download);
* anything else is a path (PNG, JPEG, TIFF, or any format Pillow reads): opened with Pillow, rotated by its
  EXIF orientation tag (``ImageOps.exif_transpose``; phone photos are stored sideways), converted to RGB
  (grey, palette and alpha images included), scaled to [0, 1] by the bit depth.

Then resized to ``size`` = (H, W) with anti-aliasing (``skimage.transform.resize``) and clipped to [0, 1].
A missing or unreadable file is a one-line ``ValueError`` naming the path.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: colour images bundled with scikit-image (no download needed)
RGB_IMAGES = (
    "astronaut",
    "cat",
    "chelsea",
    "coffee",
    "colorwheel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
    "motorcycle",
)
#: bundled names that are one part of what ``skimage.data`` returns: name → (function, index)
_BUNDLED_PARTS = {"motorcycle": ("stereo_motorcycle", 0)}  # the left view of the stereo pair


def as_size(size: object) -> tuple[int, int]:
    """(H, W) from an int or a pair; at least 2×2."""
    if isinstance(size, int):
        size = (size, size)
    try:
        h, w = (int(s) for s in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if h < 2 or w < 2:
        raise ValueError(f"size must be at least (2, 2), got {(h, w)}")
    return h, w


def load_rgb_image(image: str | Path, size: object) -> Tensor:
    """The image (bundled name or file path) as a (3, H, W) float64 tensor in [0, 1], resized to size."""
    key = str(image)
    if key not in RGB_IMAGES:
        path = Path(key).expanduser()
        # the file's identity enters the cache key, so an edited file is read again
        stat = path.stat() if path.is_file() else None
        key = f"{path.resolve()}:{stat.st_mtime_ns}:{stat.st_size}" if stat else key
        return _load(key, str(path), as_size(size)).clone()
    return _load(key, None, as_size(size)).clone()


@functools.lru_cache(maxsize=16)
def _load(key: str, path: str | None, size: tuple[int, int]) -> Tensor:
    from skimage.transform import resize

    arr = _read_bundled(key) if path is None else _read_file(path)
    img = resize(arr, (*size, 3), anti_aliasing=True).clip(0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()


def _read_bundled(name: str) -> np.ndarray:
    import skimage.data
    from skimage.util import img_as_float64

    function, index = _BUNDLED_PARTS.get(name, (name, None))
    arr = getattr(skimage.data, function)()
    arr = img_as_float64(arr if index is None else arr[index])
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"image {name!r} has shape {arr.shape}, not (H, W, 3)")
    return arr


def _read_file(path: str) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        bundled = ", ".join(RGB_IMAGES)
        raise ValueError(f"image file not found: {path} (or use a bundled image: {bundled})")
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)
            bits = 16 if im.mode in ("I;16", "I;16B", "I;16L", "I") else 8
            if bits == 16:
                arr = np.asarray(im, dtype=np.float64) / 65535.0
                arr = np.repeat(arr[..., None], 3, axis=-1)
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image file {path}: {type(exc).__name__}: {exc}") from None
    if arr.ndim != 3 or arr.shape[-1] != 3 or min(arr.shape[:2]) < 1:
        raise ValueError(f"cannot read image file {path}: decoded shape {arr.shape}, not (H, W, 3)")
    return arr
