"""decode_value over every encoding, built byte by byte; malformed input only ever raises
RdbFormatError naming the key and offset."""

from __future__ import annotations

import math
import random
import struct

import lzf
import pytest
from rdb_testlib import build_rdb, enc_len, enc_str, merged_values, parse_bytes

from cachemigrate.errors import RdbFormatError, UnsupportedRdbError
from cachemigrate.formats.rdb import (
    HashValue,
    ListValue,
    ModuleValue,
    RdbHeader,
    SetValue,
    StreamValue,
    StringValue,
    ZSetValue,
    decode_value,
)
from support.corpus import rdb_files

R9 = RdbHeader("REDIS", 9)
R12 = RdbHeader("REDIS", 12)
V80 = RdbHeader("VALKEY", 80)


# ---- encoders for the blob formats (test side) --------------------------------------------------


def lp_entry(x: bytes | int) -> bytes:
    if isinstance(x, int):
        if 0 <= x < 128:
            e = bytes([x])
        elif -4096 <= x < 4096:
            v = x & 0x1FFF
            e = bytes([0xC0 | (v >> 8), v & 0xFF])
        elif -(1 << 15) <= x < 1 << 15:
            e = b"\xf1" + struct.pack("<h", x)
        elif -(1 << 23) <= x < 1 << 23:
            e = b"\xf2" + (x & 0xFFFFFF).to_bytes(3, "little")
        elif -(1 << 31) <= x < 1 << 31:
            e = b"\xf3" + struct.pack("<i", x)
        else:
            e = b"\xf4" + struct.pack("<q", x)
    elif len(x) < 64:
        e = bytes([0x80 | len(x)]) + x
    elif len(x) < 4096:
        e = bytes([0xE0 | (len(x) >> 8), len(x) & 0xFF]) + x
    else:
        e = b"\xf0" + struct.pack("<I", len(x)) + x
    n = len(e)
    back = bytearray()
    while True:
        back.insert(0, n & 127 | (128 if back else 0))
        n >>= 7
        if not n:
            break
    return e + bytes(back)


def listpack(items: list[bytes | int]) -> bytes:
    body = b"".join(lp_entry(x) for x in items)
    return struct.pack("<IH", 6 + len(body) + 1, len(items)) + body + b"\xff"


def zl_entry(x: bytes | int, prevlen: int) -> bytes:
    pre = bytes([prevlen]) if prevlen < 254 else b"\xfe" + struct.pack("<I", prevlen)
    if isinstance(x, int):
        if 0 <= x <= 12:
            e = bytes([0xF1 + x])
        elif -128 <= x < 128:
            e = b"\xfe" + struct.pack("<b", x)
        elif -(1 << 15) <= x < 1 << 15:
            e = b"\xc0" + struct.pack("<h", x)
        elif -(1 << 23) <= x < 1 << 23:
            e = b"\xf0" + (x & 0xFFFFFF).to_bytes(3, "little")
        elif -(1 << 31) <= x < 1 << 31:
            e = b"\xd0" + struct.pack("<i", x)
        else:
            e = b"\xe0" + struct.pack("<q", x)
    elif len(x) < 64:
        e = bytes([len(x)]) + x
    elif len(x) < 16384:
        e = bytes([0x40 | (len(x) >> 8), len(x) & 0xFF]) + x
    else:
        e = b"\x80" + struct.pack(">I", len(x)) + x
    return pre + e


def ziplist(items: list[bytes | int]) -> bytes:
    body, prev = b"", 0
    for x in items:
        e = zl_entry(x, prev)
        body += e
        prev = len(e)
    return struct.pack("<IIH", 10 + len(body) + 1, 10, len(items)) + body + b"\xff"


INTS: list[bytes | int] = [0, 7, 12, 13, 127, 128, -1, -100, 4095, -4096, 5000, -40000, 1 << 20,
                           -(1 << 22), 1 << 30, -(1 << 31), 1 << 40, -(1 << 62)]
STRS: list[bytes | int] = [b"", b"a", b"x" * 63, b"y" * 64, b"z" * 4095, b"w" * 4096, b"v" * 20000]


def _dec(items: list[bytes | int]) -> list[bytes]:
    return [b"%d" % x if isinstance(x, int) else x for x in items]


def test_strings_every_encoding() -> None:
    assert decode_value(0, enc_str(b"hello"), header=R9) == StringValue(b"hello")
    assert decode_value(0, b"\xc0\xfe", header=R9) == StringValue(b"-2")
    assert decode_value(0, b"\xc1" + struct.pack("<h", -30000), header=R9) == StringValue(b"-30000")
    assert decode_value(0, b"\xc2" + struct.pack("<i", 2**31 - 1), header=R9) == StringValue(b"2147483647")
    raw = b"abcabcabc" * 50
    comp = lzf.compress(raw)
    assert decode_value(0, b"\xc3" + enc_len(len(comp)) + enc_len(len(raw)) + comp, header=R9).data == raw  # type: ignore[union-attr]
    assert decode_value(0, b"\x81" + (3).to_bytes(8, "big") + b"abc", header=R9) == StringValue(b"abc")


