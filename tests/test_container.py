"""The byte container: exact round trips, and every kind of damage raises CorruptStreamError with a
message that says what is wrong."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyreslib.codecs import container
from hyreslib.codecs.container import CorruptStreamError

MAGIC = b"TST1"
CHUNKS = [b"header", b"", bytes(range(256)) * 3, b"\x00"]


def _seal(body: bytes) -> bytes:
    """A stream with a correct CRC, to reach the structural checks behind it."""
    return body + zlib.crc32(body).to_bytes(4, "little")


def _unpack(data: bytes, versions=(1,)):
    return container.unpack(data, MAGIC, versions, what="test stream")


def test_round_trip_and_overhead():
    data = container.pack(MAGIC, 1, CHUNKS)
    assert _unpack(data) == (1, CHUNKS)
    # 10 bytes of framing, plus one varint per chunk (768 needs two bytes).
    assert len(data) == 10 + sum(len(c) for c in CHUNKS) + 1 + 1 + 2 + 1


def test_empty_chunk_list():
    assert _unpack(container.pack(MAGIC, 1, [])) == (1, [])


def test_error_is_a_value_error():
    assert issubclass(CorruptStreamError, ValueError)


def test_wrong_magic():
    data = container.pack(b"OTHR", 1, CHUNKS)
    with pytest.raises(CorruptStreamError, match=r"not a test stream: expected magic b'TST1', found b'OTHR'"):
        _unpack(data)


def test_truncation_at_every_length():
    data = container.pack(MAGIC, 1, CHUNKS)
    for n in range(len(data)):
        with pytest.raises(CorruptStreamError, match="not a test stream|truncated|CRC mismatch"):
            _unpack(data[:n])


def test_every_single_bit_flip_is_detected():
    data = container.pack(MAGIC, 1, [b"abc", b"defgh"])
    for i in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            with pytest.raises(CorruptStreamError, match="not a test stream|CRC mismatch"):
                _unpack(bytes(damaged))


def test_bad_version():
    data = container.pack(MAGIC, 3, CHUNKS)
    with pytest.raises(CorruptStreamError, match=r"format version 3; this build reads \[1, 2\]"):
        _unpack(data, versions=(1, 2))
    assert _unpack(data, versions=(3,))[0] == 3


def test_bytes_appended_after_the_crc():
    data = container.pack(MAGIC, 1, CHUNKS)
    with pytest.raises(CorruptStreamError, match="CRC mismatch"):
        _unpack(data + b"\x00")


def test_trailing_bytes_inside_a_valid_crc():
    body = MAGIC + bytes([1]) + container.write_varint(1) + container.write_varint(2) + b"ab" + b"xyz"
    with pytest.raises(CorruptStreamError, match="3 unexpected trailing bytes"):
        _unpack(_seal(body))


def test_chunk_running_past_the_end():
    body = MAGIC + bytes([1]) + container.write_varint(1) + container.write_varint(50) + b"short"
    with pytest.raises(CorruptStreamError, match="chunk of 50 bytes runs past the end"):
        _unpack(_seal(body))


def test_more_chunks_claimed_than_present():
    body = MAGIC + bytes([1]) + container.write_varint(3) + container.write_varint(1) + b"a"
    with pytest.raises(CorruptStreamError, match="truncated inside a length field"):
        _unpack(_seal(body))


def test_absurd_counts_and_lengths():
    too_many = MAGIC + bytes([1]) + container.write_varint(container.MAX_CHUNKS + 1)
    with pytest.raises(CorruptStreamError, match="claims 4097 chunks"):
        _unpack(_seal(too_many))
    endless_varint = MAGIC + bytes([1]) + b"\xff" * 12
    with pytest.raises(CorruptStreamError, match="length field too long"):
        _unpack(_seal(endless_varint))


def test_pack_validates_its_arguments():
    with pytest.raises(ValueError, match="magic must be 4 bytes"):
        container.pack(b"ABC", 1, [])
    with pytest.raises(ValueError, match="one byte"):
        container.pack(MAGIC, 256, [])
    with pytest.raises(ValueError, match="non-negative"):
        container.write_varint(-1)


@given(st.integers(min_value=0, max_value=2**63 - 1))
@settings(derandomize=True)
def test_varint_round_trip(n):
    encoded = container.write_varint(n)
    assert container.read_varint(encoded, 0, len(encoded)) == (n, len(encoded))


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(min_value=0, max_value=255))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_arbitrary_chunk_lists_round_trip(chunks, version):
    assert _unpack(container.pack(MAGIC, version, chunks), versions=(version,)) == (version, chunks)


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_arbitrary_bytes_only_raise_corrupt_stream(data):
    try:
        _unpack(MAGIC + data)
    except CorruptStreamError:
        pass


@given(st.lists(st.binary(max_size=40), max_size=6), st.data())
@settings(max_examples=200, deadline=None, derandomize=True)
def test_structurally_damaged_streams_with_valid_crc(chunks, draw):
    """Corrupt the body but fix the CRC: the structure checks alone must catch it or parse cleanly."""
    body = bytearray(container.pack(MAGIC, 1, chunks)[:-4])
    pos = draw.draw(st.integers(min_value=5, max_value=len(body) - 1))
    body[pos] = draw.draw(st.integers(min_value=0, max_value=255))
    try:
        version, parsed = _unpack(_seal(bytes(body)))
    except CorruptStreamError:
        return
    assert version == 1 and sum(map(len, parsed)) <= len(body)
