"""The one value-type table: what each vendor's type bytes are, and everyone reading it alike."""

from __future__ import annotations

import pytest
from rdb_testlib import build_rdb, enc_len, enc_str, parse_bytes

from cachemigrate.engine.capabilities import TargetCaps
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.transform import Transformer
from cachemigrate.errors import UnsupportedRdbError
from cachemigrate.formats.dump import min_rdb_version_for_type
from cachemigrate.formats.rdb._types import parse_header, type_table
from cachemigrate.formats.rdb.decode import decode_value
from cachemigrate.formats.rdb.kinds import (
    VALUE_TYPES,
    file_vendor,
    kinds_by_byte,
    type_kind,
    value_type,
)
from cachemigrate.formats.rdb.model import KeyRecord, RdbHeader


def test_the_vendors_agree_below_22_and_differ_from_it() -> None:
    redis, valkey = VALUE_TYPES["redis"], VALUE_TYPES["valkey"]
    assert {t: v for t, v in redis.items() if t < 22} == {t: v for t, v in valkey.items() if t < 22}
    assert sorted(t for t in redis if t >= 22) == [22, 23, 24, 25, 26]
    assert sorted(t for t in valkey if t >= 22) == [22, 23]
    # formats.md §1, the collision table
    assert (redis[22].name, redis[22].since) == ("hash_metadata_pre_ga", 12)
    assert (redis[23].name, redis[23].since) == ("hash_listpack_ex_pre_ga", 12)
    assert (valkey[22].name, valkey[22].kind, valkey[22].since) == ("hash_2", "hash", 80)
    assert (valkey[23].name, valkey[23].since, valkey[23].readable) == ("path_hash", 81, False)
    assert redis[26] == value_type(26) and value_type(26, "valkey") is None
    assert 8 not in redis and value_type(8) is None


@pytest.mark.parametrize(
    ("type_byte", "redis", "valkey"),
    [(0, "string", "string"), (18, "list", "list"), (21, "stream", "stream"), (22, "hash", "hash"),
     (23, "hash", "path_hash"), (25, "hash", "unknown"), (26, "stream", "unknown"),
     (6, "module", "module"), (8, "unknown", "unknown"), (300, "unknown", "unknown")],
)  # fmt: skip
def test_type_kind_by_vendor(type_byte: int, redis: str, valkey: str) -> None:
    assert type_kind(type_byte) == type_kind(type_byte, "redis") == redis
    assert type_kind(type_byte, "valkey") == valkey
    if type_byte < 256:
        assert kinds_by_byte("valkey")[type_byte] == valkey


def test_the_restore_gate_reads_the_same_table() -> None:
    for vendor, table in VALUE_TYPES.items():
        for t in range(256):
            known = table.get(t)
            want = known.since if known is not None and known.restorable else None
            assert min_rdb_version_for_type(t, vendor) == want
    assert min_rdb_version_for_type(23, "valkey") == 81
    assert min_rdb_version_for_type(6) is None  # 4.0 RC module values: no GA server loads them


@pytest.mark.parametrize(
    ("magic", "version", "allowed", "refused"),
    [
        (b"REDIS", 11, {0, 20, 21}, {22, 23, 24, 25, 26}),
        (b"REDIS", 12, {22, 23, 24, 25}, {26}),
        (b"REDIS", 13, {22, 23, 24, 25, 26}, {8, 27}),
        (b"VALKEY", 80, {0, 21, 22}, {23, 24, 25, 26}),
        (b"VALKEY", 81, {22}, {23, 24}),  # PATH_HASH: we do not know its serialization
    ],
)
def test_parser_table_per_header(magic: bytes, version: int, allowed: set[int], refused: set[int]) -> None:
    header = parse_header(magic + b"%03d" % version if magic == b"VALKEY" else magic + b"%04d" % version)
    types = type_table(header).types
    assert allowed <= types and not refused & types
    assert file_vendor(header) == ("valkey" if magic == b"VALKEY" else "redis")


def test_valkey_path_hash_is_refused_clearly() -> None:
    body = b"\x17" + enc_str(b"p") + enc_len(0)
    with pytest.raises(UnsupportedRdbError, match="23"):
        parse_bytes(build_rdb(body, version=81, magic=b"VALKEY"))
    with pytest.raises(UnsupportedRdbError, match="unknown value type 23"):
        decode_value(23, enc_len(0), header=RdbHeader("VALKEY", 81))


def test_transform_names_keys_from_the_file_s_table() -> None:
    value = enc_len(1) + enc_str(b"f") + enc_str(b"v") + b"\xff" * 8  # HASH_2: field, value, no ttl
    target = TargetCaps(rdb_version=80, vendor="valkey", version=(9, 0))
    tf = Transformer(PipelineOptions(), RdbHeader("VALKEY", 80), target)
    (entry,) = tf.key(KeyRecord(0, b"h", 22, value, -1, None, None, 0, 1))
    assert entry.tag == "hash" and dict(tf.keys_by_type) == {"hash": 1}
