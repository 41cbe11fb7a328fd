"""Large images in tiles: the tiled transforms, base pyramid and refiner give the whole-image picture
(no visible seam), tiling switches on above its pixel threshold, and the decoder's memory check
counts a tile, not the whole image, once it tiles."""

from __future__ import annotations

import pytest
import torch

from hyreslib.core.limits import LimitError
from hyreslib.hyres import HyresCodec, JpegSettings, MultiScaleRefine, ResidualCodec, ResidualConfig
from hyreslib.hyres import bitstream, codec as codec_module
from hyreslib.hyres.tiling import Tiling, tiles
from hyreslib.results.metrics import psnr

SMALL_TILES = Tiling(threshold=0, tile=128, overlap=64)


def _codec(conditioning: str) -> HyresCodec:
    torch.manual_seed(0)
    residual = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64, conditioning=conditioning))
    refine = MultiScaleRefine(8)
    with torch.no_grad():
        residual.g_a[-2].weight.mul_(30.0)  # an untrained latent rounds to zero; give it content
        for p in refine.parameters():       # and a refiner that is not the identity, with a strong gate
            p.normal_(0.0, 0.3)
    return HyresCodec(residual, JpegSettings(quality=5), refine, lmbda=0.01)


@pytest.fixture(scope="module", params=["none", "base"])
def codec(request) -> HyresCodec:
    return _codec(request.param)


@pytest.fixture(scope="module")
def image(photo) -> torch.Tensor:
    return photo[:, :142, :198].contiguous()  # neither side a multiple of the refiner's 4 or the codec's 64


def test_tiles_cover_the_grid_once_on_aligned_edges():
    covered = torch.zeros(130, 200, dtype=torch.int32)
    for t in tiles(130, 200, Tiling(tile=48, overlap=20), align=16):
        assert t.top % 16 == 0 and t.left % 16 == 0
        assert t.top <= t.core_top and t.core_bottom <= t.bottom and t.left <= t.core_left <= t.core_right <= t.right
        covered[t.core_top:t.core_bottom, t.core_left:t.core_right] += 1
    assert torch.equal(covered, torch.ones_like(covered))


@pytest.mark.parametrize("stride", [1, 2])
def test_tiled_refiner_is_the_whole_image_refiner(image, stride):
    """Also its squeeze-excitation: a dark left part gives tiles means far from the image's; at stride 2
    the image's odd width is edge-padded once, before tiling."""
    torch.manual_seed(1)
    refine = MultiScaleRefine(8, stride=stride)
    x = image[:, :, :197].clone()  # odd width
    x[:, :, :96] *= 0.1
    with torch.no_grad():
        for p in refine.parameters():
            p.normal_(0.0, 0.3)
        for p in refine.stem[2].parameters():  # a gate that follows the mean closely
            p.normal_(0.0, 3.0)
        whole = refine(x[None])
        tiled = refine.tiled(x[None], Tiling(tile=48, overlap=32))
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_tiled_decode_and_encode_match_the_whole_image(codec, image):
    """Tiles of 128 pixels on a 198x142 photo: both seams cross the picture; PSNR within 0.01 dB."""
    encoded = codec.encode_detailed(image, mode="latent")
    assert encoded.y_hat.abs().sum() > 0
    whole = codec.decode(encoded.data)
    codec.tiling = SMALL_TILES
    try:
        tiled = codec.decode_detailed(encoded.data)
        reencoded = codec.encode_detailed(image, mode="latent")
        redecoded = codec.decode_detailed(reencoded.data)
    finally:
        codec.tiling = Tiling()
    # the same symbols; a base-conditioned model's means come from tiled base features, equal up to rounding
    torch.testing.assert_close(tiled.y_hat, encoded.y_hat, atol=1e-4, rtol=0)
    assert abs(float(psnr(tiled.image, image)) - float(psnr(whole, image))) < 0.01
    assert (tiled.image - whole).abs().max() < 1e-3  # no seam: a quarter of an 8-bit level at most
    # encoded in tiles, decoded in tiles: the same latent both ways, and the same quality
    assert torch.equal(redecoded.y_hat, reencoded.y_hat)
    assert abs(float(psnr(redecoded.image, image)) - float(psnr(whole, image))) < 0.01


def test_tiling_switches_on_above_its_threshold(monkeypatch, image):
    codec = _codec("base")
    calls = []
    real = codec_module.run_tiled
    monkeypatch.setattr(codec_module, "run_tiled", lambda *a, **k: calls.append(1) or real(*a, **k))
    pixels = image.shape[-1] * image.shape[-2]
    codec.tiling = Tiling(threshold=pixels, tile=128)
    data = codec.encode(image)
    codec.decode(data)
    assert not calls
    codec.tiling = Tiling(threshold=pixels - 1, tile=128)
    codec.decode(codec.encode(image))
    assert len(calls) >= 4  # features, analysis, synthesis when encoding; features, synthesis when decoding
    assert HyresCodec(ResidualCodec(ResidualConfig(N=16, M=24))).tiling.threshold == 1 << 21


def test_tiled_working_memory_is_bounded_and_checked_by_the_decoder(codec, image):
    paper = HyresCodec(ResidualCodec(ResidualConfig(N=128, M=192, conditioning="base")), refine=MultiScaleRefine(64))
    h, w = 4000, 6000  # 24 MP
    assert paper.tiling.applies(h, w)
    tiled = paper.working_memory(h, w)
    assert tiled < 8 << 30
    # past the tile, each extra pixel costs only the whole-image planes
    assert paper.working_memory(2 * h, w) - tiled <= h * w * codec_module.MEMORY_TILED_PER_PIXEL
    paper.tiling = Tiling(threshold=10**9)
    assert paper.working_memory(h, w) > 4 * tiled
    # the decoder's check uses the tiled estimate: a 24-MP header passes an 8 GiB limit only when tiled
    header, parts = bitstream.read(codec.encode(image))
    big = bitstream.write(bitstream.Header(w, h, header.jpeg_quality, header.subsampling, codec.fingerprint,
                                           header.content_crc, mode=header.mode), parts["jpeg"],
                          {k: parts[k] for k in bitstream.STRINGS})
    codec.tiling = Tiling(threshold=10**9)
    try:
        with pytest.raises(LimitError, match="GiB of memory"):
            codec.decode(big, max_memory=codec.working_memory(h, w) - 1)
        limit = codec.working_memory(h, w) - 1
        codec.tiling = Tiling()
        assert codec.working_memory(h, w) < limit
        with pytest.raises(ValueError, match="JPEG base"):  # past the memory check, refused on its content
            codec.decode(big, max_memory=limit)
    finally:
        codec.tiling = Tiling()
