"""The probability model and the rANS coding of integer residuals.

Every coded value is an integer ``k`` whose distribution is a *discretized Laplace*: the mass of
``[k - 1/2, k + 1/2]`` under a Laplace of location ``f`` and scale ``s`` (in units of the coded
integers). Training minimises exactly this negative log-likelihood (:func:`laplace_bits`), so the
loss is the lossless rate the coder then achieves up to table quantisation.

For coding, ``(s, f)`` is quantised to a table index: 64 log-spaced scales x 16 offset bins in
[-1/2, 1/2). Each entry is a 16-bit CDF built with CompressAI's ``pmf_to_quantized_cdf``; values
outside an entry's support take CompressAI's escape path, so any integer still decodes exactly.
Only the entries a call actually uses are handed to the C++ coder (the table is large and the
binding copies whatever it is given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from compressai._CXX import pmf_to_quantized_cdf
from compressai.ans import BufferedRansEncoder, RansDecoder

from ..rans import zero_tail

SCALE_MIN, SCALE_MAX, N_SCALES = 0.11, 256.0, 64
N_OFFSETS = 16
TAIL_MASS = 1e-6          # probability left outside an entry's support (coded by the escape path)
MAX_SUPPORT = 300         # |k| covered by a table entry; residuals of 8-bit pixels stay within 255
PRECISION = 16
PAD_SYMBOLS = 8           # see StreamEncoder.finish
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


@dataclass(frozen=True)
class CdfTable:
    cdfs: list[list[int]]
    lengths: list[int]
    offsets: list[int]


@lru_cache(maxsize=1)
def cdf_table() -> CdfTable:
    """All (scale, offset) entries; built once per process (about 0.1 s)."""
    cdfs, lengths, offsets = [], [], []
    for s in scale_values():
        support = min(MAX_SUPPORT, math.ceil(s * math.log(1.0 / TAIL_MASS)) + 1)
        k = torch.arange(-support, support + 1, dtype=torch.float64)
        for o in range(N_OFFSETS):
            loc = torch.tensor((o + 0.5) / N_OFFSETS - 0.5, dtype=torch.float64)
            pmf = laplace_log_prob(k, loc, torch.tensor(s, dtype=torch.float64)).exp().numpy()
            tail = max(0.0, 1.0 - float(pmf.sum()))
            cdf = pmf_to_quantized_cdf(pmf.tolist() + [tail], PRECISION)
            cdfs.append(cdf)
            lengths.append(len(cdf))
            offsets.append(-support)
    return CdfTable(cdfs, lengths, offsets)


def _subset(indexes: np.ndarray) -> tuple[list[int], list[list[int]], list[int], list[int]]:
    """Remap ``indexes`` onto the entries they use, so only those cross into C++."""
    table = cdf_table()
    used, local = np.unique(indexes, return_inverse=True)
    if used.size and (used[0] < 0 or used[-1] >= len(table.cdfs)):
        raise ValueError("table index out of range")
    return (local.astype(np.int32).ravel().tolist(), [table.cdfs[i] for i in used],
            [table.lengths[i] for i in used], [table.offsets[i] for i in used])


class StreamEncoder:
    """Groups of (symbols, table indexes) into one rANS stream, decoded group by group."""

    def __init__(self) -> None:
        self._enc = BufferedRansEncoder()

    def add(self, symbols: np.ndarray, indexes: np.ndarray) -> None:
        if symbols.size == 0:
            return
        local, cdfs, lengths, offsets = _subset(np.asarray(indexes).ravel())
        self._enc.encode_with_indexes(np.asarray(symbols, dtype=np.int64).ravel().tolist(), local, cdfs,
                                      lengths, offsets)

    def finish(self) -> bytes:
        # CompressAI's flush sizes its buffer as one 32-bit word per coded entry, but the final
        # state needs two more: with only a handful of symbols it writes out of bounds. Eight
        # near-certain symbols (about 0.015 bits each) at the end, never decoded, make room.
        self.add(np.zeros(PAD_SYMBOLS, dtype=np.int64), np.full(PAD_SYMBOLS, N_OFFSETS // 2))
        return self._enc.flush()


class StreamDecoder:
    """Reads back what :class:`StreamEncoder` wrote, one group per :meth:`take` call.

    The stream is guarded by :func:`hyreslib.rans.zero_tail`: a damaged stream (the container CRC
    normally stops those earlier) decodes to wrong values, which the image checksum rejects.
    """

    def __init__(self, data: bytes, max_symbols: int) -> None:
        self._dec = RansDecoder()
        self._dec.set_stream(zero_tail(data, max_symbols))

    def take(self, indexes: np.ndarray) -> np.ndarray:
        indexes = np.asarray(indexes)
        if indexes.size == 0:
            return np.zeros(indexes.shape, dtype=np.int64)
        local, cdfs, lengths, offsets = _subset(indexes.ravel())
        values = self._dec.decode_stream(local, cdfs, lengths, offsets)
        return np.asarray(values, dtype=np.int64).reshape(indexes.shape)
