"""Bounds-checked entropy coding of integer symbols, shared by every codec of the kit.

Both codecs describe their symbols the CompressAI way: a table of integer CDFs (16-bit precision;
the last bin of each entry is an *escape* for values outside the entry's support) and, per
symbol, the index of the entry that codes it. CompressAI's own rANS decoder reads its input
without bounds checks, so a crafted string can make it read foreign memory and crash the process.
This module codes the same symbols with the ANS stack coder of ``constriction`` (written in Rust:
every read is bounds-checked, and decoding past the end of a string yields wrong symbols, never a
read outside it). Whatever a string holds, decoding reads only its own bytes and stops after the
number of symbols the caller asks for.

One string is the coder's 32-bit words, little-endian. Within one :meth:`Encoder.add` group the
symbols are coded entry by entry (ascending table index, each entry's symbols in position order,
each with a categorical model of that entry's probabilities), then the escaped values in position
order: their bit count (uniform over 0..31) and their bits (uniform, at most 16 per symbol). The
decoder knows the indexes before it reads, so it regroups the same way. A string must be used up
exactly: words left over after the last symbol mean the decoder lost sync, and are refused.
The fixed-point models are constriction's quantisation of each entry's probabilities, so its
version is part of the byte format: pyproject pins it below 0.6, and a change needs a new
container version.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import constriction
import numpy as np
import torch
from torch import Tensor

from .container import CorruptStreamError

ESCAPE_BITS = 32           # an escaped magnitude has 0..31 bits
CHUNK_BITS = 16            # bits coded per uniform symbol
_AnsCoder = constriction.stream.stack.AnsCoder
_Categorical = constriction.stream.model.Categorical
_Uniform = constriction.stream.model.Uniform


@dataclass
class Tables:
    """Integer CDF table entries: ``cdfs[i, :lengths[i]]`` rises from 0 to ``2**precision`` over the
    values ``offsets[i] .. offsets[i] + lengths[i] - 3`` and the escape bin."""

    cdfs: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    _models: dict[int, object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.cdfs = np.asarray(self.cdfs, dtype=np.int64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64).ravel()
        self.offsets = np.asarray(self.offsets, dtype=np.int64).ravel()
        if self.cdfs.ndim != 2 or not len(self.lengths) == len(self.offsets) == len(self.cdfs):
            raise ValueError("CDF tables: cdfs, lengths and offsets disagree in size")
        if len(self.lengths) and (self.lengths.min() < 3 or self.lengths.max() > self.cdfs.shape[1]):
            raise ValueError("CDF tables: every entry needs at least one value and the escape bin")

    @classmethod
    def from_lists(cls, cdfs: Sequence[Sequence[int]], offsets: Sequence[int]) -> Tables:
        """Entries of different lengths (padded into one array)."""
        lengths = [len(c) for c in cdfs]
        table = np.zeros((len(cdfs), max(lengths, default=3)), dtype=np.int64)
        for row, cdf in zip(table, cdfs):
            row[:len(cdf)] = cdf
        return cls(table, lengths, offsets)

    def __len__(self) -> int:
        return len(self.lengths)

    def model(self, i: int):
        """The categorical model of entry ``i`` (built once): its bins' probabilities, escape last."""
        if i not in self._models:
            pmf = np.diff(self.cdfs[i, :self.lengths[i]]).astype(np.float64)
            self._models[i] = _Categorical(pmf, perfect=False)
        return self._models[i]


def _check_indexes(indexes: np.ndarray, tables: Tables) -> np.ndarray:
    indexes = np.asarray(indexes, dtype=np.int64).ravel()
    if indexes.size and (indexes.min() < 0 or indexes.max() >= len(tables)):
        raise ValueError(f"table index out of range 0..{len(tables) - 1}")
    return indexes


