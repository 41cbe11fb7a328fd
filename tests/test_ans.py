"""hyreslib.codecs.ans: exact round trips (escapes included), strings used up exactly, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from compressai._CXX import pmf_to_quantized_cdf

from hyreslib.codecs import ans
from hyreslib.codecs.container import CorruptStreamError


@pytest.fixture(scope="module")
def tables() -> ans.Tables:
    cdfs = [pmf_to_quantized_cdf([0.25, 0.5, 0.25 - 1e-6, 1e-6], 16),
            pmf_to_quantized_cdf([0.1] * 9 + [0.1 - 1e-6, 1e-6], 16),
            pmf_to_quantized_cdf([1 - 1e-6, 1e-6], 16)]
    return ans.Tables.from_lists(cdfs, [-1, -5, 0])


def test_round_trip_with_escapes_and_several_groups(tables):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 3, 4000)
    sym = rng.integers(-6, 6, 4000)
    sym[::37] = rng.integers(-2**30, 2**30, len(sym[::37]))
    sym[:4] = [2**30 - 1, -2**30, 65536, -65537]
    enc = ans.Encoder()
    enc.add(sym, idx, tables)
    enc.add(np.array([], dtype=np.int64), np.array([], dtype=np.int64), tables)
    enc.add(sym[:7].reshape(7, 1), idx[:7].reshape(7, 1), tables)
    data = enc.finish()
    dec = ans.Decoder(data)
    assert np.array_equal(dec.take(idx, tables), sym)
    assert dec.take(np.zeros((0,), dtype=np.int64), tables).shape == (0,)
    assert np.array_equal(dec.take(idx[:7].reshape(7, 1), tables), sym[:7].reshape(7, 1))
    dec.finish()


def test_rate_is_close_to_the_ideal(tables):
    rng = np.random.default_rng(1)
    sym = rng.choice([-1, 0, 1], size=20000, p=[0.25, 0.5, 0.25])
    data = ans.encode(sym, np.zeros(20000, dtype=np.int64), tables)
    assert 8 * len(data) < 1.5 * 20000 * 1.01 + 64


@pytest.mark.parametrize("edit, match", [
    (lambda d: d + b"\x01\x00\x00\x00", "does not end"),
    (lambda d: d + b"\x00\x00\x00\x00", "zero word"),
    (lambda d: d[:-1], "whole number"),
])
def test_strings_must_be_used_up_exactly(tables, edit, match):
    idx = np.arange(300) % 3
    data = ans.encode(idx - 1, idx, tables)
    with pytest.raises(CorruptStreamError, match=match):
        ans.decode(edit(data), idx, tables)


def test_bad_arguments_are_refused(tables):
    with pytest.raises(ValueError, match="table index out of range"):
        ans.encode(np.zeros(3), np.array([0, 1, 3]), tables)
    with pytest.raises(ValueError, match="symbols but"):
        ans.encode(np.zeros(3), np.zeros(2), tables)
    with pytest.raises(ValueError, match="too far outside"):
        ans.encode(np.array([2**31]), np.array([0]), tables)
    with pytest.raises(ValueError, match="escape bin"):
        ans.Tables.from_lists([[0, 65536]], [0])


def test_tables_of_follow_the_model(tables):
    """The cached tables of an entropy model are rebuilt when its CDFs change."""
    from hyreslib.hyres.entropy import NearestScaleGaussianConditional, scale_table

    gc = NearestScaleGaussianConditional()
    with pytest.raises(ValueError, match="update"):
        ans.tables_of(gc)
    gc.update_scale_table(scale_table(8), force=True)
    first = ans.tables_of(gc)
    assert ans.tables_of(gc) is first and len(first) == 8
    gc.update_scale_table(scale_table(16), force=True)
    assert len(ans.tables_of(gc)) == 16


def test_the_byte_format_is_stable():
    """Fixed symbols with hideNet's table give the bytes this build has always written: a change
    (e.g. a constriction release that quantises models differently) needs a new file version."""
    import zlib

    from hyreslib.hidenet import entropy

    idx = (np.arange(5000) * 7919) % 1024
    sym = ((np.arange(5000) * 31) % 23) - 11
    sym[::101] = 1000  # escapes
    data = ans.encode(sym, idx, entropy.cdf_table())
    assert (len(data), zlib.crc32(data)) == (5860, 382591456)


def test_every_codec_codes_through_this_module():
    """One entropy coder for the kit: no module of the package calls CompressAI's rANS (whose decoder
    a crafted string can crash) or constriction outside :mod:`hyreslib.codecs.ans`; both codecs import it."""
    from pathlib import Path

    package = Path(ans.__file__).parents[1]
    for path in package.rglob("*.py"):
        if path != Path(ans.__file__):
            text = path.read_text()
            for name in ("compressai.ans", "RansEncoder", "RansDecoder", "constriction", "_CXX.Rans"):
                assert name not in text, f"{path.relative_to(package)} uses {name}"
    for codec in ("hidenet/codec.py", "hyres/residual.py"):
        assert "from ..codecs import ans" in (package / codec).read_text(), codec
