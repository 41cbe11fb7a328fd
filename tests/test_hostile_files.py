"""Crafted files that used to crash, exhaust memory or raise tracebacks: each must now give a clean
``ValueError`` (``CorruptStreamError`` / ``LimitError``) quickly. The big ones are generated here,
never committed."""

from __future__ import annotations

import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from test_hyres_bitstream import codec  # noqa: F401 - the shared small codec fixture

from hyreslib.codecs import ans
from hyreslib.codecs.container import CorruptStreamError, pack, unpack
from hyreslib.core import limits
from hyreslib.core.checkpoint import save_checkpoint
from hyreslib.hidenet import bitstream as hdn
from hyreslib.hidenet.codec import HidenetCodec
from hyreslib.hidenet.predictors import CNNP
from hyreslib.hyres import HyresCodec, ResidualCodec, ResidualConfig
from hyreslib.hyres import bitstream
from hyreslib.hyres.bitstream import Header
from hyreslib.hyres.codec import CHECKPOINT_KIND


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 48, 64, generator=g)


@pytest.fixture(scope="module")
def hyr(codec, image) -> bytes:
    return codec.encode(image)


@pytest.fixture(scope="module")
def hdn_file(image) -> bytes:
    return HidenetCodec(levels=4).encode(image)


def _chunks(data: bytes, magic: bytes, version: int) -> list[bytes]:
    return unpack(data, magic, [version])[1]


def _refused_quickly(fn, match: str, seconds: float = 5.0) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        fn()
    assert time.perf_counter() - t0 < seconds


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) claims ``width`` x ``height``."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[:i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9:]


@pytest.mark.parametrize("index", [2, 3, 4])
def test_a_16_mib_string_of_0xff_is_refused(codec, hyr, index):
    """This used to read past the buffer in CompressAI's rANS decoder and kill the process (SIGSEGV)."""
    chunks = _chunks(hyr, bitstream.MAGIC, bitstream.VERSION)
    chunks[index] = b"\xff" * (16 << 20)
    _refused_quickly(lambda: codec.decode(pack(bitstream.MAGIC, bitstream.VERSION, chunks)), "does not end|CRC")


def test_a_1_mib_hidenet_base_chunk_of_0xff_is_refused(hdn_file):
    chunks = _chunks(hdn_file, hdn.MAGIC, hdn.VERSION)
    chunks[1] = bytes(3) + b"\xff" * (1 << 20)
    _refused_quickly(lambda: HidenetCodec().decode(pack(hdn.MAGIC, hdn.VERSION, chunks)), "does not end|checksum")


def test_any_bytes_decode_without_reading_outside_the_string():
    """Random strings of every length: a clean error or some symbols, never a crash."""
    tables = ans.Tables.from_lists([[0, 30000, 65000, 65536], [0, 10, 65535, 65536]], [-1, 0])
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, 2, 500)
    for n in range(0, 400, 4):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        try:
            ans.decode(data, indexes, tables)
        except CorruptStreamError:
            pass


def test_a_13000_square_hyres_header_is_refused_before_allocating(codec, hyr):
    chunks = _chunks(hyr, bitstream.MAGIC, bitstream.VERSION)
    h = Header.from_bytes(chunks[0])
    chunks[0] = Header(13000, 13000, h.jpeg_quality, h.subsampling, h.fingerprint, h.content_crc).to_bytes()
    chunks[1] = with_jpeg_size(chunks[1], 13000, 13000)
    data = pack(bitstream.MAGIC, bitstream.VERSION, chunks)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused_quickly(lambda: codec.decode(data), "above the limit of 64.0 MP", seconds=1.0)
    # Within max_pixels, the working-memory estimate refuses it instead (169 MP x N=16 > 1 GiB).
    _refused_quickly(lambda: codec.decode(data, max_pixels=10**9, max_memory=1 << 30), "GiB of memory", seconds=1.0)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB


def test_a_65535_square_jpeg_chunk_is_refused(codec, hyr):
    """Pillow's DecompressionBombError used to escape as a traceback."""
    chunks = _chunks(hyr, bitstream.MAGIC, bitstream.VERSION)
    chunks[1] = with_jpeg_size(chunks[1], 65535, 65535)
    _refused_quickly(lambda: codec.decode(pack(bitstream.MAGIC, bitstream.VERSION, chunks)), "JPEG base layer")


def test_an_8192_square_24_level_hidenet_file_is_refused(hdn_file):
    chunks = _chunks(hdn_file, hdn.MAGIC, hdn.VERSION)
    h = hdn.Header.from_bytes(chunks[0])
    header = hdn.Header(8192, 8192, 24, h.mode, h.step, h.fixed, h.fingerprint, h.checksum)
    data = pack(hdn.MAGIC, hdn.VERSION, [header.to_bytes(), b"\x00" * 7, *[b""] * 24])
    assert len(data) < 100
    decoder = HidenetCodec()
    _refused_quickly(lambda: decoder.decode(data), "above the limit", seconds=1.0)
    _refused_quickly(lambda: decoder.decode(data, max_pixels=1 << 26, max_memory=1 << 30), "GiB of memory", seconds=1.0)


