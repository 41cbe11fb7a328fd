"""The probability model and the rANS coding of integer residuals.

Every coded value is an integer ``k`` whose distribution is a *discretized Laplace*: the mass of
``[k - 1/2, k + 1/2]`` under a Laplace of location ``f`` and scale ``s`` (in units of the coded
integers). Training minimises exactly this negative log-likelihood (:func:`laplace_bits`), so the
loss is the lossless rate the coder then achieves up to table quantisation.

For coding, ``(s, f)`` is quantised to a table index: 64 log-spaced scales x 16 offset bins in
[-1/2, 1/2). Each entry is a 16-bit CDF built with CompressAI's ``pmf_to_quantized_cdf``; values
outside an entry's support take the escape path of :mod:`hyreslib.codecs.ans`, which codes them and
every other symbol with its bounds-checked coder.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from compressai._CXX import pmf_to_quantized_cdf

from ..codecs.ans import Tables

SCALE_MIN, SCALE_MAX, N_SCALES = 0.11, 256.0, 64
N_OFFSETS = 16
TAIL_MASS = 1e-6          # probability left outside an entry's support (coded by the escape path)
MAX_SUPPORT = 300         # |k| covered by a table entry; residuals of 8-bit pixels stay within 255
PRECISION = 16
_LOG_STEP = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (N_SCALES - 1)


def laplace_log_prob(k: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Natural log of P(k) for a Laplace(loc, scale) discretized to unit bins, computed without
    cancellation in the tails (the side branches use the smaller distance to the bin)."""
    z_lo = (k - 0.5 - loc) / scale
    z_hi = (k + 0.5 - loc) / scale
    # Bin entirely on one side of the mode: P = 1/2 exp(-near) (1 - exp(-1/scale)).
    near = torch.where(z_lo >= 0, z_lo, -z_hi)
    side = math.log(0.5) - near + torch.log(-torch.expm1(-1.0 / scale))
    # Bin containing the mode: P = 1 - 1/2 exp(-z_hi) - 1/2 exp(z_lo).
    middle = torch.log((1.0 - 0.5 * torch.exp(-z_hi.clamp_min(0)) - 0.5 * torch.exp(z_lo.clamp_max(0))).clamp_min(1e-12))
    return torch.where((z_lo < 0) & (z_hi > 0), middle, side).clamp_min(math.log(1e-9))


def laplace_bits(k: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Bits to code integer ``k`` under the discretized Laplace (elementwise)."""
    return -laplace_log_prob(k, loc, scale) / math.log(2.0)


def scale_values() -> np.ndarray:
    return np.exp(math.log(SCALE_MIN) + _LOG_STEP * np.arange(N_SCALES))


def table_index(scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Table entry (int64) for each (scale, offset): nearest scale in log space, offset bin."""
    s_idx = torch.round((torch.log(scale.clamp(SCALE_MIN, SCALE_MAX)) - math.log(SCALE_MIN)) / _LOG_STEP)
    o_idx = torch.floor((offset.clamp(-0.5, 0.5) + 0.5) * N_OFFSETS).clamp(0, N_OFFSETS - 1)
    return (s_idx.long() * N_OFFSETS + o_idx.long())


@lru_cache(maxsize=1)
def cdf_table() -> Tables:
    """All (scale, offset) entries; built once per process (about 0.1 s)."""
    cdfs, offsets = [], []
    for s in scale_values():
        support = min(MAX_SUPPORT, math.ceil(s * math.log(1.0 / TAIL_MASS)) + 1)
        k = torch.arange(-support, support + 1, dtype=torch.float64)
        for o in range(N_OFFSETS):
            loc = torch.tensor((o + 0.5) / N_OFFSETS - 0.5, dtype=torch.float64)
            pmf = laplace_log_prob(k, loc, torch.tensor(s, dtype=torch.float64)).exp().numpy()
            tail = max(0.0, 1.0 - float(pmf.sum()))
            cdfs.append(pmf_to_quantized_cdf(pmf.tolist() + [tail], PRECISION))
            offsets.append(-support)
    return Tables.from_lists(cdfs, offsets)
