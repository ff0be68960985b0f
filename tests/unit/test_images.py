"""Own images: ``image=`` takes a bundled name or a file path (PNG, JPEG with EXIF rotation,
TIFF)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import problems
from problems.images import load_rgb_image


def _halves(h: int = 24, w: int = 40) -> np.ndarray:
    """Left half red, right half blue: an orientation you can read off."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[:, : w // 2, 0] = 255
    arr[:, w // 2 :, 2] = 255
    return arr


def test_png_path_matches_the_pixels(tmp_path) -> None:
    gen = np.random.default_rng(0)
    arr = gen.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    path = tmp_path / "mine.png"
    Image.fromarray(arr).save(path)
    img = load_rgb_image(str(path), (20, 30))  # same size: resize is the identity
    assert img.shape == (3, 20, 30) and img.dtype == torch.float64
    np.testing.assert_allclose(img.permute(1, 2, 0).numpy(), arr / 255.0, atol=1e-12)
    small = load_rgb_image(path, (10, 15))
    assert small.shape == (3, 10, 15) and 0.0 <= float(small.min()) and float(small.max()) <= 1.0
    p = problems.make_problem("deblur2d", image=str(path), size=(16, 16))
    assert p.x_true.shape == (3, 16, 16) and p.params["image"] == str(path)


def test_jpeg_exif_rotation_is_respected(tmp_path) -> None:
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    Image.fromarray(_halves()).save(path, quality=95, exif=exif)
    img = load_rgb_image(str(path), (40, 24)).permute(1, 2, 0).numpy()  # displayed: 40 high, 24 wide
    # 90° clockwise: the stored left (red) half becomes the top, the right (blue) half the bottom
    assert img[:15, :, 0].mean() > 0.9 and img[:15, :, 2].mean() < 0.1
    assert img[25:, :, 2].mean() > 0.9 and img[25:, :, 0].mean() < 0.1
    # grey and palette images become RGB; TIFF reads too
    grey = tmp_path / "grey.tiff"
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(grey)
    np.testing.assert_allclose(load_rgb_image(str(grey), (8, 8)).numpy(), 128 / 255, atol=1e-12)


def test_missing_or_unreadable_file_is_one_line_naming_the_path(tmp_path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ValueError, match="image file not found: .*nope.png") as err:
        load_rgb_image(str(missing), (8, 8))
    assert "\n" not in str(err.value)
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image file .*junk.png") as err:
        problems.make_problem("deblur2d", image=str(junk), size=(8, 8))
    assert "\n" not in str(err.value)
