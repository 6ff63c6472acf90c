"""Big keys: over ``max_value_bytes`` a value arrives as bounded ValueChunk records that merge back
into the same value, and the parser's buffer stays bounded."""

from __future__ import annotations

import lzf
import pytest
from rdb_testlib import build_rdb, enc_len, enc_str, merged_values, parse_bytes, plain, random_pieces

from cachemigrate.errors import RdbFormatError
from cachemigrate.formats.rdb import (
    HashValue,
    KeyRecord,
    ListValue,
    RdbParser,
    SetValue,
    StreamValue,
    StringValue,
    ValueChunk,
    ZSetValue,
)
from support.corpus import rdb_files, require_corpus


def _parseable(f) -> bool:  # type: ignore[no-untyped-def]
    try:
        parse_bytes(f.full.read_bytes())
        return True
    except RdbFormatError:
        return False


def _decodable(data: bytes) -> bool:
    recs, p = parse_bytes(data)
    assert p.header is not None
    try:
        merged_values(recs, p.header)
        return True
    except RdbFormatError:
        return False


SMALL = [f for f in rdb_files() if f.full.stat().st_size < 300_000 and _parseable(f)]
# A file holding a value that does not decode is a negative case, tested in test_rdb_corpus.py.
FILES = [f for f in SMALL if _decodable(f.full.read_bytes())]


def test_the_negative_cases_left_out_are_few() -> None:
    require_corpus(SMALL)
    assert len(FILES) >= len(SMALL) - 2, [f.path for f in SMALL if f not in FILES]


@pytest.mark.parametrize("f", FILES, ids=[f.path for f in FILES])
def test_chunks_merge_to_the_same_values(f) -> None:  # type: ignore[no-untyped-def]
    data = f.full.read_bytes()
    whole, p = parse_bytes(data)
    assert p.header is not None
    expected = [(db, k, t, plain(v)) for db, k, t, v in merged_values(whole, p.header)]
    for pieces in (None, random_pieces(1, len(data), 512)):
        recs, p2 = parse_bytes(data, pieces, max_value_bytes=24, chunk_elements=3)
        assert p2.header is not None
        got = [(db, k, t, plain(v)) for db, k, t, v in merged_values(recs, p2.header)]
        assert got == expected
        for r in recs:
            if isinstance(r, ValueChunk) and not isinstance(r.value, StringValue):
                assert _items(r.value) <= 3 or isinstance(r.value, StreamValue)
        assert [type(r) for r in recs if not isinstance(r, ValueChunk)] == [
            type(r) for r in whole
        ]


def _items(v: object) -> int:
    if isinstance(v, SetValue):
        return len(v.members)
    if isinstance(v, (ListValue, ZSetValue, HashValue)):
        return len(v.items)
    return 0


def _feed_tracking(data: bytes, piece: int, **opts: object) -> tuple[list[object], int]:
    p = RdbParser(**opts)  # type: ignore[arg-type]
    out: list[object] = []
    peak = 0
    for i in range(0, len(data), piece):
        p.feed(data[i : i + piece])
        peak = max(peak, len(p._buf))
        out.extend(p.records())
    p.close()
    return out, peak


def test_hashtable_hash_stays_bounded() -> None:
    n = 40_000
    body = b"\x04" + enc_str(b"bighash") + enc_len(n)
    body += b"".join(enc_str(b"field:%08d" % i) + enc_str(b"v" * 90) for i in range(n))
    body += b"\x00" + enc_str(b"after") + enc_str(b"x")
    data = build_rdb(body)
    limit = 256 * 1024
    recs, peak = _feed_tracking(data, 65536, max_value_bytes=limit, chunk_elements=500)
    assert len(data) > 4_000_000 and peak < limit + 3 * 65536
    head = next(r for r in recs if isinstance(r, KeyRecord) and r.key == b"bighash")
    assert head.big and head.value == b""
    chunks = [r for r in recs if isinstance(r, ValueChunk)]
    assert all(isinstance(c.value, HashValue) and len(c.value.items) <= 500 for c in chunks)
    assert [c.last for c in chunks].count(True) == 1 and chunks[-1].last
    fields = [f for c in chunks for f, _ in c.value.items]  # type: ignore[union-attr]
    assert fields == [b"field:%08d" % i for i in range(n)]
    assert isinstance(recs[-2], KeyRecord) and recs[-2].key == b"after"


def test_many_quicklist_nodes_stay_bounded() -> None:
    node = b"".join(enc_str(b"e%05d" % i) for i in range(0))  # listpacks built below
    del node
    items = [b"item-%06d" % i for i in range(200)]
    lp = b"".join(bytes([0x80 | len(x)]) + x + bytes([1 + len(x)]) for x in items)
    lp = (6 + len(lp) + 1).to_bytes(4, "little") + len(items).to_bytes(2, "little") + lp + b"\xff"
    nodes = 2000
    body = b"\x12" + enc_str(b"biglist") + enc_len(nodes) + (b"\x02" + enc_str(lp)) * nodes
    data = build_rdb(body, version=10)
    limit = 128 * 1024
    recs, peak = _feed_tracking(data, 65536, max_value_bytes=limit, chunk_elements=1000)
    assert peak < limit + 3 * 65536
    chunks = [r.value for r in recs if isinstance(r, ValueChunk)]
    assert sum(len(c.items) for c in chunks) == nodes * len(items)  # type: ignore[union-attr]
    assert chunks[0].items[:3] == items[:3]  # type: ignore[union-attr]


def test_big_raw_string_arrives_in_pieces() -> None:
    value = bytes(range(256)) * 12_000
    data = build_rdb(b"\x00" + enc_str(b"s") + enc_str(value))
    recs, peak = _feed_tracking(data, 65536, max_value_bytes=100_000)
    pieces = [r for r in recs if isinstance(r, ValueChunk)]
    assert len(pieces) >= 3 and b"".join(p.value.data for p in pieces) == value  # type: ignore[union-attr]
    assert peak < (1 << 20) + 3 * 65536


def test_big_lzf_string_is_decompressed_whole() -> None:
    value = b"abc" * 200_000
    comp = lzf.compress(value)
    enc = b"\xc3" + enc_len(len(comp)) + enc_len(len(value)) + comp
    data = build_rdb(b"\x00" + enc_str(b"z") + enc)
    recs, _ = parse_bytes(data, [4096] * (len(data) // 4096 + 1), max_value_bytes=1000)
    head = next(r for r in recs if isinstance(r, KeyRecord))
    assert head.big
    assert b"".join(r.value.data for r in recs if isinstance(r, ValueChunk)) == value  # type: ignore[union-attr]


def test_value_under_the_bound_fed_in_small_pieces_stays_whole() -> None:
    """A 3 MB collection under max_value_bytes, fed in 64 KiB pieces: one KeyRecord, walked once."""
    n = 30_000
    members = b"".join(enc_str(b"member-%08d" % i + b"m" * 80) for i in range(n))
    body = b"\x02" + enc_str(b"set") + enc_len(n) + members
    body += b"\x00" + enc_str(b"after") + enc_str(b"x")
    data = build_rdb(body)
    whole, _ = parse_bytes(data)
    recs, peak = _feed_tracking(data, 65536)
    assert recs == whole and peak < len(data) + 65536
    big = next(r for r in recs if isinstance(r, KeyRecord) and r.key == b"set")
    assert not big.big and len(big.value) > 2_000_000
