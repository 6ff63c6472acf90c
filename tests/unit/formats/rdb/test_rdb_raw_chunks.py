"""Big keys as their bytes (``raw_hook``): a value over ``max_value_bytes`` arrives as RawChunk
records that put together are exactly its span in the file, however the input is cut (inside the
key head, a length, an element group, a stream's metadata, at a group's edge, at the value's end),
with the C group walk and without it; the records around it are unchanged."""

from __future__ import annotations

import struct

import pytest
from rdb_testlib import build_rdb, enc_len, enc_str, random_pieces

from cachemigrate.errors import RdbFormatError
from cachemigrate.formats.rdb import KeyRecord, RdbParser, Record, ValueChunk
from cachemigrate.formats.rdb import _skip as skip_mod
from cachemigrate.formats.rdb import walk as c_walk_mod
from cachemigrate.formats.rdb._raw import PIECE_BYTES
from cachemigrate.formats.rdb.model import RawChunk
from support.corpus import rdb_files, require_corpus
from support.require import C_WALKER, require


def _parse(data: bytes, cuts: list[int] | None, **opts: object) -> list[Record]:
    p = RdbParser(**opts)  # type: ignore[arg-type]
    p.raw_hook = lambda rec: True
    out: list[Record] = []
    pos = 0
    for n in cuts or [len(data)]:
        p.feed(data[pos : pos + n])
        pos += n
        out.extend(p.records())
    if pos < len(data):
        p.feed(data[pos:])
        out.extend(p.records())
    p.close()
    return out


def _spans(recs: list[Record]) -> list[tuple[int, bytes, int, bytes, int, int]]:
    """(db, key, type, value bytes, expire, end offset) per key, raw chunks put together."""
    out = []
    pending: KeyRecord | None = None
    acc: list[bytes] = []
    for r in recs:
        if isinstance(r, KeyRecord):
            assert pending is None, "a key record inside a big key's chunks"
            if r.big:
                assert r.raw and r.value == b""
                pending, acc = r, []
            else:
                out.append((r.db, r.key, r.type_byte, r.value, r.expire_ms, r.end_offset))
        elif isinstance(r, RawChunk):
            assert pending is not None and r.key == pending.key
            assert len(r.data) <= PIECE_BYTES
            acc.append(r.data)
            if r.last:
                out.append((pending.db, pending.key, pending.type_byte, b"".join(acc), pending.expire_ms,
                            r.end_offset))
                pending = None
    assert pending is None, "a big key's raw chunks did not end with last=True"
    return out


def _whole(data: bytes) -> list[tuple[int, bytes, int, bytes, int, int]]:
    p = RdbParser(max_value_bytes=1 << 40)
    p.feed(data)
    recs = list(p.records())
    p.close()
    return _spans(recs)


def _big_values_rdb() -> bytes:
    """Every walked shape, each value over the bound used (16 bytes), in two dbs; small, so that
    cutting it at every byte stays quick."""
    body = b""
    items = [b"item-%d" % i for i in range(12)]
    body += b"\x01" + enc_str(b"list") + enc_len(len(items)) + b"".join(map(enc_str, items))  # LIST
    body += b"\x02" + enc_str(b"set") + enc_len(len(items)) + b"".join(map(enc_str, items))  # SET
    body += b"\x04" + enc_str(b"hash") + enc_len(4) + b"".join(
        enc_str(b"f%d" % i) + enc_str(b"v" * (i * 30)) for i in range(4))  # HASH (a 2-byte length too)
    body += b"\x03" + enc_str(b"zset1") + enc_len(6) + b"".join(
        enc_str(b"m%d" % i) + (b"\xfe" if i == 3 else enc_str(b"%d.5" % i)) for i in range(6))  # ZSET, +inf
    body += b"\x05" + enc_str(b"zset2") + enc_len(5) + b"".join(
        enc_str(b"m%d" % i) + struct.pack("<d", i / 3) for i in range(5))  # ZSET_2
    body += b"\xfc" + (1 << 42).to_bytes(8, "little")  # an expire on the next key
    body += b"\x00" + enc_str(b"string") + enc_str(bytes(range(70)))  # STRING, 2-byte length
    body += b"\x00" + enc_str(b"small") + enc_str(b"tiny")  # whole, between big ones
    body += b"\xfe\x03"  # SELECT 3
    body += b"\x0e" + enc_str(b"qlist") + enc_len(3) + b"".join(enc_str(b"z" * 9) for _ in range(3))
    body += b"\x00" + enc_str(b"huge") + b"\x80" + (40).to_bytes(4, "big") + b"s" * 40  # 32-bit length
    return build_rdb(body, version=9)


