"""Standard image codecs behind one interface: JPEG, WebP, AVIF, JPEG XL and lossless formats.

Every codec is ``encode(uint8 HxWx3, quality) -> bytes`` and ``decode(bytes) -> uint8 HxWx3``
(``quality`` 1..100, ignored by a lossless codec), so the classical sweep
(:mod:`hyreslib.pipeline.baselines`) and hideNet's lossless tables measure them all the same way.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import imagecodecs
import numpy as np
import PIL
from PIL import Image, features

from . import jpeg

AVIF_SPEED = 6  # libavif/aom speed 0 (slowest) .. 10; 6 is Pillow's default and ~0.3 s per Kodak image
JXL_EFFORT = 7  # libjxl effort 1..9; 7 is cjxl's default
JXL_MAX_EFFORT = 9  # the slowest, densest lossless setting (about 5x effort 7's encode time)


@dataclass(frozen=True)
class Codec:
    """A classical codec: ``quality`` is 1..100 (higher = better) and ignored when ``lossless``."""

    name: str
    description: str
    encode: Callable[[np.ndarray, int | None], bytes]
    decode: Callable[[bytes], np.ndarray]
    lossless: bool = False


def check_quality(quality: int | None) -> int:
    if quality is None or not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be an integer in 1..100, got {quality}")
    return int(quality)


def _pillow_encode(arr: np.ndarray, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format=fmt, **params)
    return buf.getvalue()


def _pillow_decoder(fmt: str) -> Callable[[bytes], np.ndarray]:
    def decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != fmt:
                raise ValueError(f"not a {fmt} stream (found {img.format})")
            return np.asarray(img.convert("RGB"))
    return decode


def jxl_distance(quality: int) -> float:
    """Butteraugli distance for a 1..100 quality, on libjxl's own quality scale (cjxl ``-q``):
    linear above 30 (q 90 -> distance 1.0, "visually lossless"), quadratic below, up to 23.9 at q 1.

    One change: q 100 maps to the smallest lossy distance (0.1) rather than to lossless, which is
    the separate ``jxl-lossless`` codec.
    """
    q = check_quality(quality)
    if q >= 30:
        return 0.1 + (100 - q) * 0.09
    return 53.0 / 3000.0 * q * q - 23.0 / 20.0 * q + 25.0


def _jxl_decode(data: bytes) -> np.ndarray:
    arr = imagecodecs.jpegxl_decode(data, numthreads=1)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"JPEG XL stream decoded to {arr.dtype} {arr.shape}, expected 8-bit RGB")
    return arr


def jpegls_encode(arr: np.ndarray, max_error: int = 0) -> bytes:
    """JPEG-LS (CharLS, sample-interleaved RGB, no colour transform): lossless at ``max_error`` 0,
    else near-lossless with every sub-pixel within ``max_error`` (the standard's NEAR)."""
    return bytes(imagecodecs.jpegls_encode(arr, level=int(max_error)))


def jpegls_decode(data: bytes) -> np.ndarray:
    arr = imagecodecs.jpegls_decode(data)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"JPEG-LS stream decoded to {arr.dtype} {arr.shape}, expected 8-bit RGB")
    return arr


def _build_registry() -> dict[str, Codec]:
    pil = f"Pillow {PIL.__version__}"
    turbo = f"libjpeg-turbo {features.version('libjpeg_turbo')}"
    webp = f"libwebp {features.version('webp')}"
    avif = f"libavif {features.version('avif')} (aom encoder)"
    jxl = f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegxl_version()}"
    jpegls = f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegls_version()}"
    codecs = [
        Codec("jpeg", f"JPEG 4:2:0, {pil} ({turbo}), default Huffman tables (optimize=False)",
              lambda a, q: jpeg.encode_array(a, check_quality(q), "4:2:0", optimize=False),
              jpeg.decode_array),
        Codec("jpeg444", f"JPEG 4:4:4, {pil} ({turbo}), default Huffman tables (optimize=False)",
              lambda a, q: jpeg.encode_array(a, check_quality(q), "4:4:4", optimize=False),
              jpeg.decode_array),
        Codec("webp", f"WebP lossy, {pil} ({webp}), method=4 (default)",
              lambda a, q: _pillow_encode(a, "WEBP", quality=check_quality(q), method=4),
              _pillow_decoder("WEBP")),
        Codec("avif", f"AVIF 4:2:0, {pil} ({avif}), speed={AVIF_SPEED}, 1 thread",
              lambda a, q: _pillow_encode(a, "AVIF", quality=check_quality(q), speed=AVIF_SPEED,
                                          subsampling="4:2:0", codec="aom", max_threads=1),
              _pillow_decoder("AVIF")),
        Codec("jxl", f"JPEG XL lossy, {jxl}, effort={JXL_EFFORT}, distance=jxl_distance(quality), 1 thread",
              lambda a, q: bytes(imagecodecs.jpegxl_encode(a, distance=jxl_distance(q), effort=JXL_EFFORT,
                                                           numthreads=1)),
              _jxl_decode),
        Codec("png", f"PNG, {pil} (zlib {features.version('zlib')}), compress_level=6 (default)",
              lambda a, q: _pillow_encode(a, "PNG", compress_level=6), _pillow_decoder("PNG"), lossless=True),
        Codec("webp-lossless", f"WebP lossless, {pil} ({webp}), quality(effort)=80, method=4 (defaults)",
              lambda a, q: _pillow_encode(a, "WEBP", lossless=True, quality=80, method=4),
              _pillow_decoder("WEBP"), lossless=True),
        Codec("jxl-lossless", f"JPEG XL lossless, {jxl}, effort={JXL_EFFORT}, 1 thread",
              lambda a, q: bytes(imagecodecs.jpegxl_encode(a, lossless=True, effort=JXL_EFFORT, numthreads=1)),
              _jxl_decode, lossless=True),
        Codec("jxl-lossless-e9", f"JPEG XL lossless, {jxl}, effort={JXL_MAX_EFFORT}, 1 thread",
              lambda a, q: bytes(imagecodecs.jpegxl_encode(a, lossless=True, effort=JXL_MAX_EFFORT, numthreads=1)),
              _jxl_decode, lossless=True),
        Codec("jpegls-lossless", f"JPEG-LS lossless, {jpegls}, sample-interleaved RGB",
              lambda a, q: jpegls_encode(a), jpegls_decode, lossless=True),
    ]
    return {c.name: c for c in codecs}


CODECS: dict[str, Codec] = _build_registry()


def get_codec(name: str) -> Codec:
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}")
    return CODECS[name]