def _groups(indexes: np.ndarray, n_tables: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Positions sorted by table entry (stable) and ``(entry, start, stop)`` runs in that order."""
    # numpy sorts 16-bit integers stably with a radix sort: linear time, the coder's main cost otherwise
    order = np.argsort(indexes.astype(np.int16) if n_tables <= 1 << 15 else indexes, kind="stable")
    counts = np.bincount(indexes, minlength=n_tables)
    stops = np.cumsum(counts)
    entries = np.flatnonzero(counts)
    return order, list(zip(entries.tolist(), (stops - counts)[entries].tolist(), stops[entries].tolist()))


def _chunk_sizes(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uniform alphabet sizes of the low and high chunks of escaped magnitudes with ``bits`` bits."""
    low = bits[bits > 0]
    high = bits[bits > CHUNK_BITS]
    return (1 << np.minimum(low, CHUNK_BITS)).astype(np.int32), (1 << (high - CHUNK_BITS)).astype(np.int32)


class Encoder:
    """Collects groups of (symbols, table indexes); :meth:`finish` writes one string that a
    :class:`Decoder` reads back group by group, in the order they were added."""

    def __init__(self) -> None:
        self._groups: list[tuple[np.ndarray, np.ndarray, Tables]] = []

    def add(self, symbols: np.ndarray, indexes: np.ndarray, tables: Tables) -> None:
        symbols = np.asarray(symbols, dtype=np.int64).ravel()
        indexes = _check_indexes(indexes, tables)
        if symbols.shape != indexes.shape:
            raise ValueError(f"{symbols.size} symbols but {indexes.size} table indexes")
        self._groups.append((symbols, indexes, tables))

    def finish(self) -> bytes:
        coder = _AnsCoder()
        for symbols, indexes, tables in reversed(self._groups):  # a stack: the last group pushed is read first
            _push(coder, symbols, indexes, tables)
        return coder.get_compressed().astype("<u4").tobytes()


def _push(coder, symbols: np.ndarray, indexes: np.ndarray, tables: Tables) -> None:
    value = symbols - tables.offsets[indexes]
    top = tables.lengths[indexes] - 2          # the escape bin
    low, high = value < 0, value >= top
    escaped = low | high
    raw = np.where(low, -2 * value - 1, 2 * (value - top))[escaped]
    if raw.size and raw.max() >= 1 << (ESCAPE_BITS - 1):
        raise ValueError("a symbol is too far outside its coding table (more than 2**30)")
    bits = sum((raw >> b > 0).astype(np.int64) for b in range(ESCAPE_BITS - 1)) if raw.size else raw  # bit length
    low_sizes, high_sizes = _chunk_sizes(bits)
    if high_sizes.size:
        coder.encode_reverse((raw[bits > CHUNK_BITS] >> CHUNK_BITS).astype(np.int32), _Uniform(), high_sizes)
    if low_sizes.size:
        coder.encode_reverse((raw[bits > 0] & ((1 << CHUNK_BITS) - 1)).astype(np.int32), _Uniform(), low_sizes)
    if bits.size:
        coder.encode_reverse(bits.astype(np.int32), _Uniform(ESCAPE_BITS))
    categories = np.where(escaped, top, value)
    order, runs = _groups(indexes, len(tables))
    for entry, start, stop in reversed(runs):
        coder.encode_reverse(categories[order[start:stop]].astype(np.int32), tables.model(entry))


class Decoder:
    """Reads one string written by :class:`Encoder`; every call reads only the string's own words."""

    def __init__(self, data: bytes, what: str = "entropy-coded string") -> None:
        self.what = what
        if len(data) % 4:
            raise CorruptStreamError(f"{what} has {len(data)} bytes, not a whole number of 32-bit words")
        words = np.frombuffer(bytes(data), dtype="<u4").astype(np.uint32)
        try:
            self._coder = _AnsCoder(words)
        except ValueError as exc:  # e.g. a final zero word, which no encoder writes
            raise CorruptStreamError(f"{what} is invalid: {exc}") from None

    def take(self, indexes: np.ndarray, tables: Tables) -> np.ndarray:
        """Decode one group: a symbol for each entry of ``indexes`` (int64, same shape)."""
        shape = np.shape(indexes)
        indexes = _check_indexes(indexes, tables)
        categories = np.empty(indexes.shape, dtype=np.int64)
        order, runs = _groups(indexes, len(tables))
        for entry, start, stop in runs:
            categories[order[start:stop]] = self._coder.decode(tables.model(entry), stop - start)
        value = categories.copy()
        top = tables.lengths[indexes] - 2
        escaped = np.flatnonzero(categories == top)
        if escaped.size:
            bits = self._coder.decode(_Uniform(ESCAPE_BITS), escaped.size).astype(np.int64)
            low_sizes, high_sizes = _chunk_sizes(bits)
            raw = np.zeros(escaped.size, dtype=np.int64)
            if low_sizes.size:
                raw[bits > 0] = self._coder.decode(_Uniform(), low_sizes)
            if high_sizes.size:
                raw[bits > CHUNK_BITS] |= self._coder.decode(_Uniform(), high_sizes).astype(np.int64) << CHUNK_BITS
            value[escaped] = np.where(raw % 2 == 1, -(raw + 1) // 2, top[escaped] + raw // 2)
        return (value + tables.offsets[indexes]).reshape(shape)

    def finish(self) -> None:
        """Refuse a string with words left over: the decoder did not read what the encoder wrote."""
        if not self._coder.is_empty():
            raise CorruptStreamError(f"{self.what} does not end where its last symbol does (damaged or desynchronised)")


def encode(symbols: np.ndarray, indexes: np.ndarray, tables: Tables) -> bytes:
    """One string holding one group of symbols."""
    enc = Encoder()
    enc.add(symbols, indexes, tables)
    return enc.finish()


def decode(data: bytes, indexes: np.ndarray, tables: Tables, what: str = "entropy-coded string") -> np.ndarray:
    """The symbols of a string written by :func:`encode`; raises :class:`CorruptStreamError` on a
    string that is not used up exactly."""
    dec = Decoder(data, what)
    symbols = dec.take(indexes, tables)
    dec.finish()
    return symbols


# --- CompressAI entropy models (GaussianConditional, EntropyBottleneck) ----------------------------

_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tables_of(model: torch.nn.Module) -> Tables:
    """The coding tables of an updated CompressAI entropy model (cached until its CDFs change)."""
    cdf = model._quantized_cdf
    if cdf.numel() == 0:
        raise ValueError("the entropy model has no coding tables: call update() first")
    cached = _TABLES.get(model)
    if cached is None or cached[0] is not cdf or cached[1] != cdf._version:
        cached = (cdf, cdf._version, Tables(cdf.cpu().numpy(), model._cdf_length.cpu().numpy(),
                                            model._offset.cpu().numpy()))
        _TABLES[model] = cached
    return cached[2]


def encode_tensor(model: torch.nn.Module, symbols: Tensor, indexes: Tensor) -> list[bytes]:
    """One string per batch item of integer ``symbols`` coded with ``model``'s tables."""
    tables = tables_of(model)
    return [encode(s.cpu().numpy(), i.cpu().numpy(), tables) for s, i in zip(symbols, indexes)]


def decode_tensor(model: torch.nn.Module, strings: Sequence[bytes], indexes: Tensor, what: str) -> Tensor:
    """Integer symbols (int32, on ``indexes``' device) of one string per batch item."""
    tables = tables_of(model)
    if len(strings) != len(indexes):
        raise ValueError(f"{len(strings)} strings for a batch of {len(indexes)}")
    out = [decode(s, i.cpu().numpy(), tables, what) for s, i in zip(strings, indexes)]
    return torch.from_numpy(np.stack(out)).to(device=indexes.device, dtype=torch.int32)


def _bottleneck_medians(bottleneck: torch.nn.Module, size: torch.Size) -> Tensor:
    medians = bottleneck._extend_ndims(bottleneck._get_medians().detach(), len(size) - 2)
    return medians.expand(size[0], *([-1] * (len(size) - 1)))


def encode_bottleneck(bottleneck: torch.nn.Module, z: Tensor) -> tuple[list[bytes], Tensor, Tensor]:
    """Code ``z`` with an EntropyBottleneck (one table per channel, values around its medians);
    returns the strings, and ``(z_hat, symbols)`` exactly as :func:`decode_bottleneck` rebuilds them."""
    medians = _bottleneck_medians(bottleneck, z.size())
    symbols = bottleneck.quantize(z, "symbols", medians)
    strings = encode_tensor(bottleneck, symbols, bottleneck._build_indexes(z.size()))
    return strings, bottleneck.dequantize(symbols, medians), symbols


def decode_bottleneck(bottleneck: torch.nn.Module, strings: Sequence[bytes], size: tuple[int, int],
                      what: str = "z string") -> tuple[Tensor, Tensor]:
    """``(z_hat, symbols)`` of a ``len(strings) x C x size`` hyper-latent."""
    full = torch.Size((len(strings), bottleneck._quantized_cdf.size(0), *size))
    medians = _bottleneck_medians(bottleneck, full)
    symbols = decode_tensor(bottleneck, strings, bottleneck._build_indexes(full).to(medians.device), what)
    return bottleneck.dequantize(symbols, medians), symbols
