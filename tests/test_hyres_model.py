"""The residual model: transforms, checkerboard rate accounting, quantisers, no residual clamp,
and the decoder-side refiner."""

from __future__ import annotations

import pytest
import torch

from hyreslib.hyres.codec import compose
from hyreslib.hyres.refine import MultiScaleRefine
from hyreslib.hyres.residual import ResidualCodec, ResidualConfig, likelihood_bits
from hyreslib.hyres.transforms import pad_multiple

SMALL = ResidualConfig(N=16, M=24, depth=4, scale_levels=64)


@pytest.fixture
def model() -> ResidualCodec:
    torch.manual_seed(0)
    return ResidualCodec(SMALL).eval()


def _residual(size: int = 64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, size, size, generator=g) * 0.2


def _spread_latent(model: ResidualCodec, gain: float = 30.0) -> None:
    """Untrained g_a outputs round to zero; scale its last convolution so y has content."""
    conv = model.g_a[-2]
    with torch.no_grad():
        conv.weight.mul_(gain)
        conv.bias.mul_(gain)


@pytest.mark.parametrize("depth", [3, 4])
def test_shapes_follow_depth(depth):
    cfg = ResidualConfig(N=16, M=24, depth=depth)
    m = ResidualCodec(cfg).eval()
    k = pad_multiple(depth)
    assert m.downsampling_factor == k
    out = m(torch.zeros(1, 3, k, 2 * k))
    assert out["r_hat"].shape == (1, 3, k, 2 * k)
    assert out["likelihoods"]["y"].shape == (1, 24, k // 2 ** depth, 2 * k // 2 ** depth)
    assert out["likelihoods"]["z"].shape[-2:] == (1, 2)


def test_paper_scale_is_about_ten_million_parameters():
    n = sum(p.numel() for p in ResidualCodec(ResidualConfig(N=128, M=192)).parameters())
    assert 9e6 < n < 12e6


def test_rejects_uncodable_sizes(model):
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.zeros(1, 3, 64, 96))
    with pytest.raises(ValueError, match="depth"):
        ResidualCodec(ResidualConfig(N=16, M=24, depth=1))


