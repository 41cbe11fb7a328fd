"""A small versioned container shared by every codec of the kit.

Layout (all integers little-endian)::

    magic (4 B) | version (1 B) | n_chunks (varint) | [len (varint) | chunk bytes] * n | CRC-32 (4 B)

The CRC covers everything before it. Each codec decides what its chunks mean (a header struct,
a JPEG, rANS strings...). The overhead is 10 bytes plus one to three bytes per chunk, and it is
counted in every reported bpp because it is part of the file.

Every malformed input raises :class:`CorruptStreamError` (a ``ValueError``) with a message that
says what is wrong (a stream for another model: its subclass :class:`ModelMismatchError`); no input
makes the reader allocate more than the input size or loop.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

CRC_BYTES = 4
MAX_CHUNKS = 4096


class CorruptStreamError(ValueError):
    """The bytes are not a valid stream of the expected kind (magic, version, length or CRC)."""


class ModelMismatchError(CorruptStreamError):
    """The stream names a model (fingerprint, parse or predictor options) other than the decoder's.
    A stream error like any other to a caller that just wants the picture (a damaged fingerprint
    looks the same), and its own class for one that would fetch the right model."""


def write_varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; stops at ``limit`` (exclusive). Returns (value, new position)."""
    value = shift = 0
    while True:
        if pos >= limit:
            raise CorruptStreamError("stream truncated inside a length field")
        if shift > 56:
            raise CorruptStreamError("length field too long")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def pack(magic: bytes, version: int, chunks: Sequence[bytes]) -> bytes:
    """Serialise ``chunks`` into one container with a trailing CRC-32."""
    if len(magic) != 4:
        raise ValueError("magic must be 4 bytes")
    if not 0 <= version <= 255:
        raise ValueError("version must fit in one byte")
    body = bytearray(magic)
    body.append(version)
    body += write_varint(len(chunks))
    for chunk in chunks:
        body += write_varint(len(chunk))
        body += chunk
    body += zlib.crc32(body).to_bytes(CRC_BYTES, "little")
    return bytes(body)


def unpack(data: bytes, magic: bytes, versions: Sequence[int], what: str = "stream") -> tuple[int, list[bytes]]:
    """Check and split a container. Returns (version, chunks).

    Checks run in the order that gives the most useful message: magic first (is this our kind of
    file at all?), then length, then CRC (was it damaged?), then version and structure.
    """
    data = bytes(data)
    if len(data) < 4 or data[:4] != magic:
        raise CorruptStreamError(f"not a {what}: expected magic {magic!r}, found {data[:4]!r}")
    if len(data) < 4 + 1 + 1 + CRC_BYTES:
        raise CorruptStreamError(f"{what} truncated: only {len(data)} bytes")
    end = len(data) - CRC_BYTES
    stored = int.from_bytes(data[end:], "little")
    if zlib.crc32(data[:end]) != stored:
        raise CorruptStreamError(f"{what} damaged or truncated: CRC mismatch")
    version = data[4]
    if version not in versions:
        raise CorruptStreamError(f"{what} has format version {version}; this build reads {list(versions)}")
    count, pos = read_varint(data, 5, end)
    if count > MAX_CHUNKS:
        raise CorruptStreamError(f"{what} claims {count} chunks")
    chunks = []
    for _ in range(count):
        size, pos = read_varint(data, pos, end)
        if pos + size > end:
            raise CorruptStreamError(f"{what} truncated: a chunk of {size} bytes runs past the end")
        chunks.append(data[pos:pos + size])
        pos += size
    if pos != end:
        raise CorruptStreamError(f"{what} has {end - pos} unexpected trailing bytes")
    return version, chunks