@pytest.mark.parametrize("items", [INTS, STRS, INTS + STRS])
def test_listpack_and_ziplist_lists(items: list[bytes | int]) -> None:
    assert decode_value(10, enc_str(ziplist(items)), header=R9) == ListValue(_dec(items))
    node2 = b"\x02" + enc_str(listpack(items))
    plain = b"\x01" + enc_str(b"plain-element")
    want = ListValue([*_dec(items), b"plain-element"])
    assert decode_value(18, enc_len(2) + node2 + plain, header=R12) == want
    comp = lzf.compress(ziplist(items))
    if comp is not None:
        zl = ziplist(items)
        node = b"\xc3" + enc_len(len(comp)) + enc_len(len(zl)) + comp
        assert decode_value(14, enc_len(1) + node, header=R9) == ListValue(_dec(items))


def test_sets() -> None:
    assert decode_value(2, enc_len(2) + enc_str(b"a") + b"\xc0\x05", header=R9) == SetValue([b"a", b"5"])
    for width, code in ((2, "h"), (4, "i"), (8, "q")):
        vals = [-3, 0, 9]
        blob = struct.pack("<II", width, 3) + struct.pack(f"<3{code}", *vals)
        assert decode_value(11, enc_str(blob), header=R9) == SetValue([b"-3", b"0", b"9"])
    assert decode_value(20, enc_str(listpack([b"m", 77])), header=R12) == SetValue([b"m", b"77"])


def test_zsets_every_score_form() -> None:
    raw = enc_len(4) + enc_str(b"a") + b"\x031.5" + enc_str(b"b") + b"\xfd" + enc_str(b"c") + b"\xfe"
    raw += enc_str(b"d") + b"\xff"
    z = decode_value(3, raw, header=R9)
    assert isinstance(z, ZSetValue) and z.items[0] == (b"a", 1.5) and math.isnan(z.items[1][1])
    assert z.items[2:] == [(b"c", math.inf), (b"d", -math.inf)]
    raw5 = enc_len(1) + enc_str(b"m") + struct.pack("<d", 0.1)
    assert decode_value(5, raw5, header=R9) == ZSetValue([(b"m", 0.1)])
    items: list[bytes | int] = [b"x", 3, b"y", b"2.5", b"z", -7]
    want = ZSetValue([(b"x", 3.0), (b"y", 2.5), (b"z", -7.0)])
    assert decode_value(12, enc_str(ziplist(items)), header=R9) == want
    assert decode_value(17, enc_str(listpack(items)), header=R12) == want


def test_hashes_every_encoding() -> None:
    pairs = [(b"f1", b"v1"), (b"f2", b"22")]
    assert decode_value(4, enc_len(2) + b"".join(enc_str(a) + enc_str(b) for a, b in pairs),
                        header=R9) == HashValue(pairs)
    flat: list[bytes | int] = [b"f1", b"v1", b"f2", 22]
    assert decode_value(13, enc_str(ziplist(flat)), header=R9) == HashValue(pairs)
    assert decode_value(16, enc_str(listpack(flat)), header=R12) == HashValue(pairs)
    zm = b"\x02" + b"\x02f1\x02\x00v1" + b"\x02f2\x02\x03" + b"22" + b"pad" + b"\xfe" + struct.pack("<I", 3)
    zm += b"big\x01\x00Z\xff"
    assert decode_value(9, enc_str(zm), header=R9) == HashValue([*pairs, (b"big", b"Z")])


def test_hash_field_ttls_redis_and_valkey() -> None:
    # 24: ttl relative to minExpire (expireAt = ttl + minExpire - 1); 0 = none
    raw = struct.pack("<q", 1000) + enc_len(2) + enc_len(6) + enc_str(b"a") + enc_str(b"1")
    raw += enc_len(0) + enc_str(b"b") + enc_str(b"2")
    assert decode_value(24, raw, header=R12) == HashValue([(b"a", b"1"), (b"b", b"2")], {b"a": 1005})
    # 22 (Redis 7.4 RC): absolute ttl
    raw22 = enc_len(1) + enc_len(5000) + enc_str(b"a") + enc_str(b"1")
    assert decode_value(22, raw22, header=R12) == HashValue([(b"a", b"1")], {b"a": 5000})
    # 25 / 23: listpack triplets with absolute TTLs
    lp = enc_str(listpack([b"a", b"1", 1 << 40, b"b", b"2", 0]))
    want = HashValue([(b"a", b"1"), (b"b", b"2")], {b"a": 1 << 40})
    assert decode_value(25, struct.pack("<q", 7) + lp, header=R12) == want
    assert decode_value(23, lp, header=R12) == want
    # Valkey 22 = HASH_2: field, value, int64 ms; -1 none, 0 a real (past) time
    rawv = enc_len(2) + enc_str(b"a") + enc_str(b"1") + struct.pack("<q", -1)
    rawv += enc_str(b"b") + enc_str(b"2") + struct.pack("<q", 0)
    assert decode_value(22, rawv, header=V80) == HashValue([(b"a", b"1"), (b"b", b"2")], {b"b": 0})
    with pytest.raises(UnsupportedRdbError):
        decode_value(23, lp, header=V80)


