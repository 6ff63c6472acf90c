"""Per-key prefix opcodes and vendor tables, built byte by byte."""

from __future__ import annotations

import struct

import pytest
from rdb_testlib import build_rdb, enc_len, enc_str, parse_bytes

from cachemigrate.errors import RdbFormatError, UnsupportedRdbError
from cachemigrate.formats.rdb import Function, KeyRecord, ModuleAux, SlotInfo

KV = b"\x00" + enc_str(b"k") + enc_str(b"v")


def keys(data: bytes) -> list[KeyRecord]:
    return [r for r in parse_bytes(data)[0] if isinstance(r, KeyRecord)]


def test_expire_idle_freq_apply_to_the_next_key_only() -> None:
    body = b"\xfd" + struct.pack("<i", 1_700_000_000) + b"\xf8" + enc_len(300) + KV
    body += b"\xf9\x07" + KV + KV
    a, b, c = keys(build_rdb(body))
    assert (a.expire_ms, a.idle, a.freq) == (1_700_000_000_000, 300, None)
    assert (b.expire_ms, b.idle, b.freq) == (-1, None, 7)
    assert (c.expire_ms, c.idle, c.freq) == (-1, None, None)


def test_old_millisecond_expire_is_read_little_endian() -> None:
    (k,) = keys(build_rdb(b"\xfc" + struct.pack("<q", 1234567890123) + KV, version=6))
    assert k.expire_ms == 1234567890123


def test_redis13_key_meta_is_attached_to_the_key() -> None:
    meta = enc_len(1) + b"\x01\x02\x03\x04" + enc_len(2) + enc_len(9) + enc_len(0)
    body = b"\xf3" + meta + KV
    (k,) = keys(build_rdb(body, version=13))
    assert k.key_meta == meta and k.value == b"\x01v"
    with pytest.raises(UnsupportedRdbError):  # 243 is not KEY_META before RDB 13
        parse_bytes(build_rdb(body, version=12))


def test_valkey_slot_import_is_read_over() -> None:
    body = b"\xf3" + enc_str(b"j" * 40) + enc_len(2) + enc_len(0) + enc_len(100) + enc_len(200) + enc_len(300)
    body += b"\xf4" + enc_len(7) + enc_len(1) + enc_len(0) + KV
    recs, p = parse_bytes(build_rdb(body, version=80, magic=b"VALKEY"))
    assert p.header is not None and p.header.is_valkey and p.header.version == 80
    assert [type(r).__name__ for r in recs] == ["SelectDb", "SlotInfo", "KeyRecord", "End"]
    assert isinstance(recs[1], SlotInfo) and recs[1].slot == 7


def test_function_and_module_aux_records() -> None:
    mid = (987654 << 10) | 1
    body = b"\xf5" + enc_str(b"#!lua name=lib\nreturn 1")
    body += b"\xf7" + enc_len(mid) + enc_len(2) + enc_len(1) + enc_len(2) + enc_len(5) + enc_len(0)
    recs, _ = parse_bytes(build_rdb(body, version=10))
    f, m = recs[1], recs[2]
    assert isinstance(f, Function) and f.code.startswith(b"#!lua")
    assert isinstance(m, ModuleAux) and m.module_id == mid and m.when == 1 and m.raw == b"\x02\x05\x00"


@pytest.mark.parametrize("body,error,phrase", [
    (b"\x6b\x00", UnsupportedRdbError, "opcode 107"),
    (b"\x06" + enc_str(b"k") + b"\x00", UnsupportedRdbError, "type 6"),
    (b"\x1b" + enc_str(b"k") + b"\x00", UnsupportedRdbError, "27"),
    (b"\xf7" + enc_len(5) + enc_len(1) + enc_len(1) + enc_len(0), RdbFormatError, "when"),
])
def test_refusals_name_offset_and_type(body: bytes, error: type[Exception], phrase: str) -> None:
    with pytest.raises(error) as info:
        parse_bytes(build_rdb(body, version=10))
    assert phrase in str(info.value) and "offset 11" in str(info.value)


def test_valkey_type_table_differs() -> None:
    hash2 = b"\x16" + enc_str(b"h") + enc_len(1) + enc_str(b"f") + enc_str(b"v") + struct.pack("<q", -1)
    (k,) = keys(build_rdb(hash2, version=80, magic=b"VALKEY"))
    assert k.type_byte == 22
    with pytest.raises(RdbFormatError):  # the same bytes are not a Redis 7.4 RC hash
        parse_bytes(build_rdb(hash2, version=12))


def test_pre_ga_function_becomes_a_loadable_library() -> None:
    """Redis 7.0.15 loads opcode 246 and shows the library as '#!LUA name=<lib>\\n<code>'."""
    code = b"redis.register_function('f', function() return 1 end)"
    body = b"\xf6" + enc_str(b"lib1") + enc_str(b"LUA") + enc_len(1) + enc_str(b"a description")
    body += enc_str(code) + b"\xf6" + enc_str(b"lib2") + enc_str(b"LUA") + enc_len(0) + enc_str(code)
    recs, _ = parse_bytes(build_rdb(body, version=10))
    funcs = [r.code for r in recs if isinstance(r, Function)]
    assert funcs == [b"#!LUA name=lib1\n" + code, b"#!LUA name=lib2\n" + code]
