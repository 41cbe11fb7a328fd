"""The JPEG base layer: standard files with correct colours, the subsampling asked for, batches,
validation, and the nvJPEG path against the CPU one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from hyreslib.codecs import jpeg
from hyreslib.core.images import from_uint8, to_uint8
from hyreslib.datasets import data
from hyreslib.results import metrics


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A 96 x 128 crop of an embedded photograph (sizes that are multiples of the 16 px MCU)."""
    return data.embedded("test")[1][1][:, 100:196, 150:278].contiguous()


def _solid(rgb: tuple[int, int, int], size: int = 32) -> torch.Tensor:
    return from_uint8(np.broadcast_to(np.array(rgb, dtype=np.uint8), (size, size, 3)).copy())


def test_bytes_are_a_standard_jpeg_file(photo):
    (encoded,) = jpeg.encode(photo, 75)
    assert encoded[:2] == b"\xff\xd8" and encoded[-2:] == b"\xff\xd9"
    with Image.open(io.BytesIO(encoded)) as img:
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (128, 96)
        img.load()


@pytest.mark.parametrize("subsampling", list(jpeg.SUBSAMPLING))
@pytest.mark.parametrize("rgb", [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 200, 0)])
def test_colours_survive(rgb, subsampling):
    """A pure red image must stay red in any viewer (the reference fed RGB as BGR)."""
    (encoded,) = jpeg.encode(_solid(rgb), 90, subsampling)
    with Image.open(io.BytesIO(encoded)) as img:
        seen = np.asarray(img.convert("RGB")).reshape(-1, 3).mean(0)
    assert np.abs(seen - np.array(rgb)).max() < 6, seen
    decoded = to_uint8(jpeg.decode([encoded])[0]).reshape(-1, 3).mean(0)
    assert np.abs(decoded - seen).max() < 1e-9


@pytest.mark.parametrize("subsampling", list(jpeg.SUBSAMPLING))
def test_written_subsampling_matches_request(photo, subsampling):
    for optimize in (False, True):
        (encoded,) = jpeg.encode(photo, 50, subsampling, optimize=optimize)
        assert jpeg.sampling_of(encoded) == subsampling


def test_subsampling_at_every_quality_is_the_requested_one(photo):
    for q in (1, 50, 95, 100):
        assert jpeg.sampling_of(jpeg.encode_array(to_uint8(photo), q, "4:2:0")) == "4:2:0"


@pytest.mark.parametrize("quality", [0, 101, -5])
def test_quality_validated(photo, quality):
    with pytest.raises(ValueError, match="quality must be in 1..100"):
        jpeg.encode(photo, quality)


def test_subsampling_and_backend_validated(photo):
    with pytest.raises(ValueError, match="chroma subsampling must be one of"):
        jpeg.encode(photo, 50, "4:1:1")
    with pytest.raises(ValueError, match="backend must be"):
        jpeg.encode(photo, 50, backend="gpu")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        jpeg.encode(photo, 50, backend="nvjpeg")
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\)"):
        jpeg.encode(photo[:1], 50)


def test_decode_rejects_other_streams(photo):
    buf = io.BytesIO()
    Image.fromarray(to_uint8(photo)).save(buf, format="PNG")
    with pytest.raises(ValueError, match="not a JPEG stream"):
        jpeg.decode_array(buf.getvalue())
    with pytest.raises(ValueError, match="invalid JPEG stream"):
        jpeg.decode_array(b"\xff\xd8 garbage")


def test_batch_shapes_and_roundtrip(photo):
    batch = torch.stack([photo, photo.flip(-1), photo.flip(-2)])
    encoded = jpeg.encode(batch, 60)
    assert len(encoded) == 3 and all(isinstance(b, bytes) for b in encoded)
    decoded = jpeg.decode(encoded)
    assert decoded.shape == batch.shape and decoded.dtype == torch.float32
    result = jpeg.roundtrip(batch, 60)
    assert result.data == encoded
    assert torch.equal(result.decoded, decoded)
    assert result.nbytes == [len(b) for b in encoded]
    single = jpeg.roundtrip(photo, 60)
    assert single.decoded.shape == (1, *photo.shape) and single.data == encoded[:1]


def test_quality_trades_bytes_for_fidelity(photo):
    sizes, psnrs = [], []
    for q in (10, 50, 90):
        result = jpeg.roundtrip(photo, q)
        sizes.append(result.nbytes[0])
        psnrs.append(metrics.psnr(photo, result.decoded[0]))
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert psnrs == sorted(psnrs)


@pytest.mark.parametrize("subsampling", list(jpeg.SUBSAMPLING))
def test_optimize_gives_fewer_bytes_and_identical_pixels(photo, subsampling):
    plain = jpeg.roundtrip(photo, 75, subsampling, optimize=False)
    optimized = jpeg.roundtrip(photo, 75, subsampling, optimize=True)
    assert optimized.nbytes[0] < plain.nbytes[0]
    assert torch.equal(optimized.decoded, plain.decoded)


def test_encoding_is_deterministic(photo):
    assert jpeg.encode(photo, 40) == jpeg.encode(photo, 40)


@pytest.mark.gpu
def test_nvjpeg_agrees_with_cpu(photo, cuda):
    batch = torch.stack([photo, photo.flip(-1)])
    cpu = jpeg.roundtrip(batch, 75, "4:2:0", backend="cpu")
    gpu = jpeg.roundtrip(batch.to(cuda), 75, "4:2:0", backend="auto")
    assert gpu.decoded.device.type == "cuda" and gpu.decoded.shape == batch.shape
    for encoded in gpu.data:  # nvJPEG writes standard 4:2:0 files any decoder reads
        assert jpeg.sampling_of(encoded) == "4:2:0"
        jpeg.decode_array(encoded)
    # Same quality tables: similar size and fidelity; decoders may differ by a level or two.
    for i in range(2):
        assert gpu.nbytes[i] == pytest.approx(cpu.nbytes[i], rel=0.15)
        assert metrics.psnr(batch[i], gpu.decoded[i].cpu()) == pytest.approx(
            metrics.psnr(batch[i], cpu.decoded[i]), abs=0.5)
    on_gpu = jpeg.decode(cpu.data, cuda)
    assert metrics.psnr(on_gpu.cpu(), cpu.decoded).min() > 40
