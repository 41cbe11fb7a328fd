"""Conditional residual coding: the decoded JPEG base (and its quality) feed g_a, the entropy
parameters and g_s; the residual is still what is coded, and real files round-trip exactly."""

from __future__ import annotations

import pytest
import torch

from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.hyres.conditioning import side_input

COND = ResidualConfig(N=16, M=24, depth=4, scale_levels=128, conditioning="base")


def _codec(config: ResidualConfig = COND, seed: int = 0) -> HyresCodec:
    torch.manual_seed(seed)
    residual = ResidualCodec(config)
    with torch.no_grad():  # an untrained latent rounds to zero; give it content
        residual.g_a[-2].weight.mul_(30.0)
    return HyresCodec(residual, JpegSettings(quality=5))


@pytest.fixture(scope="module")
def codec() -> HyresCodec:
    return _codec()


def test_unknown_conditioning_is_refused():
    with pytest.raises(ValueError, match="conditioning"):
        ResidualConfig(conditioning="jpeg")


def test_conditional_model_needs_the_side_input():
    model = ResidualCodec(COND).eval()
    with pytest.raises(ValueError, match="side_input"):
        model(torch.zeros(1, 3, 64, 64))


def test_every_part_sees_the_base():
    """Same residual, different base: the latent (g_a), the rate (entropy parameters) and the
    decoded residual for the same y_hat (g_s) all change."""
    torch.manual_seed(0)
    model = ResidualCodec(COND).eval()
    r = torch.randn(1, 3, 64, 64) * 0.1
    c1, c2 = side_input(torch.rand(1, 3, 64, 64), 5), side_input(torch.rand(1, 3, 64, 64), 5)
    assert not torch.allclose(model.analyse(r, c1), model.analyse(r, c2))
    y_hat = torch.round(model.analyse(r, c1) * 20)
    assert not torch.allclose(model.synthesise(y_hat, model.features(c1)), model.synthesise(y_hat, model.features(c2)))
    with torch.no_grad():
        params = model.latent_codec.hyper(model.analyse(r, c1))["params"]
        cb = model.checkerboard
        ctx = torch.zeros(1, 2 * COND.M, *params.shape[-2:])
        ep1 = cb.entropy_parameters(cb.merge(ctx, model._side(params, model.features(c1))))
        ep2 = cb.entropy_parameters(cb.merge(ctx, model._side(params, model.features(c2))))
    assert not torch.allclose(ep1, ep2)
    # the quality is an input too
    assert not torch.allclose(model.analyse(r, side_input(c1[:, :3] + 0.5, 50)), model.analyse(r, c1))


def test_round_trip_is_exact(codec, photo):
    enc = codec.encode_detailed(photo)
    dec = codec.decode_detailed(enc.data)
    assert torch.equal(enc.y_hat, dec.y_hat)
    assert torch.equal(codec.decode(enc.data), dec.image)
    assert dec.image.shape == photo.shape


def test_decoder_conditions_on_the_quality_in_the_header(codec, photo):
    data_q = codec.encode_detailed(photo, quality=40)
    dec = codec.decode_detailed(data_q.data)
    assert torch.equal(data_q.y_hat, dec.y_hat)


def test_conditioning_is_part_of_checkpoint_and_fingerprint(codec, photo, tmp_path):
    path = codec.save(tmp_path / "cond.ckpt")
    loaded = HyresCodec.load(path)
    assert loaded.residual.config.conditioning == "base"
    assert loaded.fingerprint == codec.fingerprint
    assert torch.equal(loaded.decode(codec.encode(photo)), codec.decode(codec.encode(photo)))
    plain = _codec(ResidualConfig(N=16, M=24, depth=4, scale_levels=128))
    assert plain.fingerprint != codec.fingerprint


def test_latent_free_mode_trains_without_rate_and_ignores_the_latent():
    torch.manual_seed(0)
    model = ResidualCodec(COND).train()
    r, cond = torch.randn(2, 3, 64, 64) * 0.1, side_input(torch.rand(2, 3, 64, 64), 10)
    out = model(r, cond, skip=torch.tensor([True, False]))
    assert torch.all(out["y_hat"][0] == 0) and torch.all(out["likelihoods"]["y"][0] == 1)
    assert torch.all(out["likelihoods"]["z"][0] == 1) and not torch.all(out["likelihoods"]["z"][1] == 1)
    zero_latent = model.synthesise(torch.zeros_like(out["y_hat"][:1]), model.features(cond[:1]))
    assert torch.allclose(out["r_hat"][:1], zero_latent)


def test_encoder_picks_the_cheapest_mode_and_the_decoder_follows(photo):
    """Each mode's file decodes to what the encoder assumed; the chosen one has the lowest
    rate-distortion cost of the three, measured on the decoded files."""
    from hyreslib.hyres import bitstream
    from hyreslib.results.metrics import bpp

    codec = _codec()

    def cost(data, lmbda):
        return lmbda * 255 ** 2 * float(((codec.decode(data) - photo) ** 2).mean()) + bpp(len(data), *photo.shape[-2:])

    forced = {m: codec.encode_detailed(photo, mode=m) for m in bitstream.MODES}
    for m, enc in forced.items():
        assert bitstream.read(enc.data)[0].mode == m and torch.equal(codec.decode_detailed(enc.data).y_hat, enc.y_hat)
    assert torch.equal(codec.decode(forced["base-only"].data), forced["base-only"].base)
    assert len(forced["latent-free"].data) == len(forced["base-only"].data) < len(forced["latent"].data)
    for lmbda in (1e-6, 1e-2, 1e3):
        codec.lmbda = lmbda
        chosen = codec.encode(photo)
        assert cost(chosen, lmbda) == pytest.approx(min(cost(e.data, lmbda) for e in forced.values()))
    codec.lmbda = None
    assert bitstream.read(codec.encode(photo))[0].mode == "latent"  # no λ: no choice


