"""Resource limits every decoder checks from a file's header, before it allocates anything large.

A hostile file can claim any size in a few bytes; without these checks it makes the decoder
allocate whatever it claims. Two limits apply, each settable per call and on the command line:

* ``max_pixels`` (default 64 MP, 64 million pixels) on the image size a file claims;
* ``max_memory`` (default this machine's physical memory) on the decoder's working memory, which
  each codec estimates from the header and its model (the estimates are measured peaks, see
  ``bench/decoder_memory.py``), so that a file this machine cannot decode fails at once with a
  message instead of swapping or being killed.
"""

from __future__ import annotations

import argparse
import os

DEFAULT_MAX_PIXELS = 64_000_000
MAX_SIDE = 65535        # the largest side a JPEG (and a u16 header field) can hold
_FALLBACK_MEMORY = 16 << 30


class LimitError(ValueError):
    """A file (or an input) needs more than the configured limits allow."""


def physical_memory() -> int:
    """Bytes of physical memory of this machine (16 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_MEMORY


def check_size(width: int, height: int, max_pixels: int | None = None, what: str = "image") -> None:
    """Refuse an image size outside 1..65535 a side or above ``max_pixels`` in all."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise LimitError(f"{what} is {width}x{height}: sides must be 1..{MAX_SIDE} pixels")
    if width * height > limit:
        raise LimitError(f"{what} is {width}x{height} = {width * height / 1e6:.1f} MP, above the limit of "
                         f"{limit / 1e6:.1f} MP (raise max_pixels / --max-pixels to allow it)")


def check_memory(estimate: int, max_memory: int | None = None, what: str = "decoding") -> None:
    """Refuse work whose estimated working memory exceeds ``max_memory`` bytes."""
    limit = physical_memory() if max_memory is None else max_memory
    if estimate > limit:
        raise LimitError(f"{what} would need about {estimate / 2**30:.1f} GiB of memory, above the limit of "
                         f"{limit / 2**30:.1f} GiB (raise max_memory / --max-memory to allow it)")


def add_arguments(parser: argparse.ArgumentParser, memory: bool = True) -> None:
    """``--max-pixels`` (and, for decoders, ``--max-memory``) on a command."""
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse images larger than this many pixels (default {DEFAULT_MAX_PIXELS})")
    if memory:
        parser.add_argument("--max-memory", type=float, default=None, metavar="GIB",
                            help="refuse files whose decoding needs more memory (GiB; default: physical memory)")


def from_arguments(args: argparse.Namespace) -> dict[str, int | None]:
    """The limits given on the command line, as keyword arguments of a decoder."""
    gib = getattr(args, "max_memory", None)
    return {"max_pixels": args.max_pixels, "max_memory": None if gib is None else int(gib * 2**30)}
