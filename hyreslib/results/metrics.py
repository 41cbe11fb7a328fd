"""Quality and rate metrics, and Bjøntegaard deltas between rate-distortion curves.

PSNR and MS-SSIM are computed on 8-bit-rounded images (what a viewer shows), per image, RGB.
bpp is always ``8 * bytes / (H * W)`` of a real file: the kit never reports an estimated rate
under the name bpp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import pytorch_msssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
from scipy.interpolate import PchipInterpolator

from ..core.images import quantize_8bit


def _batched(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(0) if x.dim() == 3 else x


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MSE on the 8-bit grid, scaled to [0, 1] values. Shape (B,)."""
    x, y = quantize_8bit(_batched(x).float()), quantize_8bit(_batched(y).float())
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(y.shape)}")
    return (x - y).pow(2).flatten(1).mean(1)


def psnr_from_mse(err: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """PSNR in dB of a mean squared error for values of range ``peak`` (``inf`` for no error): the
    one formula behind :func:`psnr` and the training logs, whose images are not rounded to 8 bits."""
    return torch.where(err > 0, 10.0 * torch.log10(peak ** 2 / err.clamp_min(1e-30)), torch.full_like(err, math.inf))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | float:
    """PSNR in dB (peak 1.0 = 255) per image; a float for a single (3, H, W) image.

    Identical images give ``inf``.
    """
    single = x.dim() == 3
    out = psnr_from_mse(mse(x, y))
    return float(out[0]) if single else out


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | float:
    """MS-SSIM (linear, data range 1) per image via pytorch-msssim.

    Its 5 scales need the short side > 160 px; smaller images fall back to fewer scales with
    re-normalised weights rather than raising (crops in quick runs are small).
    """
    single = x.dim() == 3
    x, y = quantize_8bit(_batched(x).float()), quantize_8bit(_batched(y).float())
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    short = min(x.shape[-2:])
    scales = 5
    while scales > 1 and short <= (11 - 1) * 2 ** (scales - 1):
        scales -= 1
    w = torch.tensor(weights[:scales], dtype=x.dtype, device=x.device)
    if scales == len(weights):  # pytorch-msssim's public function, as CompressAI's eval_model calls it
        out = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, weights=(w / w.sum()).tolist())
    else:
        out = _ms_ssim_scales(x, y, w / w.sum())
    return float(out[0]) if single else out


def _ms_ssim_scales(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """pytorch-msssim's MS-SSIM with fewer than five scales, for short sides <= 160 px only: its
    public ``ms_ssim`` asserts a 160 px short side even when given fewer weights, so the scale loop
    is spelled out here with its private ``_ssim``."""
    win = _fspecial_gauss_1d(11, 1.5).repeat(x.shape[1], 1, 1, 1).to(x)
    factors = []
    for level in range(len(weights)):
        ssim_per_channel, cs = _ssim(x, y, data_range=1.0, win=win, size_average=False)
        if level < len(weights) - 1:
            factors.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, kernel_size=2, padding=pad), F.avg_pool2d(y, kernel_size=2, padding=pad)
    factors.append(torch.relu(ssim_per_channel))
    return torch.prod(torch.stack(factors) ** weights.view(-1, 1, 1), dim=0).mean(1)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, ``-10 log10(1 - v)``, the usual way to plot it."""
    return math.inf if value >= 1 else -10.0 * math.log10(1.0 - value)


def bpp(nbytes: int, height: int, width: int) -> float:
    """Bits per pixel of a file of ``nbytes`` bytes for an H x W image."""
    if height <= 0 or width <= 0:
        raise ValueError("image size must be positive")
    return 8.0 * nbytes / (height * width)


def _overlap_integrals(x1, y1, x2, y2) -> tuple[float, float, float]:
    """Integrate two piecewise-cubic (PCHIP) curves y(x) over their common x range."""
    x1, y1, x2, y2 = (np.asarray(a, dtype=np.float64) for a in (x1, y1, x2, y2))
    for xs, name in ((x1, "anchor"), (x2, "test")):
        if len(xs) < 2:
            raise ValueError(f"the {name} curve needs at least two points")
    o1, o2 = np.argsort(x1), np.argsort(x2)
    x1, y1, x2, y2 = x1[o1], y1[o1], x2[o2], y2[o2]
    if np.any(np.diff(x1) <= 0) or np.any(np.diff(x2) <= 0):
        raise ValueError("curve points must have distinct x values")
    lo, hi = max(x1[0], x2[0]), min(x1[-1], x2[-1])
    if hi <= lo:
        raise ValueError("the two curves do not overlap")
    f1, f2 = PchipInterpolator(x1, y1), PchipInterpolator(x2, y2)
    return float(f1.integrate(lo, hi)), float(f2.integrate(lo, hi)), hi - lo


def bd_rate(rate_anchor: Sequence[float], psnr_anchor: Sequence[float],
            rate_test: Sequence[float], psnr_test: Sequence[float]) -> float:
    """Bjøntegaard delta rate in percent: average bitrate change of ``test`` versus ``anchor`` at
    equal quality, over the overlapping quality range (negative = test needs fewer bits).

    Piecewise-cubic (PCHIP) interpolation of log-rate as a function of PSNR; curves may have
    different numbers of points.
    """
    i1, i2, width = _overlap_integrals(psnr_anchor, np.log(rate_anchor), psnr_test, np.log(rate_test))
    return (math.exp((i2 - i1) / width) - 1.0) * 100.0


def bd_psnr(rate_anchor: Sequence[float], psnr_anchor: Sequence[float],
            rate_test: Sequence[float], psnr_test: Sequence[float]) -> float:
    """Bjøntegaard delta PSNR in dB: average quality change of ``test`` at equal log-rate."""
    i1, i2, width = _overlap_integrals(np.log(rate_anchor), psnr_anchor, np.log(rate_test), psnr_test)
    return (i2 - i1) / width