def test_memory_estimates_grow_with_the_image_and_the_model(codec):
    assert codec.working_memory(1024, 1024) < codec.working_memory(2048, 2048)
    fixed = HidenetCodec()
    assert fixed.working_memory(1000, 1000) < fixed.working_memory(2000, 2000)
    assert HidenetCodec(CNNP(16, 4)).working_memory(1000, 1000) > fixed.working_memory(1000, 1000)
    wider = HyresCodec(ResidualCodec(ResidualConfig(N=64, M=24, depth=4, scale_levels=64)))
    assert wider.working_memory(1024, 1024) > codec.working_memory(1024, 1024)


def test_limits_reject_sides_outside_the_jpeg_range():
    limits.check_size(65535, 1)
    for w, h in [(65536, 1), (0, 5), (5, 0)]:
        with pytest.raises(limits.LimitError, match="sides must be"):
            limits.check_size(w, h)


# --- checkpoints ---------------------------------------------------------------------------------

def _checkpoint(tmp_path, codec: HyresCodec, edit) -> str:
    config = codec.config()
    state = {f"residual.{k}": v for k, v in codec.residual.state_dict().items()}
    edit(config, state)
    return str(save_checkpoint(tmp_path / "c.ckpt", CHECKPOINT_KIND, config, state))


def test_a_checkpoint_claiming_a_huge_model_is_refused_before_allocating(tmp_path, codec):
    path = _checkpoint(tmp_path, codec, lambda c, s: c["residual"].update(N=4096, M=4096))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused_quickly(lambda: HyresCodec.load(path), "weights do not match the config")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 500_000  # KiB; the model would need 3.5 GB


@pytest.mark.parametrize("edit, match", [
    (lambda c, s: c["jpeg"].update(colour="yes"), "invalid JPEG settings"),
    (lambda c, s: c["jpeg"].update(quality=101), "invalid JPEG settings"),
    (lambda c, s: c.pop("jpeg"), "invalid JPEG settings"),
    (lambda c, s: c["residual"].update(surprise=1), "invalid model config"),
    (lambda c, s: s.pop(next(iter(s))), "missing"),
    (lambda c, s: s.update({"residual.extra.weight": torch.zeros(1)}), "unexpected"),
])
def test_bad_checkpoints_give_one_clear_error(tmp_path, codec, edit, match):
    path = _checkpoint(tmp_path, codec, edit)
    with pytest.raises(ValueError, match=match):
        HyresCodec.load(path)


def test_compact_checkpoints_that_are_damaged_or_expand_too_far_are_refused(tmp_path, codec, monkeypatch):
    import lzma

    from hyreslib.core import checkpoint

    path = Path(_checkpoint(tmp_path, codec, lambda c, s: None))
    compact = save_checkpoint(tmp_path / "compact.ckpt", CHECKPOINT_KIND, codec.config(),
                              {f"residual.{k}": v for k, v in codec.residual.state_dict().items()}, compact=True)
    HyresCodec.load(compact)
    packed = compact.read_bytes()
    for name, data, match in [("truncated", packed[:len(packed) // 2], "truncated compact checkpoint"),
                              ("garbled", packed[:6] + b"\0" * 64, "not a readable compact checkpoint")]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=match):
            HyresCodec.load(tmp_path / name)
    monkeypatch.setattr(checkpoint, "MAX_UNPACKED_BYTES", path.stat().st_size // 2)
    (tmp_path / "bomb").write_bytes(lzma.compress(path.read_bytes()))
    with pytest.raises(ValueError, match="expands beyond"):
        HyresCodec.load(tmp_path / "bomb")


def test_a_compact_checkpoint_whose_scales_do_not_fit_is_refused(tmp_path, codec):
    import io
    import lzma

    payload = {"format": "hyres-checkpoint", "format_version": 2, "kind": CHECKPOINT_KIND, "config": codec.config(),
               "state_dict": {f"residual.{k}": v for k, v in codec.residual.state_dict().items()},
               "scales": {"residual.g_a.0.weight": torch.ones(3)}, "extra": {}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    (tmp_path / "c.ckpt").write_bytes(lzma.compress(buf.getvalue()))
    with pytest.raises(ValueError, match="does not fit its weights"):
        HyresCodec.load(tmp_path / "c.ckpt")


def test_png_header_claims_are_checked_before_decoding(tmp_path):
    from hyreslib.core.images import load_image

    for w, h, match in [(20000, 20000, "above the limit|decompression bomb"), (65536, 1, "sides must be")]:
        path = tmp_path / f"{w}x{h}.png"
        path.write_bytes(png_claiming(w, h))
        with pytest.raises(ValueError, match=match):
            load_image(path)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims ``width`` x ``height`` (its pixel data is not there)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_the_default_memory_limit_is_this_machines_memory():
    limits.check_memory(limits.physical_memory())
    with pytest.raises(limits.LimitError, match="GiB of memory"):
        limits.check_memory(limits.physical_memory() + 1)
