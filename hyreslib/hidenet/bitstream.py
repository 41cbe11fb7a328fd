"""The ``.hdn`` file: one container (:mod:`hyreslib.codecs.container`, magic ``HDN1``, version 3), chunks in
decoding order::

    header | base | level L-1 | ... | level 0          (generative files stop after the base)

header: ``<HHBBHBB8sI`` = height, width, levels, mode (0 lossless, 1 near-lossless, 2 generative),
step q, fixed-predictor flag, coding options (bit 0: colour space YCoCg-R instead of RGB, bit 1:
channel-conditional coding, bits 2-4: revision of the fixed constants; see :mod:`.colour` and
:mod:`.predictors`), predictor fingerprint (8 B), CRC-32 of the decoded image (its 8-bit RGB
bytes, row by row). The base and each level are strings of the bounds-checked coder of
:mod:`hyreslib.codecs.ans` (what they hold: :mod:`.codec`).

Versions. 3 is the layout above; 2 had no options byte (RGB, conditional, revision 1) and is
still read. Version 1 used CompressAI's rANS, whose decoder a crafted string can crash; such
files are refused.

What the checks promise. The container's CRC catches accidental damage, the image CRC decoder
desync (a predictor whose float results differ from the encoder's) and altered strings that
still parse. Neither authenticates a file: anyone can recompute both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..codecs.container import CorruptStreamError, pack, unpack
from .colour import BY_CODE, colour_space
from .predictors import FIXED_CONSTANTS, REVISION

MAGIC = b"HDN1"
VERSION = 3
READABLE_VERSIONS = (2, 3)
MODES = {"lossless": 0, "near-lossless": 1, "generative": 2}
MODE_NAMES = {v: k for k, v in MODES.items()}
MAX_LEVELS = 24
HEADER_FORMAT = "<HHBBHBB8sI"     # version 3; version 2 lacked the options byte
_HEADERS = {2: struct.Struct("<HHBBHB8sI"), 3: struct.Struct(HEADER_FORMAT)}
OPTION_YCOCG, OPTION_CONDITIONAL, REVISION_SHIFT = 1, 2, 2


def mode_step(mode: str, step: int | None) -> int:
    """The step a mode uses: 1 lossless, odd q >= 3 near-lossless, 0 generative (``step`` if valid,
    else -1)."""
    if mode == "lossless":
        return 1
    if mode == "generative":
        return 0
    if step is None or step < 3 or step % 2 == 0 or step > 255:
        return -1
    return step


@dataclass(frozen=True)
class Header:
    height: int
    width: int
    levels: int
    mode: str
    step: int
    fixed: bool
    fingerprint: bytes
    checksum: int
    colour: str = "rgb"
    conditional: bool = True
    revision: int = REVISION

    def to_bytes(self) -> bytes:
        options = (OPTION_YCOCG * colour_space(self.colour).code + OPTION_CONDITIONAL * int(self.conditional)
                   + (self.revision << REVISION_SHIFT))
        return _HEADERS[VERSION].pack(self.height, self.width, self.levels, MODES[self.mode], self.step,
                                      int(self.fixed), options, self.fingerprint, self.checksum)

    @classmethod
    def from_bytes(cls, data: bytes, version: int = VERSION) -> Header:
        layout = _HEADERS[version]
        if len(data) != layout.size:
            raise CorruptStreamError(f"hideNet header has {len(data)} bytes, expected {layout.size}")
        if version == 2:
            h, w, levels, mode, step, fixed, fp, crc = layout.unpack(data)
            options = OPTION_CONDITIONAL + (1 << REVISION_SHIFT)
        else:
            h, w, levels, mode, step, fixed, options, fp, crc = layout.unpack(data)
        if not (1 <= h and 1 <= w):
            raise CorruptStreamError(f"hideNet header: invalid image size {w}x{h}")
        space = BY_CODE[options & OPTION_YCOCG]
        conditional, revision = bool(options & OPTION_CONDITIONAL), options >> REVISION_SHIFT
        if (levels > MAX_LEVELS or mode not in MODE_NAMES or fixed > 1
                or (space.name, conditional, revision) not in FIXED_CONSTANTS):
            raise CorruptStreamError(f"hideNet header: invalid levels {levels}, mode {mode}, predictor flag {fixed} "
                                     f"or options {options}")
        header = cls(h, w, levels, MODE_NAMES[mode], step, bool(fixed), fp, crc, space.name, conditional, revision)
        if step != mode_step(header.mode, step):
            raise CorruptStreamError(f"hideNet header: step {step} is invalid for mode {header.mode}")
        if header.mode == "near-lossless" and not space.bounds_rgb_errors:
            raise CorruptStreamError(f"hideNet header: near-lossless coding in {space.name} is not a valid combination")
        return header


def write(header: Header, base: bytes, levels: list[bytes]) -> bytes:
    """Serialise one coded image (``levels``: coarsest first, none in the generative mode)."""
    return pack(MAGIC, VERSION, [header.to_bytes(), base, *levels])


def read(data: bytes) -> tuple[Header, list[bytes]]:
    """Check the container and header; returns (header, [base, level L-1, ..., level 0]).

    Raises :class:`CorruptStreamError` for anything that is not an intact file of this format."""
    if bytes(data[:4]) == MAGIC and len(data) > 4 and data[4] < min(READABLE_VERSIONS):
        raise CorruptStreamError(f"hideNet stream of format version {data[4]} (an older build's rANS coder); this "
                                 f"build reads versions {list(READABLE_VERSIONS)}: re-encode the image")
    version, chunks = unpack(data, MAGIC, READABLE_VERSIONS, what="hideNet stream")
    if not chunks:
        raise CorruptStreamError("hideNet stream has no header")
    header = Header.from_bytes(chunks[0], version)
    expected = 2 + (0 if header.mode == "generative" else header.levels)
    if len(chunks) != expected:
        raise CorruptStreamError(f"hideNet stream has {len(chunks)} chunks, its header implies {expected}")
    return header, chunks[1:]
