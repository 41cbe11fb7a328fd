"""A Gaussian conditional whose coding tables follow the model's estimate more closely.

CompressAI codes each latent with the CDF of one of 64 log-spaced scales (13% apart) and picks
the first table scale *above* the predicted sigma. Both choices make real files bigger than the
likelihoods the model was trained on: at low rates a peaked latent coded with a 13% wider
Gaussian pays up to twice its estimated bits. Here the table is finer (``levels`` scales, ~3%
apart at 256 levels) and each sigma maps to the *nearest* table scale in log space, which is also
the table scale with the smallest coding loss (the KL divergence between two Gaussians depends,
to second order, only on the log-ratio of their scales).
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.google import SCALES_MAX as SCALE_MAX
from compressai.models.google import SCALES_MIN as SCALE_MIN
from torch import Tensor

# CompressAI's range of scales, with a table of our own between them: its get_scale_table computes
# in float32 (torch.linspace, torch.exp) and differs from this float64 table in 78 of 128 entries
# (up to 5e-5), which would change the coding tables, and so the files, of every trained model.


def scale_table(levels: int, scale_min: float = SCALE_MIN, scale_max: float = SCALE_MAX) -> list[float]:
    """``levels`` scales log-spaced from ``scale_min`` to ``scale_max``."""
    if levels < 2:
        raise ValueError(f"the scale table needs at least 2 levels, got {levels}")
    step = (math.log(scale_max) - math.log(scale_min)) / (levels - 1)
    return [math.exp(math.log(scale_min) + i * step) for i in range(levels)]


def position_scales(position: Tensor, levels: int) -> Tensor:
    """The scale at a continuous position of the default ``levels``-scale table (position ``i``:
    its ``i``-th scale; rounding the position picks the nearest table scale in log space)."""
    step = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (levels - 1)
    return torch.exp(math.log(SCALE_MIN) + position * step)


class NearestScaleGaussianConditional(GaussianConditional):
    """:class:`GaussianConditional` that indexes its table by the nearest scale in log space."""

    def __init__(self, scale_bound: float = SCALE_MIN, **kwargs):
        super().__init__(None, scale_bound=scale_bound, **kwargs)

    def build_indexes(self, scales: Tensor) -> Tensor:
        if self.scale_table.numel() == 0:
            raise ValueError("Uninitialized scale table. Run update() first")
        table = self.scale_table.to(scales.device)
        midpoints = torch.sqrt(table[:-1] * table[1:])  # geometric midpoints between neighbours
        return torch.bucketize(self.lower_bound_scale(scales).contiguous(), midpoints).int()
