"""Image loading and tensor conversion shared by every codec.

Convention everywhere in the kit: an image is a float32 tensor in [0, 1], shape (3, H, W) or
(B, 3, H, W), RGB. 8-bit conversion always rounds (never truncates), so ``to_tensor(to_uint8(x))``
is the identity on the 8-bit grid.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fileio import atomic_write
from .limits import check_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


class ImageModeNotice(UserWarning):
    """Emitted when an input image is converted to RGB (grayscale, alpha, palette, 16-bit...)."""


def to_rgb(img: Image.Image, name: str = "image") -> Image.Image:
    """Return ``img`` as 8-bit RGB, warning when a conversion changes what the user gave us.

    Alpha is composited on white (dropping it silently would show garbage in transparent areas).
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        warnings.warn(f"{name}: mode {img.mode} with alpha composited on white and converted to RGB",
                      ImageModeNotice, stacklevel=2)
        return out
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(np.round(arr / 257.0 if arr.max() > 255 else arr), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    warnings.warn(f"{name}: mode {img.mode} converted to RGB", ImageModeNotice, stacklevel=2)
    return img.convert("RGB")


def load_image(path: str | Path, max_pixels: int | None = None) -> torch.Tensor:
    """Read an image file as a (3, H, W) float tensor in [0, 1]. Its size is checked against
    ``max_pixels`` (:mod:`hyreslib.core.limits`) before its pixels are decoded."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not an image file")
    try:
        with Image.open(path) as img:
            check_size(*img.size, max_pixels, what=f"image {path.name}")
            img.load()
            rgb = to_rgb(img, path.name)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # Pillow raises these for unreadable files
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    return from_uint8(np.asarray(rgb))


def check_image(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a detached float32 CPU image; a ``ValueError`` unless it is a finite (3, H, W) float
    tensor (what every codec's encoder takes)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3 or not x.is_floating_point():
        raise ValueError(f"expected a (3, H, W) float image in [0, 1], got {getattr(x, 'shape', type(x))}")
    if not torch.isfinite(x).all():
        raise ValueError("image has non-finite values")
    return x.detach().float().cpu()


def from_uint8(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 array -> (3, H, W) float tensor in [0, 1]."""
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {arr.dtype} {arr.shape}")
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) float tensor in [0, 1] -> (H, W, 3) uint8 array, rounded to nearest."""
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got {tuple(x.shape)}")
    q = x.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return q.permute(1, 2, 0).contiguous().cpu().numpy()


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] tensor to the 8-bit grid (what a viewer would display), keeping float dtype."""
    return x.clamp(0, 1).mul(255.0).round().div(255.0)


def center_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """The central ``size`` x ``size`` window (the whole extent along a shorter side; None: ``x``)."""
    if not size:
        return x
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top:top + size, left:left + size]


def to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(x), "RGB")


def png_bytes(x: torch.Tensor) -> bytes:
    """Lossless PNG bytes of an image tensor (for widgets, reports and lossless baselines)."""
    buf = io.BytesIO()
    to_pil(x).save(buf, format="PNG")
    return buf.getvalue()


def save_image(x: torch.Tensor, path: str | Path) -> Path:
    """Write an image atomically, in the format its suffix names (``.png``, ``.bmp``...)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image file suffix {path.suffix!r} (use .png)")
    img = to_pil(x)
    return atomic_write(path, lambda f: img.save(f, format=fmt))