def _stream_raw(t: int) -> bytes:
    master = [2, 1, 2, b"f1", b"f2", 0]
    e1 = [2, 0, 0, b"a", b"b", 6]  # SAMEFIELDS
    e2 = [1 | 2, 1, 0, b"x", b"y", 6]  # deleted
    e3 = [0, 2, 5, 1, b"g", b"h", 7]
    lp = listpack(master + e1 + e2 + e3)  # type: ignore[arg-type]
    raw = enc_len(1) + enc_str(struct.pack(">QQ", 100, 0)) + enc_str(lp)
    raw += enc_len(2) + enc_len(102) + enc_len(5)
    if t >= 19:
        raw += enc_len(100) + enc_len(0) + enc_len(101) + enc_len(0) + enc_len(3)
    raw += enc_len(1) + enc_str(b"grp") + enc_len(100) + enc_len(0)
    if t >= 19:
        raw += enc_len(1)
    raw += enc_len(1) + struct.pack(">QQ", 100, 0) + struct.pack("<q", 555) + enc_len(2)
    raw += enc_len(1) + enc_str(b"alice") + struct.pack("<q", 777)
    if t >= 21:
        raw += struct.pack("<q", 888)
    raw += enc_len(1) + struct.pack(">QQ", 100, 0)
    return raw


@pytest.mark.parametrize("t", [15, 19, 21])
def test_streams(t: int) -> None:
    v = decode_value(t, _stream_raw(t), header=R12)
    assert isinstance(v, StreamValue)
    assert v.entries == [((100, 0), [b"f1", b"a", b"f2", b"b"]), ((102, 5), [b"g", b"h"])]
    assert v.length == 2 and v.last_id == (102, 5)
    g = v.groups[0]
    assert g.name == b"grp" and g.pending[0].delivery_time == 555 and g.pending[0].delivery_count == 2
    assert g.consumers[0].seen_time == 777 and g.consumers[0].pending == [(100, 0)]
    assert g.consumers[0].active_time == (888 if t >= 21 else None)
    assert g.entries_read == (1 if t >= 19 else None)
    assert (v.first_id, v.entries_added) == (((100, 0), 3) if t >= 19 else (None, None))


def test_module_value_keeps_raw() -> None:
    mid = (1234 << 10) | 3
    raw = enc_len(mid) + enc_len(2) + enc_len(42) + enc_len(5) + enc_str(b"s") + enc_len(0)
    v = decode_value(7, raw, header=R9)
    assert isinstance(v, ModuleValue) and v.raw == raw and v.module_id == mid and len(v.module_name) == 9
    with pytest.raises(UnsupportedRdbError):
        decode_value(6, raw, header=R9)


@pytest.mark.parametrize("t,raw", [
    (10, enc_str(ziplist([b"a", 5]))[:-2]),
    (13, enc_str(b"\x05\x00\x00\x00\x00")),
    (16, enc_str(listpack([b"a", b"b", b"c"]))),  # odd pair count
    (11, enc_str(struct.pack("<II", 3, 1) + b"\x00\x00\x00")),
    (0, b"\xc3\x05\x40\xff\x00\x00\x00\x00\x00"),
    (2, enc_len(3) + enc_str(b"a")),
    (0, enc_str(b"abc") + b"junk"),
])
def test_malformed_values_name_key_and_offset(t: int, raw: bytes) -> None:
    with pytest.raises(RdbFormatError) as info:
        decode_value(t, raw, header=R12, key=b"k1", offset=4242)
    assert "offset 4242" in str(info.value) and "k1" in str(info.value)


SMALL = [f for f in rdb_files() if f.full.stat().st_size < 20_000]


@pytest.mark.parametrize("f", SMALL[:40], ids=[f.path for f in SMALL[:40]])
def test_mutated_files_only_raise_rdb_errors(f) -> None:  # type: ignore[no-untyped-def]
    data = f.full.read_bytes()
    rng = random.Random(f.path)
    for _ in range(60):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(9, len(buf)) if len(buf) > 9 else 0
            buf[i] = rng.randrange(256)
        if rng.random() < 0.3:
            del buf[rng.randrange(len(buf)) :]
        try:
            recs, p = parse_bytes(bytes(buf), verify_checksum=False)
            assert p.header is not None
            merged_values(recs, p.header)
        except RdbFormatError as exc:
            assert exc.offset is not None or "offset" in str(exc) or exc.key is not None


def test_builder_round_trip_sanity() -> None:
    recs, _ = parse_bytes(build_rdb(b"\x00" + enc_str(b"k") + enc_str(b"v")))
    assert len(recs) == 3
