"""Any split of the input gives the same records; truncation, trailing bytes and the CRC."""

from __future__ import annotations

import random

import pytest
from rdb_testlib import build_rdb, enc_len, enc_str, parse_bytes, random_pieces

from cachemigrate.errors import RdbFormatError
from cachemigrate.formats.rdb import Aux, End, KeyRecord, RdbParser, SelectDb, iter_file
from support.corpus import rdb_files, require_corpus

FILES = [f for f in rdb_files() if f.full.stat().st_size > 0]


def _whole(data: bytes) -> list[object] | None:
    try:
        return list(parse_bytes(data)[0])
    except RdbFormatError:
        return None


PARSEABLE = [f for f in FILES if _whole(f.full.read_bytes()) is not None]
SMALL = [f for f in PARSEABLE if f.full.stat().st_size <= 40_000]


@pytest.mark.parametrize("f", SMALL, ids=[f.path for f in SMALL])
def test_one_byte_feeds_match_whole(f) -> None:  # type: ignore[no-untyped-def]
    data = f.full.read_bytes()
    whole, _ = parse_bytes(data)
    split, _ = parse_bytes(data, [1] * len(data))
    assert split == whole


@pytest.mark.parametrize("f", PARSEABLE, ids=[f.path for f in PARSEABLE])
def test_random_feeds_match_whole(f) -> None:  # type: ignore[no-untyped-def]
    data = f.full.read_bytes()
    whole, _ = parse_bytes(data)
    for seed in range(1 if len(data) > 1_000_000 else 3):
        split, p = parse_bytes(data, random_pieces(seed, len(data), max_piece=max(16, len(data) // 7)))
        assert split == whole, f"seed {seed}"
        assert p.offset == len(data) - len(p.remainder())


def test_big_file_in_64k_pieces_matches_whole() -> None:
    big = [f for f in PARSEABLE if f.full.stat().st_size > 1_000_000]
    require_corpus(big, "an RDB file over 1 MB")
    data = big[0].full.read_bytes()
    whole, _ = parse_bytes(data)
    split, _ = parse_bytes(data, [65536] * (len(data) // 65536 + 1))
    assert split == whole


def test_records_offsets_and_db() -> None:
    body = b"\xfa" + enc_str(b"redis-ver") + enc_str(b"7.0.0") + b"\x00" + enc_str(b"k") + enc_str(b"v")
    body += b"\xfe\x03\xfc" + (1234).to_bytes(8, "little") + b"\x00" + enc_str(b"k2") + enc_str(b"v2")
    data = build_rdb(body)
    recs, p = parse_bytes(data)
    assert isinstance(recs[0], SelectDb) and isinstance(recs[1], Aux)
    k1, sel, k2, end = recs[2:]
    assert isinstance(k1, KeyRecord) and k1.db == 0 and k1.value == b"\x01v" and k1.expire_ms == -1
    assert data[k1.offset] == 0 and k1.end_offset == k1.offset + 1 + 2 + 2
    assert isinstance(sel, SelectDb) and sel.db == 3
    assert isinstance(k2, KeyRecord) and k2.db == 3 and k2.expire_ms == 1234 and data[k2.offset] == 0xFC
    assert isinstance(end, End) and end.checksum and p.done and p.offset == len(data)


@pytest.mark.parametrize("cut", [0, 3, 9, 12, 20, -9, -3, -1])
def test_truncated_stream_is_reported_with_offset(cut: int) -> None:
    data = build_rdb(b"\x00" + enc_str(b"key") + enc_str(b"value" * 20))[:cut]
    p = RdbParser()
    if cut in (0, 3):
        p.feed(data)
        list(p.records())
    else:
        p.feed(data)
        list(p.records())
    with pytest.raises(RdbFormatError) as info:
        p.close()
    assert info.value.offset is not None and "offset" in str(info.value)


def test_checksum_mismatch_and_optional_verification() -> None:
    data = bytearray(build_rdb(b"\x00" + enc_str(b"key") + enc_str(b"value")))
    data[-10] ^= 0xFF  # the EOF opcode stays; a value byte changes
    data[-12] ^= 0x01
    with pytest.raises(RdbFormatError, match="checksum mismatch") as info:
        parse_bytes(bytes(data))
    assert info.value.offset is not None
    recs, _ = parse_bytes(bytes(data), verify_checksum=False)
    assert isinstance(recs[-1], End)


def test_zero_checksum_is_not_verified() -> None:
    recs, _ = parse_bytes(build_rdb(b"\x00" + enc_str(b"k") + enc_str(b"v"), checksum=False))
    end = recs[-1]
    assert isinstance(end, End) and end.checksum == 0


def test_remainder_after_crc_for_aof_preamble() -> None:
    tail = b"*1\r\n$4\r\nPING\r\n"
    data = build_rdb(b"\x00" + enc_str(b"k") + enc_str(b"v")) + tail
    for pieces in (None, [1] * len(data), [7] * len(data)):
        recs, p = parse_bytes(data, pieces)
        assert p.done and p.remainder() == tail and isinstance(recs[-1], End)


def test_bad_magic_fails_fast() -> None:
    p = RdbParser()
    with pytest.raises(RdbFormatError, match="bad magic"):
        p.feed(b"*1\r\n")
        list(p.records())


def test_iter_file_accepts_path_and_file_object(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.rdb"
    path.write_bytes(build_rdb(b"\x00" + enc_str(b"k") + enc_str(b"v")))
    a = list(iter_file(path, chunk_size=3))
    with path.open("rb") as fh:
        b = list(iter_file(fh))
    assert a == b and isinstance(a[-1], End)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(RdbFormatError):
        list(iter_file(path))


def test_pending_expire_survives_an_interleaved_aux() -> None:
    """KeyDB writes an AUX between a key's EXPIRETIME_MS and its type byte; Redis keeps the expire."""
    body = b"\xfc" + (99).to_bytes(8, "little") + b"\xfa" + enc_str(b"mvcc") + enc_str(b"1")
    body += b"\x00" + enc_str(b"k") + enc_str(b"v") + b"\x00" + enc_str(b"k2") + enc_str(b"v")
    data = build_rdb(body)
    for pieces in (None, [1] * len(data)):
        keys = [r for r in parse_bytes(data, pieces)[0] if isinstance(r, KeyRecord)]
        assert [(k.key, k.expire_ms) for k in keys] == [(b"k", 99), (b"k2", -1)]


def _mixed_rdb(seed: int, keys: int) -> bytes:
    """Keys of very different sizes, so large feeds cut records at every kind of place."""
    rng = random.Random(seed)
    body = b""
    for i in range(keys):
        size = rng.choice((1, 10, 100, 1000, 10_000, 70_000))
        if rng.random() < 0.2:
            body += b"\xfc" + (1700000000000 + i).to_bytes(8, "little")
        if rng.random() < 0.3:
            count = rng.randint(1, 300)
            members = [b"m%d-" % j + b"x" * rng.randint(0, size // 50 + 1) for j in range(count)]
            body += b"\x02" + enc_str(b"set:%d" % i) + enc_len(len(members)) + b"".join(map(enc_str, members))
        else:
            body += b"\x00" + enc_str(b"str:%d" % i) + enc_str(bytes([65 + i % 26]) * size)
    return build_rdb(body)


@pytest.mark.parametrize("seed", range(4))
def test_large_random_feeds_match_whole(seed: int) -> None:
    data = _mixed_rdb(seed, 400)
    whole, _ = parse_bytes(data)
    rng = random.Random(seed)
    pieces: list[int] = []
    while sum(pieces) < len(data):
        pieces.append(rng.choice((1, 17, 4096, 40_000, 65_536, 200_000, rng.randint(1, 500_000))))
    split, p = parse_bytes(data, pieces)
    assert split == whole and p.offset == len(data)


def test_records_not_drained_before_the_next_feed() -> None:
    """A consumer may stop iterating and feed more; nothing is lost or repeated."""
    data = _mixed_rdb(9, 200)
    whole, _ = parse_bytes(data)
    p = RdbParser()
    got: list[object] = []
    for i in range(0, len(data), 50_000):
        p.feed(data[i : i + 50_000])
        it = p.records()
        got.extend(next(it, None) for _ in range(2))
        got = [r for r in got if r is not None]
    got.extend(p.records())
    p.close()
    assert got == whole


@pytest.mark.parametrize("f", [f for f in PARSEABLE if f.full.stat().st_size > 200_000][:2],
                         ids=lambda f: f.path)
def test_iter_file_mapped_path_equals_chunked_file_object(f) -> None:  # type: ignore[no-untyped-def]
    mapped = list(iter_file(f.full))
    with f.full.open("rb") as fh:
        chunked = list(iter_file(fh, chunk_size=65536))
    assert mapped == chunked and isinstance(mapped[-1], End)
