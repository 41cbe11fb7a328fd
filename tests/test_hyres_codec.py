"""The HyRES codec on real bytes: exact round trips, any image size, checkpoints, refinement on
the decoder side only, a trained codec beating its JPEG base with an unclamped residual, and the
real rate against the model's estimate."""

from __future__ import annotations

import pytest
import torch

from hyreslib.codecs.container import ModelMismatchError
from hyreslib.datasets import data
from hyreslib.hyres import HyresCodec, JpegSettings, MultiScaleRefine, ResidualCodec, ResidualConfig
from hyreslib.hyres import bitstream
from hyreslib.hyres.evaluate import evaluate_image
from hyreslib.results.metrics import psnr

TINY = ResidualConfig(N=16, M=24, depth=4, scale_levels=128)


def _codec(seed: int = 0, refine: MultiScaleRefine | None = None) -> HyresCodec:
    torch.manual_seed(seed)
    residual = ResidualCodec(TINY)
    with torch.no_grad():  # an untrained latent rounds to zero; give it content
        residual.g_a[-2].weight.mul_(30.0)
    return HyresCodec(residual, JpegSettings(quality=5), refine)


@pytest.fixture(scope="module")
def codec() -> HyresCodec:
    return _codec()


def test_round_trip_is_exact(codec, photo):
    enc = codec.encode_detailed(photo)
    dec = codec.decode_detailed(enc.data)
    assert torch.equal(enc.y_hat, dec.y_hat)
    assert dec.image.shape == photo.shape and 0 <= dec.image.min() and dec.image.max() <= 1
    assert torch.equal(codec.decode(enc.data), dec.image)  # decoding is deterministic
    header, parts = bitstream.read(enc.data)
    assert (header.width, header.height, header.jpeg_quality) == (200, 150, 5)
    assert parts["jpeg"][:2] == b"\xff\xd8"


@pytest.mark.parametrize("size", [(1, 1), (17, 100), (64, 64), (65, 130)])
def test_any_image_size(codec, size):
    h, w = size
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * w))
    enc = codec.encode_detailed(x)
    dec = codec.decode_detailed(enc.data)
    assert dec.image.shape == (3, h, w)
    assert torch.equal(enc.y_hat, dec.y_hat)


def test_quality_override_is_recorded(codec, photo):
    data_q = codec.encode(photo, quality=30)
    assert bitstream.read(data_q)[0].jpeg_quality == 30
    assert codec.decode(data_q).shape == photo.shape


def test_rejects_bad_images(codec):
    with pytest.raises(ValueError, match="3, H, W"):
        codec.encode(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="non-finite"):
        codec.encode(torch.full((3, 8, 8), float("nan")))


def test_file_from_another_model_is_refused(codec, photo):
    other = _codec(seed=1)
    with pytest.raises(ModelMismatchError, match="another model"):
        other.decode(codec.encode(photo))


def test_checkpoint_round_trip(tmp_path, codec, photo):
    path = codec.save(tmp_path / "codec.ckpt", extra={"note": "test"})
    loaded = HyresCodec.load(path)
    assert loaded.fingerprint == codec.fingerprint
    data_ = codec.encode(photo)
    assert loaded.encode(photo) == data_  # codes at once, identically
    assert torch.equal(loaded.decode(data_), codec.decode(data_))
    with pytest.raises(ValueError, match="expected 'hyres-codec'"):
        from hyreslib.core.checkpoint import load_checkpoint, save_checkpoint

        save_checkpoint(tmp_path / "other.ckpt", "hidenet", {}, {})
        HyresCodec.load(tmp_path / "other.ckpt")
    assert load_checkpoint(path)["extra"] == {"note": "test"}


@pytest.mark.parametrize("stride", [1, 2])
def test_refinement_is_decoder_side_only(tmp_path, photo, stride):
    refine = MultiScaleRefine(width=8, stride=stride)
    torch.nn.init.normal_(refine.fuse[-1].weight, std=0.05)
    plain, refined = _codec(), _codec(refine=refine)
    assert plain.fingerprint == refined.fingerprint
    data_ = plain.encode(photo)
    assert refined.encode(photo) == data_  # the bitstream does not depend on the refiner
    assert not torch.equal(refined.decode(data_), plain.decode(data_))
    loaded = HyresCodec.load(refined.save(tmp_path / "r.ckpt"))
    assert loaded.refine.stride == stride
    assert torch.equal(loaded.decode(data_), refined.decode(data_))
    assert torch.equal(HyresCodec.load(tmp_path / "r.ckpt", use_refine=False).decode(data_), plain.decode(data_))


def test_evaluation_counts_every_byte(codec, photo):
    row = evaluate_image(codec, photo)
    parts = row["bpp_jpeg"] + row["bpp_z"] + row["bpp_y"] + row["bpp_container"]
    assert row["bpp"] == pytest.approx(parts)
    assert row["bpp"] == pytest.approx(8 * row["bytes"] / (150 * 200))
    assert row["latents_exact"]


def test_trained_codec_beats_its_jpeg_base_with_the_signed_residual(trained_hyres):
    """The decoder adds the decoded residual unclamped (it is signed) and clamps only the image; a
    decoder that clamped the residual to [0, 1] (the public reference's bug) loses most of the gain."""
    codec = HyresCodec.load(trained_hyres)
    gains, exact = [], []
    for name, x in list(data.embedded("test"))[:3]:
        dec = codec.decode_detailed(codec.encode(x))
        with torch.no_grad():
            r_hat = codec.residual.synthesise(dec.y_hat)[0, :, :x.shape[1], :x.shape[2]]
        assert float(r_hat.min()) < -0.05, name  # negative corrections exist and matter
        exact.append(torch.equal(dec.image, (dec.base + r_hat).clamp(0, 1)))
        gains.append(psnr(dec.image, x) - psnr(dec.base, x))
    assert sum(gains) / len(gains) > 0.6, gains  # measured: 0.96 dB; with the residual clamped: 0.33 dB
    assert all(exact)


def test_kodak_round_trip_exact_and_real_rate_within_two_percent_of_estimate(kodak, trained_hyres):
    """The briefly trained model on full Kodak images (landscape and portrait): the decoder rebuilds
    the encoder's latent exactly, the real residual bytes are within 2% of the model's estimate, and
    the decoded image beats the JPEG base."""
    codec = HyresCodec.load(trained_hyres)
    for name, x in (kodak[0], kodak[3]):
        row = evaluate_image(codec, x)
        assert row["latents_exact"], name
        assert row["bpp_y"] > 0.05, name  # the latent is in use, so the comparison means something
        assert abs(row["rate_gap"]) < 0.02, (name, row["real_bits_y"], row["est_bits_y"])
        assert row["psnr"] > row["psnr_jpeg"] + 0.2, name
