"""Metrics against hand-computed values: PSNR, MS-SSIM, bpp, and Bjøntegaard deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_msssim
import torch

from hyreslib.pipeline.baselines import load_published
from hyreslib.results import metrics


def _noisy(x: torch.Tensor, sigma: float = 0.05, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def _image(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# --- PSNR -----------------------------------------------------------------------------------

def test_psnr_uniform_offset():
    x = torch.full((3, 4, 4), 100 / 255)
    y = torch.full((3, 4, 4), 110 / 255)
    assert metrics.psnr(x, y) == pytest.approx(20 * math.log10(255 / 10), abs=1e-4)  # 28.1308 dB


def test_psnr_single_wrong_value():
    x = torch.zeros(3, 4, 4)
    y = x.clone()
    y[1, 2, 3] = 51 / 255  # one of 48 values off by 51 levels: MSE = 0.2^2 / 48
    assert metrics.psnr(x, y) == pytest.approx(10 * math.log10(48 / 0.04), abs=1e-4)  # 30.7918 dB


def test_psnr_identical_is_inf_and_sub_level_differences_vanish():
    x = metrics.quantize_8bit(_image(3, 8, 8))
    assert metrics.psnr(x, x) == math.inf
    assert metrics.psnr(x, x + 0.4 / 255) == math.inf  # rounds to the same 8-bit image
    assert metrics.psnr(x, x + 0.6 / 255) < math.inf


def test_psnr_batch_is_per_image():
    x = _image(3, 3, 16, 16)
    y = torch.stack([_noisy(x[0], 0.01), x[1], _noisy(x[2], 0.1)])
    out = metrics.psnr(x, y)
    assert isinstance(out, torch.Tensor) and out.shape == (3,)
    assert out[1] == math.inf
    for i in (0, 2):
        assert float(out[i]) == pytest.approx(metrics.psnr(x[i], y[i]))
    assert out[0] > out[2]


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr(torch.zeros(3, 4, 4), torch.zeros(3, 4, 5))


# --- MS-SSIM --------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [256, 161, 100, 40, 12])
def test_ms_ssim_identical_is_one(size):
    x = _image(3, size, size + 7)
    assert metrics.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_matches_pytorch_msssim_on_large_images():
    x = _image(2, 3, 200, 240)
    y = _noisy(x)
    xq, yq = metrics.quantize_8bit(x), metrics.quantize_8bit(y)
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    expected = pytorch_msssim.ms_ssim(xq, yq, data_range=1.0, size_average=False,
                                      weights=(weights / weights.sum()).tolist())
    assert torch.allclose(metrics.ms_ssim(x, y), expected, atol=1e-6)


@pytest.mark.parametrize("size", [160, 64, 30])
def test_ms_ssim_small_images_fall_back_to_fewer_scales(size):
    """pytorch-msssim refuses short sides <= 160; the kit uses fewer scales instead."""
    x = _image(3, size, 2 * size)
    value = metrics.ms_ssim(x, _noisy(x))
    assert 0.0 < value < 1.0
    assert metrics.ms_ssim(x, _noisy(x, 0.2)) < value


def test_ms_ssim_batch_is_per_image():
    x = _image(2, 3, 64, 64)
    y = torch.stack([_noisy(x[0], 0.02), _noisy(x[1], 0.2)])
    out = metrics.ms_ssim(x, y)
    assert out.shape == (2,) and out[0] > out[1]
    assert float(out[1]) == pytest.approx(metrics.ms_ssim(x[1], y[1]), abs=1e-6)


def test_ms_ssim_db():
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ms_ssim_db(0.9) == pytest.approx(10.0)
    assert metrics.ms_ssim_db(1.0) == math.inf


# --- bpp ------------------------------------------------------------------------------------

def test_bpp():
    assert metrics.bpp(1000, 100, 80) == 1.0
    assert metrics.bpp(49152, 512, 768) == 1.0  # a 48 KiB file of a Kodak image
    with pytest.raises(ValueError, match="positive"):
        metrics.bpp(10, 0, 5)


# --- Bjøntegaard deltas ---------------------------------------------------------------------

RATES = [0.25, 0.5, 1.0, 2.0]
PSNRS = [28.0, 31.0, 33.5, 36.0]


def test_bd_rate_of_uniformly_cheaper_curve():
    assert metrics.bd_rate(RATES, PSNRS, [0.9 * r for r in RATES], PSNRS) == pytest.approx(-10.0, abs=1e-9)
    assert metrics.bd_rate(RATES, PSNRS, [1.25 * r for r in RATES], PSNRS) == pytest.approx(25.0, abs=1e-9)
    assert metrics.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-12)


def test_bd_psnr_of_shifted_curve():
    assert metrics.bd_psnr(RATES, PSNRS, RATES, [p + 1.0 for p in PSNRS]) == pytest.approx(1.0, abs=1e-9)
    assert metrics.bd_psnr(RATES, PSNRS, RATES, [p - 0.5 for p in PSNRS]) == pytest.approx(-0.5, abs=1e-9)


def test_log_linear_curves_of_different_lengths():
    """PSNR = 10 log10(rate) + 30 is linear in log-rate, so PCHIP is exact: halving every rate is
    -50 % BD-rate and +10 log10(2) = +3.0103 dB BD-PSNR, whatever the sampling."""
    def curve(rates, scale=1.0):
        return [r * scale for r in rates], [10 * math.log10(r) + 30 for r in rates]

    anchor = curve([0.2, 0.4, 0.8, 1.6])
    test = curve([0.2, 0.3, 0.45, 0.6, 0.9, 1.2, 1.6, 2.4], scale=0.5)
    assert metrics.bd_rate(*anchor, *test) == pytest.approx(-50.0, abs=1e-9)
    assert metrics.bd_psnr(*anchor, *test) == pytest.approx(10 * math.log10(2), abs=1e-9)


def test_point_order_does_not_matter():
    test = [0.8 * r for r in RATES]
    assert metrics.bd_rate(RATES[::-1], PSNRS[::-1], test, PSNRS) == pytest.approx(-20.0, abs=1e-9)


def test_bd_uses_only_the_overlap():
    # The test curve covers only the top half of the anchor's quality range.
    test_rates, test_psnrs = [0.9 * r for r in RATES[2:]], PSNRS[2:]
    assert metrics.bd_rate(RATES, PSNRS, test_rates, test_psnrs) == pytest.approx(-10.0, abs=1e-9)


def test_bd_errors():
    with pytest.raises(ValueError, match="do not overlap"):
        metrics.bd_rate(RATES, PSNRS, [4.0, 8.0], [40.0, 42.0])
    with pytest.raises(ValueError, match="do not overlap"):
        metrics.bd_psnr([0.1, 0.2], [20.0, 22.0], [1.0, 2.0], [30.0, 33.0])
    with pytest.raises(ValueError, match="test curve needs at least two points"):
        metrics.bd_rate(RATES, PSNRS, [1.0], [33.0])
    with pytest.raises(ValueError, match="distinct"):
        metrics.bd_rate(RATES, [28.0, 31.0, 31.0, 36.0], RATES, PSNRS)


def _classic_bjontegaard(x1, y1, x2, y2) -> float:
    """Mean of y2 - y1 over the common x range, each curve a least-squares cubic in x (the original
    VCEG-M33 method, written independently of the kit's piecewise-cubic one)."""
    lo, hi = max(min(x1), min(x2)), min(max(x1), max(x2))
    areas = []
    for x, y in ((x1, y1), (x2, y2)):
        antiderivative = np.polyint(np.polyfit(x, y, 3))
        areas.append(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))
    return (areas[1] - areas[0]) / (hi - lo)


@pytest.mark.parametrize("anchor, test", [("jpeg", "webp"), ("jpeg", "bpg444"), ("webp", "bpg444")])
def test_bd_on_published_curves_matches_the_classic_method(anchor, test):
    """Curved data with different point counts (CompressAI's published Kodak curves): the classic
    cubic fit and the kit's piecewise-cubic interpolation agree to a fraction of a percent."""
    curves = load_published()["curves"]
    r1, p1, r2, p2 = curves[anchor]["bpp"], curves[anchor]["psnr"], curves[test]["bpp"], curves[test]["psnr"]
    rate = (math.exp(_classic_bjontegaard(p1, np.log(r1), p2, np.log(r2))) - 1) * 100
    assert metrics.bd_rate(r1, p1, r2, p2) == pytest.approx(rate, abs=0.6)
    assert metrics.bd_psnr(r1, p1, r2, p2) == pytest.approx(_classic_bjontegaard(np.log(r1), p1, np.log(r2), p2),
                                                            abs=0.06)