def _cut_points(data: bytes) -> list[int]:
    return list(range(9, len(data)))


@pytest.mark.parametrize("c_walk", [True, False], ids=["c-groups", "python-groups"])
def test_every_cut_gives_the_value_bytes(c_walk: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two reads, the first ending at every byte of the file: each kind of cut is in there."""
    if c_walk:
        require(c_walk_mod.skip_groups is not None, C_WALKER)
    else:
        monkeypatch.setattr(skip_mod, "_c_skip_groups", None)
    data = _big_values_rdb()
    expected = _whole(data)
    assert len(expected) == 9
    for k in _cut_points(data):
        got = _spans(_parse(data, [k], max_value_bytes=16))
        assert got == expected, f"cut at {k}"


def test_small_reads_and_single_bytes() -> None:
    data = _big_values_rdb()
    expected = _whole(data)
    for cuts in ([1] * len(data), [3] * len(data), random_pieces(7, len(data), 100)):
        assert _spans(_parse(data, cuts, max_value_bytes=16)) == expected


def test_a_raw_value_is_released_as_it_goes() -> None:
    """A 6 MB list fed in 64 KiB reads: chunks come out before the value ends, bounded in size,
    and the parser never holds much more than a read."""
    items = [b"%07d" % i * 8 for i in range(100_000)]
    body = b"\x01" + enc_str(b"biglist") + enc_len(len(items)) + b"".join(map(enc_str, items))
    data = build_rdb(body, version=9)
    p = RdbParser(max_value_bytes=1 << 16)
    p.raw_hook = lambda rec: True
    got: list[bytes] = []
    peak = 0
    for i in range(0, len(data), 1 << 16):
        p.feed(data[i : i + (1 << 16)])
        for r in p.records():
            if isinstance(r, RawChunk):
                got.append(r.data)
        peak = max(peak, len(p._buf) - p._pos)
    p.close()
    assert len(got) >= 5 and b"".join(got) == _whole(data)[0][3]
    assert peak < 3 << 16


def test_the_hook_says_no_then_value_chunks_come() -> None:
    data = _big_values_rdb()
    p = RdbParser(max_value_bytes=16)
    asked: list[bytes] = []

    def hook(rec: KeyRecord) -> bool:
        asked.append(rec.key)
        return rec.key != b"hash"

    p.raw_hook = hook
    p.feed(data)
    recs = list(p.records())
    p.close()
    kinds = {(type(r).__name__, getattr(r, "key", None)) for r in recs}
    assert ("ValueChunk", b"hash") in kinds and ("RawChunk", b"hash") not in kinds
    assert ("RawChunk", b"list") in kinds
    assert b"small" not in asked and b"hash" in asked


def test_damage_inside_a_raw_value_names_its_key() -> None:
    body = b"\x02" + enc_str(b"set") + enc_len(100) + b"".join(enc_str(b"m%d" % i) for i in range(60))
    body += b"\xff"  # the set ends 40 members early: the EOF byte is read as a string header
    data = build_rdb(body, version=9)[:-9]  # no real EOF: the stream ends inside the value
    with pytest.raises(RdbFormatError):
        _parse(data, [50], max_value_bytes=64)


def _parseable(data: bytes) -> bool:
    try:
        _whole(data)
        return True
    except RdbFormatError:
        return False


# A file that does not parse is a negative case, tested in test_rdb_corpus.py.
SMALL = [f for f in rdb_files() if f.full.stat().st_size < 200_000 and _parseable(f.full.read_bytes())]


@pytest.mark.parametrize("f", SMALL, ids=[f.path for f in SMALL])
def test_corpus_raw_spans(f) -> None:  # type: ignore[no-untyped-def]
    """Every corpus file: all its values big, cut at random, give their exact spans."""
    require_corpus(SMALL)
    data = f.full.read_bytes()
    expected = _whole(data)
    modules = {k for _, k, t, *_ in expected if t in (6, 7)}  # never raw: ValueChunk records
    for cuts in (None, random_pieces(3, len(data), 700)):
        got = [s for s in _spans_any(_parse(data, cuts, max_value_bytes=1)) if s[1] not in modules]
        assert got == [s for s in expected if s[1] not in modules]


def _spans_any(recs: list[Record]) -> list[tuple[int, bytes, int, bytes, int, int]]:
    """As _spans, with the keys that came as ValueChunk records (module values) left out."""
    keep: list[Record] = []
    skip: bytes | None = None
    for r in recs:
        if isinstance(r, KeyRecord) and r.big and not r.raw:
            skip = r.key
            continue
        if skip is not None and isinstance(r, ValueChunk):
            if r.last:
                skip = None
            continue
        keep.append(r)
    return _spans(keep)