def test_encoder_searches_only_the_modes_it_keeps(photo, tmp_path, monkeypatch):
    """An encoder restricted to some modes never analyses or codes a latent it cannot choose, and
    keeps its modes in its checkpoint (a checkpoint naming an unknown mode is refused)."""
    from hyreslib.core.checkpoint import load_checkpoint, save_checkpoint
    from hyreslib.hyres import bitstream

    codec = _codec()
    codec.lmbda = 1e-2
    codec.modes = ["base-only", "latent-free"]
    assert codec.modes == ("latent-free", "base-only")  # kept in the search's order

    def no_latent(*args, **kwargs):
        raise AssertionError("the latent was analysed or coded")

    monkeypatch.setattr(codec.residual, "analyse", no_latent)
    monkeypatch.setattr(codec.residual, "compress_latent", no_latent)
    assert bitstream.read(codec.encode(photo))[0].mode in codec.modes
    monkeypatch.undo()
    loaded = HyresCodec.load(codec.save(tmp_path / "c.ckpt"))
    assert loaded.modes == ("latent-free", "base-only")
    for bad in ([], ["latent", "jpeg"]):
        with pytest.raises(ValueError, match="coding modes"):
            codec.modes = bad
    payload = load_checkpoint(tmp_path / "c.ckpt")
    save_checkpoint(tmp_path / "bad.ckpt", "hyres-codec", {**payload["config"], "modes": ["lossless"]},
                    payload["state_dict"])
    with pytest.raises(ValueError, match="bad.ckpt: invalid settings in the checkpoint.*coding modes"):
        HyresCodec.load(tmp_path / "bad.ckpt")


class _HalfwayToTheOriginal(torch.nn.Module):
    """A refiner that knows each image (by its shape) and halves the picture's error: it always pays."""

    def __init__(self, images):
        super().__init__()
        self.targets = {tuple(x.shape[-2:]): x for _, x in images}

    def forward(self, x):
        return x + 0.5 * (self.targets[tuple(x.shape[-2:])] - x)


@pytest.mark.parametrize("refiner,tolerance", [("helps", 0.0), ("helps", 1e-3), ("hurts", 0.0), ("helps", 10.0)])
def test_prune_leaves_out_what_does_not_pay_on_validation_images(trained_hyres, refiner, tolerance):
    """prune keeps the refiner only when it lowers the images' total RD cost (real files) by
    ``tolerance``, and drops modes (latent first) only while the best remaining mode's total cost
    stays within it: no kept mode could be dropped too. Tolerance 0 keeps exactly the modes that
    won on an image, and the pruned encoder writes the same files for them as the full search."""
    from hyreslib.datasets import data
    from hyreslib.hyres import MultiScaleRefine, bitstream
    from hyreslib.hyres.evaluate import prune
    from hyreslib.results.metrics import bpp

    # crops of distinct sizes on which the briefly trained codec at λ 0.003 chooses the latent for some and
    # base-only for others
    images = [(f"{name} {corner}", x[:, :128 + 8 * i, :160 + 8 * i] if corner == "top" else x[:, -96 - 8 * i:, -128:])
              for i, (name, x) in enumerate(data.embedded("test")) for corner in ("top", "bottom")]
    codec = HyresCodec.load(trained_hyres)
    if refiner == "helps":
        refine = _HalfwayToTheOriginal(images)
    else:
        refine = MultiScaleRefine(8, stride=2).eval()
        torch.nn.init.normal_(refine.fuse[-1].weight, std=0.05)
    codec.refine, codec.lmbda = refine, 0.003
    kept, report = prune(codec, images, tolerance, progress=False)

    def cost(data: bytes, x: torch.Tensor, decoder: HyresCodec) -> float:
        mse = float(((decoder.decode(data) - x) ** 2).mean())
        return codec.lmbda * 255 ** 2 * mse + bpp(len(data), *x.shape[-2:])

    full = [codec.encode_modes(x) for _, x in images]
    best = [min(o, key=lambda e: e.cost) for o in full]
    plain = HyresCodec(codec.residual, codec.jpeg, lmbda=codec.lmbda)
    gain = sum(cost(b.data, x, plain) for b, (_, x) in zip(best, images)) / \
        sum(cost(b.data, x, codec) for b, (_, x) in zip(best, images)) - 1
    assert report["refiner_gain"] == pytest.approx(gain, rel=1e-6) and (gain > 0) == (refiner == "helps")
    assert (kept.refine is refine) == (gain >= tolerance) == report["refiner_kept"]

    def total(modes) -> float:
        return sum(min(e.cost for e in o if e.mode in modes) for o in full)

    full_search = total(bitstream.MODES)
    limit = full_search * (1 + tolerance)
    assert total(kept.modes) <= limit and report["mode_cost"] == pytest.approx(total(kept.modes) / full_search - 1)
    if len(kept.modes) > 1:
        assert all(total([k for k in kept.modes if k != m]) > limit for m in kept.modes)
    if tolerance == 0.0:
        assert set(kept.modes) == {b.mode for b in best} == {"latent", "base-only"}
        assert [kept.encode(x) for _, x in images] == [b.data for b in best]
    if tolerance == 10.0:
        assert kept.modes == ("base-only",) and kept.refine is None
    assert codec.modes == bitstream.MODES and codec.refine is refine  # the codec pruned is left as it was


def test_lambda_is_saved_with_the_codec(tmp_path):
    codec = _codec()
    codec.lmbda = 0.01
    assert HyresCodec.load(codec.save(tmp_path / "c.ckpt")).lmbda == 0.01