def _per_pass_likelihoods(model: ResidualCodec, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Recompute y's likelihoods by hand: anchors from the hyperprior alone, non-anchors with the
    context of the rounded anchors. Returns (likelihoods with each pass's own parameters,
    likelihoods with the anchor parameters everywhere)."""
    cb = model.checkerboard
    gc = cb.y.gaussian_conditional
    side = model.latent_codec.hyper(y)["params"]
    zeros = torch.zeros_like(side)
    scales_a, means_a = cb.entropy_parameters(torch.cat([zeros, side], 1)).chunk(2, 1)
    anchor = torch.zeros_like(y, dtype=torch.bool)
    anchor[..., 0::2, 0::2] = True
    anchor[..., 1::2, 1::2] = True
    y_hat_a = torch.where(anchor, torch.round(y - means_a) + means_a, torch.zeros_like(y))
    scales_n, means_n = cb.entropy_parameters(torch.cat([cb.context_prediction(y_hat_a), side], 1)).chunk(2, 1)
    scales = torch.where(anchor, scales_a, scales_n)
    means = torch.where(anchor, means_a, means_n)
    own = gc.likelihood_lower_bound(gc._likelihood(torch.round(y - means) + means, scales, means))
    wrong = gc.likelihood_lower_bound(gc._likelihood(torch.round(y - means_a) + means_a, scales_a, means_a))
    return own, wrong


@torch.no_grad()
def test_rate_uses_the_parameters_of_the_pass_that_codes_each_position(model):
    _spread_latent(model)
    r = _residual()
    y = model.analyse(r)
    forward = model(r)["likelihoods"]["y"]
    own, wrong = _per_pass_likelihoods(model, y)
    torch.testing.assert_close(forward, own, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(forward, wrong, rtol=1e-2)  # the check can tell the passes apart


def test_training_rate_of_anchors_ignores_the_context_model(model):
    """In training mode too, anchors are coded from the hyperprior alone: perturbing the context
    network changes the rate of non-anchors only."""
    _spread_latent(model)
    model.train()
    r = _residual()

    def likelihoods():
        torch.manual_seed(5)  # same quantisation noise in both runs
        return model(r)["likelihoods"]["y"].detach()

    before = likelihoods()
    with torch.no_grad():
        model.checkerboard.context_prediction.weight.add_(0.5)
    after = likelihoods()
    anchor = torch.zeros_like(before, dtype=torch.bool)
    anchor[..., 0::2, 0::2] = True
    anchor[..., 1::2, 1::2] = True
    assert torch.equal(before[anchor], after[anchor])
    assert not torch.equal(before[~anchor], after[~anchor])


@torch.no_grad()
def test_each_pass_codes_only_its_own_half(model):
    _spread_latent(model)
    model.update(force=True)
    r = _residual()
    strings = model.compress(r)["strings"]
    # Changing y at non-anchor positions must leave the anchor string untouched.
    y = model.analyse(r)
    bumped = y.clone()
    bumped[..., 0::2, 1::2] += 3.0
    bumped[..., 1::2, 0::2] += 3.0
    out = model.compress_latent(bumped)["strings"]
    assert out["y_anchor"] == strings["y_anchor"]
    assert out["y_non_anchor"] != strings["y_non_anchor"]
    # Each string decodes half of the latent: the real size is close to the estimate, not twice it.
    real = 8 * sum(len(s[0]) for s in strings.values())
    est = sum(float(likelihood_bits(v)) for v in model(r)["likelihoods"].values())
    assert real < 1.3 * est + 300


@torch.no_grad()
def test_decoded_residual_is_not_clamped(model):
    _spread_latent(model)
    model.update(force=True)
    r = _residual()
    out = model.compress(r)
    r_hat = model.decompress(out["strings"], 64, 64)["r_hat"]
    assert r_hat.min() < 0  # a signed residual survives decoding
    base = torch.full_like(r_hat, 0.5)
    final = compose(base, r_hat)
    assert final.min() >= 0 and final.max() <= 1
    torch.testing.assert_close(compose(base, r_hat, clamp=False), base + r_hat)


def test_quantizer_modes(model):
    model.train()
    r = _residual()
    model.set_quantizer("noise")
    torch.manual_seed(0)
    y_noise = model(r)["y_hat"]
    y = model.analyse(r)
    assert (y_noise - y).abs().max() <= 0.5 + 1e-6 and not torch.equal(y_noise, torch.round(y_noise))
    model.set_quantizer("ste")
    out = model(r)
    out["r_hat"].sum().backward()  # straight-through: gradients reach the analysis transform
    assert model.g_a[0].weight.grad is not None and model.g_a[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="quantizer"):
        model.set_quantizer("round")


def test_evaluation_always_rounds(model):
    """After noise training, eval mode still quantises around the predicted means, as the coder does."""
    _spread_latent(model)
    r = _residual()
    reference = model(r)["likelihoods"]["y"]
    model.set_quantizer("noise")
    torch.testing.assert_close(model(r)["likelihoods"]["y"], reference)


@pytest.mark.parametrize("stride", [1, 2])
def test_refine_starts_as_identity_and_keeps_size(stride):
    refine = MultiScaleRefine(width=8, stride=stride).eval()
    x = torch.rand(1, 3, 37, 51)
    with torch.no_grad():
        assert torch.equal(refine(x), x)
        torch.nn.init.normal_(refine.fuse[-1].weight, std=0.1)
        y = refine(x)
    assert y.shape == x.shape and not torch.equal(y, x)


@torch.no_grad()
def test_coder_matches_compressai_checkerboard_codec(model):
    """The explicit two-pass coder codes the same latent as CompressAI's own
    HyperpriorLatentCodec/CheckerboardLatentCodec compress, with the same tables (so its strings,
    written by the kit's bounds-checked coder, are as long as CompressAI's rANS strings to within
    a few bytes), and decodes it back."""
    _spread_latent(model)
    model.update(force=True)
    y = model.analyse(_residual())
    ours = model.compress_latent(y)
    ref = model.latent_codec.compress(y)
    strings = ours["strings"]
    for mine, theirs in zip((strings["y_anchor"], strings["y_non_anchor"], strings["z"]), ref["strings"]):
        assert abs(len(mine[0]) - len(theirs[0])) <= 8 + 0.01 * len(theirs[0])
    assert torch.equal(ours["y_hat"], ref["y_hat"])
    back = model.decompress_latent(ours["strings"], 64, 64)
    assert torch.equal(back["y_hat"], ours["y_hat"]) and torch.equal(back["symbols"], ours["symbols"])
