"""The JPEG base layer: batch encode/decode with libjpeg-turbo (through Pillow), or nvJPEG on CUDA.

The bytes produced are ordinary baseline JPEG/JFIF files in RGB order (any viewer shows correct
colours; the public HyRES reference fed RGB as BGR). Chroma subsampling is explicit because it
changes both rate and quality a lot at low qualities.

Data flow::

    x (B,3,H,W) in [0,1] --encode--> [bytes] * B --decode--> x_jpeg (B,3,H,W) in [0,1]

The CPU decoder (libjpeg-turbo) is the *canonical* one: codecs that store a JPEG base always
decode it on CPU so the encoder and any decoder see bit-identical base pixels. The nvJPEG path
speeds up training batches on a GPU, where exactness across devices does not matter.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..core.images import from_uint8, to_uint8
from ..core.limits import check_size

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
# torchvision's nvJPEG encoder does not expose chroma subsampling; it writes 4:2:0 files.
NVJPEG_ENCODE_SUBSAMPLING = "4:2:0"


@dataclass
class JpegBatch:
    """Exact JPEG files for a batch and their decoded pixels."""

    data: list[bytes]
    decoded: torch.Tensor

    @property
    def nbytes(self) -> list[int]:
        return [len(d) for d in self.data]


def _check_subsampling(subsampling: str) -> int:
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"chroma subsampling must be one of {list(SUBSAMPLING)}, got {subsampling!r}")
    return SUBSAMPLING[subsampling]


def _check_quality(quality: int) -> int:
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    return int(quality)


def encode_array(arr: np.ndarray, quality: int, subsampling: str = "4:2:0", optimize: bool = True) -> bytes:
    """Encode one (H, W, 3) uint8 RGB array. ``optimize`` builds per-image Huffman tables (smaller,
    still baseline JPEG); ``False`` gives libjpeg's default tables, as most published curves use."""
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=_check_quality(quality),
                                     subsampling=_check_subsampling(subsampling), optimize=optimize)
    return buf.getvalue()


def decode_array(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Decode JPEG bytes to an (H, W, 3) uint8 RGB array with libjpeg-turbo. The size in the JPEG
    header is checked against ``max_pixels`` (:mod:`hyreslib.core.limits`) before any pixel is decoded."""
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            check_size(*img.size, max_pixels, what="JPEG stream")
            img.load()
            return np.asarray(img.convert("RGB"))
    except UnidentifiedImageError:  # only the JPEG parser is tried: less code sees hostile bytes
        raise ValueError("not a JPEG stream (invalid JPEG stream header)") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"invalid JPEG stream: {exc}") from exc


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
    return x


def _use_nvjpeg(x: torch.Tensor, backend: str) -> bool:
    if backend not in ("auto", "cpu", "nvjpeg"):
        raise ValueError(f"backend must be auto, cpu or nvjpeg, got {backend!r}")
    if backend == "nvjpeg" and not x.is_cuda:
        raise ValueError("the nvjpeg backend needs CUDA tensors")
    return backend == "nvjpeg" or (backend == "auto" and x.is_cuda)


def encode(x: torch.Tensor, quality: int, subsampling: str = "4:2:0", optimize: bool = True,
           backend: str = "auto") -> list[bytes]:
    """Encode a batch of [0, 1] images; returns one JPEG file per image."""
    x = _as_batch(x)
    if _use_nvjpeg(x, backend) and subsampling == NVJPEG_ENCODE_SUBSAMPLING:
        from torchvision.io import encode_jpeg

        q = x.detach().clamp(0, 1).mul(255).round().to(torch.uint8)
        return [bytes(t.cpu().numpy()) for t in encode_jpeg(list(q), quality=_check_quality(quality))]
    return [encode_array(to_uint8(img), quality, subsampling, optimize) for img in x]


def decode(data: Sequence[bytes], device: torch.device | str = "cpu", backend: str = "auto") -> torch.Tensor:
    """Decode same-sized JPEG files into a (B, 3, H, W) float tensor on ``device``."""
    device = torch.device(device)
    if backend == "nvjpeg" or (backend == "auto" and device.type == "cuda"):
        from torchvision.io import ImageReadMode, decode_jpeg

        raw = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
        imgs = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
        return torch.stack(imgs).float().div_(255.0)
    return torch.stack([from_uint8(decode_array(d)) for d in data]).to(device)


def roundtrip(x: torch.Tensor, quality: int, subsampling: str = "4:2:0", optimize: bool = True,
              backend: str = "auto") -> JpegBatch:
    """Encode and decode a batch; the decoded tensor is on the input's device."""
    x = _as_batch(x)
    data = encode(x, quality, subsampling, optimize, backend)
    return JpegBatch(data=data, decoded=decode(data, x.device, "cpu" if backend == "cpu" else backend))


def sampling_of(data: bytes) -> str:
    """Chroma subsampling actually written in a JPEG file (read back from its header)."""
    from PIL import JpegImagePlugin

    with Image.open(io.BytesIO(data)) as img:
        code = JpegImagePlugin.get_sampling(img)
    names = {v: k for k, v in SUBSAMPLING.items()}
    return names.get(code, f"other({code})")
