"""The ``.hyr`` file: one container (:mod:`hyreslib.container`, magic ``HYR1``) with five chunks::

    0 header    width u32 | height u32 | JPEG quality u8 | subsampling u8 | model fingerprint 8 B
                | CRC-32 of the integer symbols of y u32                       (22 bytes, LE)
    1 jpeg      a standard baseline JPEG of the original image (``hyres extract-jpeg`` writes it out);
                empty, with JPEG quality 0 in the header, for a model without a base layer
    2 z         rANS string of the hyper-latent
    3 y_anchor  rANS string of the anchor half of y (coded first, from the hyperprior alone)
    4 y_non_anchor  rANS string of the other half (coded with the decoded anchors as context)

Chunks 2-4 are all empty (and the latent CRC 0) in the latent-free mode, which the encoder picks
for an image when the latent does not pay for its bits: the decoder then synthesises from a zero
latent (with a base-conditioned model, what the base alone implies).

The container's CRC-32 catches damaged or truncated files. The latent CRC lets the decoder check
that it read exactly the symbols the encoder coded (a wrong z corrupts them too); it fails loudly
instead of showing a wrong image when decoding loses sync, e.g. on a device that computes the
entropy parameters differently from the encoder's, or when a string was altered behind a
recomputed container CRC.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..container import CorruptStreamError, pack, unpack
from ..jpeg import SUBSAMPLING

MAGIC = b"HYR1"
VERSION = 1
CHUNKS = ("header", "jpeg", "z", "y_anchor", "y_non_anchor")
STRINGS = CHUNKS[2:]
FINGERPRINT_BYTES = 8
MAX_SIDE = 1 << 16
_HEADER = struct.Struct("<IIBB8sI")
_SUBSAMPLING_NAMES = {v: k for k, v in SUBSAMPLING.items()}


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    jpeg_quality: int
    subsampling: str
    fingerprint: bytes
    latent_crc: int

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.width, self.height, self.jpeg_quality, SUBSAMPLING[self.subsampling],
                            self.fingerprint, self.latent_crc)

    @classmethod
    def from_bytes(cls, data: bytes) -> Header:
        if len(data) != _HEADER.size:
            raise CorruptStreamError(f"HyRES header has {len(data)} bytes, expected {_HEADER.size}")
        width, height, quality, sub, fp, crc = _HEADER.unpack(data)
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise CorruptStreamError(f"HyRES header gives an impossible image size {width}x{height}")
        if not 0 <= quality <= 100 or sub not in _SUBSAMPLING_NAMES:
            raise CorruptStreamError(f"HyRES header gives an invalid JPEG setting (quality {quality}, code {sub})")
        return cls(width, height, quality, _SUBSAMPLING_NAMES[sub], fp, crc)


def write(header: Header, jpeg: bytes, strings: dict[str, bytes]) -> bytes:
    """Serialise one coded image."""
    if len(header.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes")
    return pack(MAGIC, VERSION, [header.to_bytes(), jpeg, *(strings[k] for k in STRINGS)])


def read(data: bytes) -> tuple[Header, dict[str, bytes]]:
    """Check and split a ``.hyr`` file into its header and named chunks (``jpeg``, ``z``, ...).

    Raises :class:`CorruptStreamError` for anything that is not an intact file of this format.
    """
    _, chunks = unpack(data, MAGIC, [VERSION], what="HyRES file")
    if len(chunks) != len(CHUNKS):
        raise CorruptStreamError(f"HyRES file has {len(chunks)} chunks, expected {len(CHUNKS)}")
    header = Header.from_bytes(chunks[0])
    parts = dict(zip(CHUNKS[1:], chunks[1:]))
    empty = [k for k, v in parts.items() if not v and not (k == "jpeg" and header.jpeg_quality == 0)
             and not (k in STRINGS and is_latent_free(parts))]
    if header.jpeg_quality == 0 and parts["jpeg"]:
        raise CorruptStreamError("HyRES file without a base layer (quality 0) carries a JPEG chunk")
    if empty:
        raise CorruptStreamError(f"HyRES file has empty chunk(s) {empty}")
    return header, parts


def is_latent_free(parts: dict[str, bytes]) -> bool:
    """True for a file coded in the latent-free mode (no z / y strings)."""
    return not any(parts[k] for k in STRINGS)


def breakdown(data: bytes) -> dict[str, int]:
    """Bytes per part of a file; ``container`` is the framing (magic, lengths, CRC, header)."""
    _, parts = read(data)
    sizes = {k: len(v) for k, v in parts.items()}
    sizes["container"] = len(data) - sum(sizes.values())
    return sizes
