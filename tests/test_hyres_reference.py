"""The equal-budget references: the pure learned codec (the HyRES residual codec without a base
layer) and CompressAI's bmshj2018-hyperprior trained by the kit's engine, both through real files."""

from __future__ import annotations

import pytest
import torch

from hyreslib.codecs.container import CorruptStreamError
from hyreslib.datasets import data
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig, bitstream
from hyreslib.hyres.codec import NO_BASE
from hyreslib.hyres.reference import ReferenceCodec, bmshj2018
from hyreslib.hyres.stages import train_reference
from hyreslib.training.engine import TrainSetup


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return data.embedded("test")[0][1][:, :100, :130].contiguous()


def _no_base_codec() -> HyresCodec:
    torch.manual_seed(0)
    residual = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64, residual_gain=1.0))
    with torch.no_grad():
        residual.g_a[-2].weight.mul_(30.0)
    return HyresCodec(residual, JpegSettings(quality=NO_BASE))


def test_codec_without_base_writes_no_jpeg_and_round_trips(photo):
    codec = _no_base_codec()
    enc = codec.encode_detailed(photo)
    header, parts = bitstream.read(enc.data)
    assert header.jpeg_quality == NO_BASE and parts["jpeg"] == b""
    assert torch.equal(enc.base, torch.full_like(photo, 0.5))
    dec = codec.decode_detailed(enc.data)
    assert torch.equal(dec.y_hat, enc.y_hat)
    assert bitstream.breakdown(enc.data)["jpeg"] == 0


def test_base_quality_cannot_be_added_or_dropped(photo):
    with pytest.raises(ValueError, match="not available"):
        _no_base_codec().encode(photo, quality=10)
    torch.manual_seed(0)
    with_base = HyresCodec(ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64)), JpegSettings(5))
    with pytest.raises(ValueError, match="1..100"):
        with_base.encode(photo, quality=NO_BASE)


def test_a_jpeg_chunk_in_a_file_without_base_is_refused(photo):
    from hyreslib.codecs.container import pack, unpack

    data_ = _no_base_codec().encode(photo)
    _, chunks = unpack(data_, bitstream.MAGIC, [bitstream.VERSION])
    chunks[1] = b"\xff\xd8junk"
    with pytest.raises(CorruptStreamError, match="base layer"):
        bitstream.read(pack(bitstream.MAGIC, bitstream.VERSION, chunks))


def test_bmshj2018_trains_on_the_engine_and_round_trips_real_bytes(photo):
    images = data.embedded("train")
    budget = TrainSetup(steps=3, crop=64, batch=2, lr=1e-3, workers=0, log_every=1)
    codec, hist = train_reference(0.01, 16, 24, images, data.embedded("validation").subset(1), budget)
    assert len(hist.rows) == 3 and hist.best_state is not None
    blob = codec.encode(photo)
    out = codec.decode(blob)
    assert out.shape == photo.shape and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, codec.decode(blob))
    with pytest.raises(CorruptStreamError):
        codec.decode(blob[:-1])


def test_bmshj2018_is_compressai_architecture():
    from compressai.zoo import bmshj2018_hyperprior

    ours = sum(p.numel() for p in bmshj2018(128, 192).parameters())
    zoo = sum(p.numel() for p in bmshj2018_hyperprior(quality=3, pretrained=False).parameters())
    assert ours == zoo
    assert isinstance(ReferenceCodec(bmshj2018(16, 24)).model.g_a[0], torch.nn.Conv2d)
