"""DUMP payloads: CRC-64/Jones, build/parse, and the RDB-version gate."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cachemigrate.errors import DumpPayloadError
from cachemigrate.formats.dump import (
    build_payload,
    crc64,
    min_rdb_version_for_type,
    parse_payload,
    payload_version_for_target,
    restore_packer,
)
from cachemigrate.protocol.commands import pack_command, restore_extra
from support.corpus import CORPUS, requires_corpus


def test_crc64_check_value() -> None:
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    assert crc64(b"") == 0
    assert crc64(b"6789", crc64(b"12345")) == 0xE9C6D914C4B8D9CA


def _generated_payloads() -> list[tuple[str, bytes, int, int]]:
    out = []
    for path in sorted(CORPUS.glob("generated-local/*/dump_payloads.json")):
        doc = json.loads(path.read_text())
        for name, p in doc["dump_payloads"].items():
            out.append(
                (
                    f"{path.parent.name}/{name}",
                    bytes.fromhex(p["payload_hex"]),
                    p["payload_type_byte"],
                    p["footer_rdb_version"],
                )
            )
    return out


def _resp_commands(data: bytes) -> Iterator[list[bytes]]:
    pos = 0
    while pos < len(data):
        assert data[pos : pos + 1] == b"*", pos
        end = data.index(b"\r\n", pos)
        n = int(data[pos + 1 : end])
        pos = end + 2
        argv = []
        for _ in range(n):
            end = data.index(b"\r\n", pos)
            size = int(data[pos + 1 : end])
            argv.append(data[end + 2 : end + 2 + size])
            pos = end + 2 + size + 2
        yield argv


def _rct_restores() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted((CORPUS / "redis-rdb-cli" / "rct").glob("all.rdb.dump*")):
        for argv in _resp_commands(path.read_bytes()):
            if argv[0].lower() == b"restore":
                out.append((f"{path.name}:{argv[1][:40]!r}", argv[3]))
    return out


GENERATED = _generated_payloads()
RCT = _rct_restores()


@requires_corpus(GENERATED, "generated-local/")
def test_generated_corpus_payloads_verify_and_rebuild() -> None:
    assert len(GENERATED) >= 100
    for name, payload, type_byte, version in GENERATED:
        t, raw, v = parse_payload(payload)
        assert (t, v) == (type_byte, version), name
        assert build_payload(t, raw, v) == payload, name


@requires_corpus(RCT, "redis-rdb-cli/rct/")
def test_rct_restore_payloads_verify_and_rebuild() -> None:
    assert len(RCT) >= 500
    versions = set()
    for name, payload in RCT:
        t, raw, v = parse_payload(payload)
        versions.add(v)
        assert build_payload(t, raw, v) == payload, name
    assert {7, 10} <= versions


@pytest.mark.parametrize("size", [0, 1, 100, 32 << 10, (32 << 10) + 1, 200_000])
def test_build_parse_round_trip(size: int) -> None:
    raw = bytes(range(256)) * (size // 256) + bytes(size % 256)
    payload = build_payload(16, raw, 10)
    assert payload[0] == 16 and payload[-10:-8] == b"\x0a\x00"
    assert int.from_bytes(payload[-8:], "little") == crc64(payload[:-8])
    assert parse_payload(payload) == (16, raw, 10)
    assert parse_payload(memoryview(bytearray(payload))) == (16, raw, 10)


def test_parse_rejects_bad_crc_and_short_payloads() -> None:
    payload = bytearray(build_payload(0, b"\x03abc", 9))
    payload[2] ^= 1
    with pytest.raises(DumpPayloadError, match="CRC"):
        parse_payload(bytes(payload))
    with pytest.raises(DumpPayloadError, match="short"):
        parse_payload(b"\x00\x09\x00" + bytes(7))


@pytest.mark.parametrize(
    ("type_byte", "vendor", "expected"),
    [
        (0, "redis", 1), (4, "redis", 1), (9, "redis", 2), (13, "redis", 4), (14, "redis", 7),
        (5, "redis", 8), (7, "redis", 8), (6, "redis", None), (8, "redis", None),
        (15, "redis", 9), (16, "redis", 10), (19, "redis", 10), (20, "redis", 11),
        (21, "redis", 11), (22, "redis", 12), (23, "redis", 12), (24, "redis", 12),
        (25, "redis", 12), (26, "redis", 13), (27, "redis", None),
        (0, "valkey", 1), (21, "valkey", 11), (22, "valkey", 80), (24, "valkey", None),
        (25, "valkey", None), (26, "valkey", None),
    ],
)  # fmt: skip
def test_min_rdb_version_for_type(type_byte: int, vendor: str, expected: int | None) -> None:
    assert min_rdb_version_for_type(type_byte, vendor) == expected  # type: ignore[arg-type]


R, V = False, True


@pytest.mark.parametrize(
    ("type_byte", "src", "tgt", "src_valkey", "tgt_valkey", "expected"),
    [
        # Redis -> Redis: relabel down to the target's version when the target knows the type.
        (0, 11, 10, R, R, 10),
        (0, 12, 9, R, R, 9),
        (18, 11, 10, R, R, 10),
        (18, 11, 9, R, R, None),  # Redis 6 has no QUICKLIST_2
        (20, 11, 10, R, R, None),  # Redis 7.0 has no SET_LISTPACK
        (21, 11, 10, R, R, None),
        (14, 9, 10, R, R, 9),  # older payloads keep their own version
        (5, 10, 9, R, R, 9),
        (24, 12, 12, R, R, 12),
        (25, 12, 11, R, R, None),
        (22, 12, 12, R, R, 12),  # pre-GA hash metadata on a 7.4+ target
        (26, 13, 12, R, R, None),
        (26, 13, 13, R, R, 13),
        (6, 8, 12, R, R, None),
        # Redis -> Valkey 9 (80, strict): footer must avoid 12..79.
        (0, 12, 80, R, V, 11),
        (20, 12, 80, R, V, 11),
        (21, 11, 80, R, V, 11),
        (0, 9, 80, R, V, 9),
        (24, 12, 80, R, V, None),  # hash field TTLs (7.4+) must be rewritten
        (25, 12, 80, R, V, None),
        (22, 12, 80, R, V, None),  # Redis's 22 is not Valkey's HASH_2
        (26, 13, 80, R, V, None),
        # Redis -> Valkey 8 (11): like Redis 7.2.
        (0, 12, 11, R, V, 11),
        (24, 12, 11, R, V, None),
        # Valkey 9 -> Valkey 9 / Valkey 8 / Redis.
        (22, 80, 80, V, V, 80),
        (22, 81, 80, V, V, 80),
        (22, 80, 11, V, V, None),
        (22, 80, 12, V, R, None),
        (0, 80, 80, V, V, 80),
        (0, 80, 11, V, V, 11),
        (0, 80, 12, V, R, 12),
        (0, 80, 10, V, R, 10),
        (20, 80, 10, V, R, None),
        (21, 80, 12, V, R, 12),
    ],
)  # fmt: skip
def test_payload_version_for_target(
    type_byte: int, src: int, tgt: int, src_valkey: bool, tgt_valkey: bool, expected: int | None
) -> None:
    assert payload_version_for_target(type_byte, src, tgt, src_valkey, tgt_valkey) == expected


@pytest.mark.parametrize("replace", [True, False])
def test_restore_packer_is_the_packed_restore_command(replace: bool) -> None:
    pack = restore_packer(replace)
    tail = [b"REPLACE", b"ABSTTL"] if replace else [b"ABSTTL"]
    for size in (0, 1, 100, 70_000):
        raw = bytes(range(256)) * (size // 256) + bytes(size % 256)
        for type_byte, version in ((0, 10), (17, 11), (37, 255), (255, 1)):  # 37 is "%"
            for expire in (-1, 0, 1_700_000_000_123):
                ttl = b"0" if expire < 0 else b"%d" % expire
                payload = build_payload(type_byte, raw, version)
                cmd = [b"RESTORE", b"k%\r\n", ttl, payload, *tail]
                packed = pack(b"k%\r\n", expire, type_byte, raw, version)
                assert packed == pack_command(cmd)
                assert restore_extra(packed, replace, 42, None) == pack_command([*cmd, b"IDLETIME", b"42"])
                assert restore_extra(packed, replace, None, 7) == pack_command([*cmd, b"FREQ", b"7"])
                assert restore_extra(packed, replace, None, None) is packed
