"""A guard around CompressAI's rANS decoder, shared by every codec of the kit.

The decoder reads 32-bit words without bounds checks: at most one per decoded symbol, plus a few
per escape code (values outside a table's support). Zero bytes appended after a string are never
read while the string is intact; for a damaged string they keep the reads inside this buffer (the
decoded values are then wrong, which the codecs' checksums reject) instead of in foreign memory.
Only a string crafted to be nearly all escape codes could still exceed the margin.
"""

from __future__ import annotations

BYTES_PER_SYMBOL = 16  # four words per symbol: room for escape codes beyond the usual one word
SLACK = 64


def zero_tail(string: bytes, symbols: int) -> bytes:
    """``string`` followed by enough zero bytes for ``symbols`` decoded symbols."""
    return bytes(string) + bytes(BYTES_PER_SYMBOL * symbols + SLACK)
