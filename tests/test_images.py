"""Image loading and conversion: every non-RGB input is converted with a notice, and the 8-bit
round trip is exact."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from hyreslib.core import images
from hyreslib.core.images import ImageModeNotice


def _rgb_array(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img)


def test_rgb_passes_through_without_notice():
    img = Image.new("RGB", (4, 3), (10, 20, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert images.to_rgb(img) is img


def test_grayscale_is_replicated_with_notice():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    with pytest.warns(ImageModeNotice, match="photo.png: mode L converted to RGB"):
        out = _rgb_array(images.to_rgb(Image.fromarray(gray, "L"), "photo.png"))
    assert all(np.array_equal(out[..., c], gray) for c in range(3))


def test_rgba_is_composited_on_white():
    rgba = np.array([[[200, 0, 0, 255], [200, 0, 0, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    with pytest.warns(ImageModeNotice, match="alpha composited on white"):
        out = _rgb_array(images.to_rgb(Image.fromarray(rgba, "RGBA")))
    assert out[0, 0].tolist() == [200, 0, 0]          # opaque: its own colour
    assert out[0, 1].tolist() == [255, 255, 255]      # transparent: the white background
    assert all(abs(int(v) - 127) <= 1 for v in out[0, 2])  # half-transparent black: mid grey


def test_palette_without_and_with_transparency():
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1])
    with pytest.warns(ImageModeNotice, match="mode P converted"):
        assert _rgb_array(images.to_rgb(pal)).tolist() == [[[255, 0, 0], [0, 0, 255]]]
    pal.info["transparency"] = 1
    with pytest.warns(ImageModeNotice, match="alpha composited"):
        assert _rgb_array(images.to_rgb(pal)).tolist() == [[[255, 0, 0], [255, 255, 255]]]


def test_16_bit_grayscale_is_scaled_to_8_bits():
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    with pytest.warns(ImageModeNotice, match="converted to RGB"):
        out = _rgb_array(images.to_rgb(img))
    assert out[0, :, 0].tolist() == [0, 100, 255]
    # A 16-bit container holding 8-bit values is not scaled down.
    with pytest.warns(ImageModeNotice):
        small = _rgb_array(images.to_rgb(Image.fromarray(np.array([[3, 200]], dtype=np.uint16))))
    assert small[0, :, 1].tolist() == [3, 200]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_load_image_converts_files_with_notice(tmp_path, mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (5, 7), dtype=np.uint16))
    elif mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).convert("P")
    else:
        img = Image.fromarray(rng.integers(0, 256, (5, 7, len(mode)), dtype=np.uint8).squeeze(), mode)
    path = tmp_path / f"in_{mode.replace(';', '')}.png"
    img.save(path)
    with pytest.warns(ImageModeNotice, match=path.name):
        x = images.load_image(path)
    assert x.shape == (3, 5, 7) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1


def test_load_image_rgb_is_exact(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = images.load_image(tmp_path / "a.png")
    assert np.array_equal(images.to_uint8(x), arr)


def test_load_image_unreadable(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        images.load_image(bad)


def test_uint8_round_trip_is_exact():
    arr = np.random.default_rng(2).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    assert np.array_equal(images.to_uint8(images.from_uint8(arr)), arr)
    every_value = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3)
    assert np.array_equal(images.to_uint8(images.from_uint8(every_value)), every_value)


def test_to_uint8_rounds_and_clamps():
    x = torch.tensor([100.49, 100.51, -7.0, 300.0]).div(255).view(1, 1, 4).expand(3, 1, 4)
    assert images.to_uint8(x)[0, :, 0].tolist() == [100, 101, 0, 255]
    q = images.quantize_8bit(x)
    assert torch.equal(images.from_uint8(images.to_uint8(x)), q)


def test_shape_and_dtype_checks():
    with pytest.raises(ValueError, match="uint8"):
        images.from_uint8(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        images.from_uint8(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        images.to_uint8(torch.zeros(1, 3, 4, 4))


def test_png_bytes_and_save_image_are_lossless(tmp_path):
    x = images.from_uint8(np.random.default_rng(3).integers(0, 256, (8, 5, 3), dtype=np.uint8))
    path = images.save_image(x, tmp_path / "sub" / "dir" / "x.png")
    assert torch.equal(images.load_image(path), x)
    with Image.open(io.BytesIO(images.png_bytes(x))) as img:
        assert img.format == "PNG"
        assert np.array_equal(np.asarray(img), images.to_uint8(x))
