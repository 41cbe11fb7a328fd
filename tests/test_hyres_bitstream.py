"""The .hyr format: header round trip, and damaged or altered files refused with a clear error
(never a crash, a hang or a silently wrong image)."""

from __future__ import annotations

import random

import pytest
import torch

from hyreslib.codecs.container import CorruptStreamError, pack, unpack
from hyreslib.datasets import data
from hyreslib.hyres import HyresCodec, JpegSettings, ResidualCodec, ResidualConfig
from hyreslib.hyres import bitstream
from hyreslib.hyres.bitstream import MAGIC, VERSION, Header


@pytest.fixture(scope="module")
def codec() -> HyresCodec:
    torch.manual_seed(0)
    residual = ResidualCodec(ResidualConfig(N=16, M=24, depth=4, scale_levels=64))
    with torch.no_grad():
        residual.g_a[-2].weight.mul_(30.0)
    return HyresCodec(residual, JpegSettings(quality=10))


@pytest.fixture(scope="module")
def good(codec) -> bytes:
    x = data.embedded("test")[1][1][:, :70, :90].contiguous()
    return codec.encode(x)


def _with_chunks(chunks: list[bytes]) -> bytes:
    return pack(MAGIC, VERSION, chunks)


def _chunks(data_: bytes) -> list[bytes]:
    return unpack(data_, MAGIC, [VERSION])[1]


def test_header_round_trip():
    h = Header(width=768, height=512, jpeg_quality=1, subsampling="4:2:0", fingerprint=b"12345678", content_crc=7)
    assert Header.from_bytes(h.to_bytes()) == h


def test_breakdown_adds_up(good):
    sizes = bitstream.breakdown(good)
    assert sum(sizes.values()) == len(good)
    assert set(sizes) == {"jpeg", "z", "y_anchor", "y_non_anchor", "container"}


def test_mutated_files_are_refused(codec, good):
    """Bit flips, truncations, insertions and deletions anywhere: each raises CorruptStreamError."""
    rng = random.Random(0)
    variants = [good[:n] for n in sorted(rng.sample(range(len(good)), 40))]  # truncations
    for _ in range(120):
        i = rng.randrange(len(good))
        flipped = bytearray(good)
        flipped[i] ^= 1 << rng.randrange(8)
        variants.append(bytes(flipped))
        variants.append(good[:i] + bytes([rng.randrange(256)]) + good[i:])
        variants.append(good[:i] + good[i + 1:])
    variants += [b"", b"HYR", b"PK\x03\x04" + good[4:], good + b"\x00"]
    for v in variants:
        with pytest.raises(CorruptStreamError):
            codec.decode(v)


def test_wrong_magic_says_what_it_expected(codec, good):
    with pytest.raises(CorruptStreamError, match="not a HyRES file"):
        codec.decode(b"\x89PNG" + good[4:])


@pytest.mark.parametrize("edit, message", [
    (lambda c: c[:4], "chunks"),
    (lambda c: c + [b"x"], "chunks"),
    (lambda c: [c[0][:-1]] + c[1:], "header has"),
    (lambda c: [b"\x00" * 4 + c[0][4:]] + c[1:], "image size"),
    (lambda c: [c[0][:8] + b"\x00" + c[0][9:]] + c[1:], "without a base layer .* carries a JPEG chunk"),
    (lambda c: [c[0][:8] + b"\x65" + c[0][9:]] + c[1:], "JPEG setting"),
    (lambda c: [c[0][:10] + b"\x03" + c[0][11:]] + c[1:], "unknown coding mode"),
    (lambda c: [c[0][:10] + b"\x01" + c[0][11:]] + c[1:], "latent-free mode carries latent strings"),
    (lambda c: [c[0][:10] + b"\x02" + c[0][11:]] + c[1:], "base-only mode carries latent strings"),
    (lambda c: [c[0][:9] + b"\x07" + c[0][10:]] + c[1:], "JPEG setting"),
    (lambda c: [c[0], b""] + c[2:], "empty"),
    (lambda c: c[:2] + [b""] + c[3:], "does not end|CRC"),
    (lambda c: c[:3] + [c[3] + b"\x01"] + c[4:], "whole number of 32-bit words"),
    (lambda c: c[:4] + [c[4] + b"\x00" * 4] + c[5:], "zero word"),
    (lambda c: c[:2] + [c[2] + b"\x01\x00\x00\x00"] + c[3:], "does not end"),
    (lambda c: [c[0], b"not a jpeg"] + c[2:], "JPEG base"),
    (lambda c: [c[0][:11] + b"\xff" * 8 + c[0][19:]] + c[1:], "another model"),
])
def test_structurally_wrong_files_with_valid_crc(codec, good, edit, message):
    with pytest.raises(CorruptStreamError, match=message):
        codec.decode(_with_chunks(edit(_chunks(good))))


def test_jpeg_of_the_wrong_size(codec, good):
    chunks = _chunks(good)
    other = codec.encode(torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0)))
    chunks[1] = _chunks(other)[1]
    with pytest.raises(CorruptStreamError, match="header says"):
        codec.decode(_with_chunks(chunks))


@pytest.mark.parametrize("index", [2, 3, 4])
def test_altered_strings_behind_a_recomputed_crc(codec, good, index):
    """Random bytes in place of a string decode to some symbols; the string's end check or the
    content CRC catches it."""
    chunks = _chunks(good)
    rng = random.Random(index)
    chunks[index] = bytes(rng.randrange(256) for _ in range(len(chunks[index])))
    with pytest.raises(CorruptStreamError, match="content CRC|does not end"):
        codec.decode(_with_chunks(chunks))


def test_content_crc_is_checked(codec, good):
    chunks = _chunks(good)
    header = Header.from_bytes(chunks[0])
    chunks[0] = Header(header.width, header.height, header.jpeg_quality, header.subsampling, header.fingerprint,
                       (header.content_crc + 1) % 2**32).to_bytes()
    with pytest.raises(CorruptStreamError, match="content CRC"):
        codec.decode(_with_chunks(chunks))


def test_content_crc_covers_the_jpeg_pixels(codec, good):
    """Another JPEG of the same size (it decodes fine) changes the picture: refused."""
    chunks = _chunks(good)
    x = data.embedded("test")[1][1][:, :70, :90].contiguous()
    chunks[1] = codec.base_layer(x, quality=60)[0]
    assert chunks[1] != _chunks(good)[1]
    with pytest.raises(CorruptStreamError, match="content CRC"):
        codec.decode(_with_chunks(chunks))


def test_content_crc_covers_z(codec, good):
    """The z symbols are checked themselves, not only through y: a z string coding other values
    with the same scale indexes would otherwise give a wrong image without an error."""
    from hyreslib.hyres.codec import content_crc

    z, y, base = torch.zeros(2, 2, dtype=torch.int32), torch.zeros(3, 2, dtype=torch.int32), torch.zeros(3, 4, 4)
    z2 = z.clone()
    z2[0, 0] = 1
    assert content_crc(z, y, base) != content_crc(z2, y, base)


def test_files_of_the_old_rans_format_are_refused(good):
    old = pack(MAGIC, 1, _chunks(good))
    with pytest.raises(CorruptStreamError, match="version 1 .*re-encode"):
        bitstream.read(old)
