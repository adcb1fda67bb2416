from __future__ import annotations

import io
import random
import struct

import pytest

from cove.xet import hashes, xorb
from cove.xet.errors import XorbFormatError


def test_real_xorbs_parse_and_hash(real_upload) -> None:
    schemes = set()
    for hex_hash, body in real_upload.captured.xorbs.items():
        info = xorb.parse_xorb(body, expected_hash=hashes.hex_to_hash(hex_hash))
        assert hashes.hash_to_hex(info.hash) == hex_hash
        assert not info.has_footer
        assert info.stream_len == info.total_len == len(body)
        schemes |= {body[c.byte_start + 4] for c in info.chunks}
    # random data, zeros/text and float32 data cover all three schemes
    assert schemes == {xorb.SCHEME_NONE, xorb.SCHEME_LZ4, xorb.SCHEME_BG4_LZ4}


def test_real_xorb_chunks_are_payload_bytes(real_upload) -> None:
    hex_hash, body = next(iter(real_upload.captured.xorbs.items()))
    info = xorb.parse_xorb(body)
    everything = xorb.decode_range(body, info.chunks, 0, len(info.chunks))
    for payload in real_upload.payloads:
        if len(payload) > 200_000 and payload[:1000] != bytes(1000):
            assert payload[:100_000] in everything or payload[-100_000:] in everything


def test_wrong_hash_rejected(real_upload) -> None:
    body = next(iter(real_upload.captured.xorbs.values()))
    with pytest.raises(XorbFormatError, match="mismatch"):
        xorb.parse_xorb(body, expected_hash=bytes(32))


def test_flipped_byte_rejected(real_upload) -> None:
    hex_hash, body = next(iter(real_upload.captured.xorbs.items()))
    bad = bytearray(body)
    bad[len(bad) // 2] ^= 0x40
    with pytest.raises(XorbFormatError):
        xorb.parse_xorb(bytes(bad), expected_hash=hashes.hex_to_hash(hex_hash))


@pytest.mark.parametrize("cut", [1, 7, 8, 20])
def test_truncated_rejected(cut: int) -> None:
    _, body = xorb.serialize_xorb([b"a" * 1000, random.randbytes(5000)])
    with pytest.raises(XorbFormatError):
        xorb.parse_xorb(body[:-cut])


def test_header_validation() -> None:
    with pytest.raises(XorbFormatError, match="version"):
        xorb.parse_header(b"\x01" + bytes(7))
    with pytest.raises(XorbFormatError, match="scheme"):
        xorb.parse_header(xorb.make_header(7, 10, 10))
    with pytest.raises(XorbFormatError, match="too large"):
        xorb.parse_header(xorb.make_header(0, 200_000, 200_000))
    with pytest.raises(XorbFormatError, match="mismatched"):
        xorb.parse_header(xorb.make_header(0, 10, 11))
    with pytest.raises(XorbFormatError, match="no chunks"):
        xorb.parse_xorb(b"")


def test_lz4_bomb_rejected() -> None:
    import lz4.frame

    payload = lz4.frame.compress(bytes(100_000))
    body = xorb.make_header(xorb.SCHEME_LZ4, len(payload), 1000) + payload
    with pytest.raises(XorbFormatError, match="decompress"):
        xorb.parse_xorb(body)


def test_chunk_count_limit() -> None:
    body = xorb.encode_chunk(b"x", xorb.SCHEME_NONE) * (xorb.MAX_XORB_CHUNKS + 1)
    with pytest.raises(XorbFormatError, match="chunks"):
        xorb.parse_xorb(body)


def test_size_limit() -> None:
    _, body = xorb.serialize_xorb([b"a" * 1000] * 3, xorb.SCHEME_NONE)
    with pytest.raises(XorbFormatError, match="larger"):
        xorb.parse_xorb(body, max_len=2000)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 1001, 131072])
def test_bg4_roundtrip(n: int) -> None:
    data = random.Random(n).randbytes(n)
    assert xorb.bg4_join(xorb.bg4_split(data)) == data
    record = xorb.encode_chunk(bytes(n), xorb.SCHEME_BG4_LZ4)
    info = xorb.parse_xorb(record)
    assert xorb.decode_range(record, info.chunks, 0, 1) == bytes(n)


def _footer_v1(info: xorb.XorbInfo) -> bytes:
    n = len(info.chunks)
    out = b"XETBLOB" + b"\x01" + info.hash
    out += b"XBLBHSH" + b"\x00" + struct.pack("<I", n) + b"".join(c.hash for c in info.chunks)
    out += b"XBLBBND" + b"\x01" + struct.pack("<I", n)
    out += struct.pack(f"<{n}I", *[c.byte_end for c in info.chunks])
    unpacked, total = [], 0
    for c in info.chunks:
        total += c.uncompressed_len
        unpacked.append(total)
    out += struct.pack(f"<{n}I", *unpacked)
    out += struct.pack("<III", n, 52 + 40 * n, 40 + 8 * n) + b"\x01\x02\x03\x04" + bytes(12)
    return out + struct.pack("<I", len(out))


def test_footer_accepted_and_checked() -> None:
    digest, body = xorb.serialize_xorb([random.randbytes(3000), bytes(9000)])
    info = xorb.parse_xorb(body)
    footer = _footer_v1(info)
    full = xorb.parse_xorb(body + footer, expected_hash=digest)
    assert full.has_footer and full.stream_len == len(body) and full.total_len == len(body) + len(footer)
    bad = bytearray(footer)
    bad[9] ^= 1  # the xorb hash inside the footer
    with pytest.raises(XorbFormatError, match="footer"):
        xorb.parse_xorb(body + bytes(bad))


def test_serialize_roundtrip_and_chunk_table() -> None:
    chunks = [random.randbytes(70_000), bytes(50_000), b"tail"]
    digest, body = xorb.serialize_xorb(chunks)
    info = xorb.parse_xorb(io.BytesIO(body), expected_hash=digest)
    table = xorb.unpack_chunk_table(xorb.pack_chunk_table(info.chunks))
    assert tuple(table) == info.chunks
    assert xorb.decode_range(body, table, 1, 3) == chunks[1] + chunks[2]
    with pytest.raises(XorbFormatError):
        xorb.decode_range(body, table, 2, 4)
