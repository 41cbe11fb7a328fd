"""The ``.hyr`` file: one container (:mod:`hyreslib.codecs.container`, magic ``HYR1``) with five chunks::

    0 header    width u32 | height u32 | JPEG quality u8 | subsampling u8 | coding mode u8
                | model fingerprint 8 B | content CRC-32 u32                  (23 bytes, LE)
    1 jpeg      a standard baseline JPEG of the original image (``hyres extract-jpeg`` writes it out);
                empty, with JPEG quality 0 in the header, for a model without a base layer
    2 z         entropy-coded string of the hyper-latent (:mod:`hyreslib.codecs.ans`)
    3 y_anchor  string of the anchor half of y (coded first, from the hyperprior alone)
    4 y_non_anchor  string of the other half (coded with the decoded anchors as context)

The coding mode, chosen per image by the encoder (the option with the lowest rate-distortion cost):
0 ``latent`` (chunks 2-4 carry the latent), 1 ``latent-free`` (chunks 2-4 empty; the decoder
synthesises from a zero latent: for a base-conditioned model, what the base alone implies) or
2 ``base-only`` (chunks 2-4 empty; the picture is the JPEG base itself, refined when the decoder
has a refiner: without one a file is never worse than its base).

Versions. 2 codes the strings with the bounds-checked coder of :mod:`hyreslib.codecs.ans` (float parse:
the coding-table indexes of y come from floating-point entropy parameters, so a file decodes on
the encoder's device type); 3 is the same layout written by an integer-parse model (those indexes
are computed in integer arithmetic from z, see :mod:`.residual`: the file decodes on any device).
The version says which a file needs, and the decoder refuses a file of the other kind. Version 1
files (CompressAI's rANS, whose decoder a crafted string can crash) are refused.

What the checks promise. The container's CRC-32 catches accidental damage: a flipped bit or a
truncated file. The content CRC covers everything that shapes the picture: the integer symbols
of z and y and the decoded pixels of the JPEG base (only the floating-point synthesis that turns
y into a residual lies outside it). The decoder recomputes it from what it decoded, so decoding
that lost sync (entropy parameters computed differently from the encoder's, e.g. on another
device type) and altered strings that still parse fail loudly instead of showing a wrong image.
Each string must also be used up exactly. None of this is authentication: CRC-32 is not a
cryptographic hash, and anyone who edits a file can recompute both CRCs so that it decodes, to a
different picture, without error. Verify files from untrusted sources by other means (a
signature or a hash sent separately).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..codecs.container import CorruptStreamError, pack, unpack
from ..codecs.jpeg import SUBSAMPLING
from ..core.limits import MAX_SIDE

MAGIC = b"HYR1"
VERSION = 2                                  # files of float-parse models
VERSIONS = {"float": VERSION, "integer": 3}  # by the model's parse (ResidualConfig.parse)
_PARSES = {v: k for k, v in VERSIONS.items()}
CHUNKS = ("header", "jpeg", "z", "y_anchor", "y_non_anchor")
STRINGS = CHUNKS[2:]
FINGERPRINT_BYTES = 8
HEADER_FORMAT = "<IIBBB8sI"  # width, height, quality, subsampling, mode, fingerprint, content CRC
_HEADER = struct.Struct(HEADER_FORMAT)
MODES = ("latent", "latent-free", "base-only")
_SUBSAMPLING_NAMES = {v: k for k, v in SUBSAMPLING.items()}


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    jpeg_quality: int
    subsampling: str
    fingerprint: bytes
    content_crc: int
    mode: str = "latent"
    parse: str = "float"  # written as the container version, not in the header chunk

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.width, self.height, self.jpeg_quality, SUBSAMPLING[self.subsampling],
                            MODES.index(self.mode), self.fingerprint, self.content_crc)

    @classmethod
    def from_bytes(cls, data: bytes, parse: str = "float") -> Header:
        if len(data) != _HEADER.size:
            raise CorruptStreamError(f"HyRES header has {len(data)} bytes, expected {_HEADER.size}")
        width, height, quality, sub, mode, fp, crc = _HEADER.unpack(data)
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise CorruptStreamError(f"HyRES header gives an impossible image size {width}x{height}")
        if not 0 <= quality <= 100 or sub not in _SUBSAMPLING_NAMES:
            raise CorruptStreamError(f"HyRES header gives an invalid JPEG setting (quality {quality}, code {sub})")
        if mode >= len(MODES):
            raise CorruptStreamError(f"HyRES header gives an unknown coding mode {mode}")
        return cls(width, height, quality, _SUBSAMPLING_NAMES[sub], fp, crc, MODES[mode], parse)


def write(header: Header, jpeg: bytes, strings: dict[str, bytes]) -> bytes:
    """Serialise one coded image."""
    if len(header.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes")
    return pack(MAGIC, VERSIONS[header.parse], [header.to_bytes(), jpeg, *(strings[k] for k in STRINGS)])


def read(data: bytes) -> tuple[Header, dict[str, bytes]]:
    """Check and split a ``.hyr`` file into its header and named chunks (``jpeg``, ``z``, ...).

    Raises :class:`CorruptStreamError` for anything that is not an intact file of this format.
    """
    if bytes(data[:4]) == MAGIC and len(data) > 4 and data[4] < VERSION:
        raise CorruptStreamError(f"HyRES file of format version {data[4]} (an older build's rANS coder); this build "
                                 f"reads versions {VERSION} and {VERSIONS['integer']}: re-encode the image")
    version, chunks = unpack(data, MAGIC, list(_PARSES), what="HyRES file")
    if len(chunks) != len(CHUNKS):
        raise CorruptStreamError(f"HyRES file has {len(chunks)} chunks, expected {len(CHUNKS)}")
    header = Header.from_bytes(chunks[0], _PARSES[version])
    parts = dict(zip(CHUNKS[1:], chunks[1:]))
    if header.jpeg_quality == 0 and parts["jpeg"]:
        raise CorruptStreamError("HyRES file without a base layer (quality 0) carries a JPEG chunk")
    if header.jpeg_quality and not parts["jpeg"]:
        raise CorruptStreamError("HyRES file has an empty JPEG chunk")
    if header.mode != "latent" and any(parts[k] for k in STRINGS):
        raise CorruptStreamError(f"HyRES file in the {header.mode} mode carries latent strings")
    return header, parts


def breakdown(data: bytes) -> dict[str, int]:
    """Bytes per part of a file; ``container`` is the framing (magic, lengths, CRC, header)."""
    _, parts = read(data)
    sizes = {k: len(v) for k, v in parts.items()}
    sizes["container"] = len(data) - sum(sizes.values())
    return sizes
