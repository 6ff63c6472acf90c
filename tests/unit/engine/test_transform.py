"""Transformer: RESTORE fast path, db mapping, expiry, rewrite commands, big keys, functions."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cachemigrate.engine.entry import Entry, Packed
from cachemigrate.engine.rewrite import format_score
from cachemigrate.engine.spec import DbMode, PipelineOptions
from cachemigrate.engine.transform import TargetCaps, Transformer
from cachemigrate.errors import ConfigError, IncompatibleTargetError
from cachemigrate.formats.dump import build_payload, parse_payload
from cachemigrate.formats.rdb.model import (
    Function,
    HashValue,
    KeyRecord,
    ListValue,
    ModuleValue,
    RdbHeader,
    SetValue,
    StreamConsumer,
    StreamGroup,
    StreamPending,
    StreamValue,
    StringValue,
    Value,
    ValueChunk,
    ZSetValue,
)
from cachemigrate.protocol.probe import TargetInfo
from support.corpus import CORPUS
from support.wire import full_argv

NOW = 1_700_000_000_000
REDIS11 = RdbHeader("REDIS", 11)
REDIS70 = TargetCaps(rdb_version=10, vendor="redis", version=(7, 0, 15))
REDIS72 = TargetCaps(rdb_version=11, vendor="redis", version=(7, 2, 4))
REDIS74 = TargetCaps(rdb_version=12, vendor="redis", version=(7, 4, 0))
REDIS60 = TargetCaps(rdb_version=9, vendor="redis", version=(6, 0, 9))
VALKEY9 = TargetCaps(rdb_version=80, vendor="valkey", version=(9, 0, 0))


def make(
    options: PipelineOptions | None = None,
    header: RdbHeader = REDIS11,
    target: TargetCaps = REDIS72,
    decoded: dict[bytes, Value] | None = None,
) -> Transformer:
    t = Transformer(options or PipelineOptions(), header, target, now_ms=lambda: NOW)
    if decoded is not None:
        # Stand-in for formats.rdb.decode_value: the raw bytes of these tests are keys into `decoded`.
        t._decode = lambda type_byte, raw, **kw: decoded[raw]
    return t


def rec(key: bytes = b"k", type_byte: int = 0, value: bytes = b"\x01v", **kw: object) -> KeyRecord:
    return KeyRecord(db=kw.pop("db", 0), key=key, type_byte=type_byte, value=value, **kw)  # type: ignore[arg-type]


def argvs(entries: list[Entry]) -> list[list[bytes]]:
    return [full_argv(e) for e in entries]


# ---- fast path ------------------------------------------------------------------------------


def test_restore_fast_path() -> None:
    t = make()
    [e] = t.key(rec(b"k", 0, b"\x03abc", offset=10, end_offset=25))
    argv = full_argv(e)
    assert argv[:3] == [b"RESTORE", b"k", b"0"]
    assert argv[4:] == [b"REPLACE", b"ABSTTL"]
    assert parse_payload(argv[3]) == (0, b"\x03abc", 11)
    assert (e.db, e.key, e.source_offset, e.tag) == (0, b"k", 25, "string")
    assert type(e) is Packed and (e.name, e.key) == (b"RESTORE", b"k") and e.size == len(e.wire)
    assert t.keys_by_type == {"string": 1}


def test_restore_ttl_idle_freq_and_no_replace() -> None:
    t = make(PipelineOptions(replace=False))
    [e] = t.key(rec(expire_ms=NOW + 5000, idle=42))
    assert full_argv(e)[2] == b"%d" % (NOW + 5000)
    assert full_argv(e)[4:] == [b"ABSTTL", b"IDLETIME", b"42"]
    assert e.wire is not None and e.size == len(e.wire)
    [e] = t.key(rec(freq=7))
    assert full_argv(e)[4:] == [b"ABSTTL", b"FREQ", b"7"]


def test_expired_keys_are_dropped_and_counted() -> None:
    t = make()
    assert t.key(rec(expire_ms=NOW - 1)) == []
    assert t.key(rec(expire_ms=0)) == []
    assert t.expired == 2 and not t.keys_by_type


def test_the_clock_is_read_once_per_64_keys_with_a_ttl() -> None:
    clock = [NOW]
    t = Transformer(PipelineOptions(), REDIS11, REDIS72, now_ms=lambda: clock[0])
    clock[0] = NOW + 10_000
    sent = [bool(t.key(rec(expire_ms=NOW + 5_000))) for _ in range(70)]
    assert sent == [True] * 63 + [False] * 7  # expired once the clock is read again
    assert t.expired == 7


def test_empty_collections_are_not_restored() -> None:
    t = make()
    empty_listpack = b"\x07\x07\x00\x00\x00\x00\x00\xff"  # a string holding an empty listpack
    assert t.key(rec(b"s", 2, b"\x00")) == []
    assert t.key(rec(b"h", 16, empty_listpack)) == []
    assert t.key(rec(b"z", 17, empty_listpack)) == []
    assert t.empty == 3
    one = b"\x09\x00\x00\x00\x01\x00\x01\x01\xff"  # a listpack holding the integer 1
    assert t.key(rec(b"l", 18, b"\x01\x02\x09" + one))[0].name == b"RESTORE"  # decoded: not empty
    assert t.key(rec(b"e", 21, b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))  # streams may be empty


def test_footer_relabelled_for_an_older_target() -> None:
    t = make(target=REDIS70)
    [e] = t.key(rec(type_byte=0))
    assert parse_payload(full_argv(e)[3])[2] == 10
    [e] = t.key(rec(type_byte=16, value=b"lp"))  # HASH_LISTPACK: 7.0 knows it
    assert parse_payload(full_argv(e)[3])[0:3:2] == (16, 10)


def test_footer_for_valkey9_avoids_the_foreign_range() -> None:
    t = make(header=RdbHeader("REDIS", 12), target=VALKEY9)
    [e] = t.key(rec(type_byte=20, value=b"lp"))
    assert parse_payload(full_argv(e)[3])[2] == 11


@pytest.mark.parametrize(
    ("mode", "db", "target_db", "expect"),
    [
        (DbMode.KEEP, None, None, {0: 0, 3: 3}),
        (DbMode.FOLD, None, None, {0: 0, 3: 0}),
        (DbMode.ONLY, 3, None, {0: None, 3: 3}),
        (DbMode.ONLY, 3, 1, {0: None, 3: 1}),
    ],
)
def test_db_mapping(
    mode: DbMode, db: int | None, target_db: int | None, expect: dict[int, int | None]
) -> None:
    t = make(PipelineOptions(db_mode=mode, db=db, target_db=target_db))
    for src, dst in expect.items():
        out = t.key(rec(db=src))
        assert [e.db for e in out] == ([] if dst is None else [dst])
    assert t.filtered == sum(v is None for v in expect.values())


def test_the_db_map_is_public_for_command_sources() -> None:
    t = make(PipelineOptions(db_mode=DbMode.ONLY, db=3, target_db=1))
    assert (t.dbmap.target(3), t.dbmap.target(0)) == (1, None)


def test_db_mapping_errors() -> None:
    with pytest.raises(ConfigError):
        make(PipelineOptions(db_mode=DbMode.ONLY))
    cluster = TargetCaps(11, "redis", (7, 2, 0), cluster=True)
    with pytest.raises(IncompatibleTargetError):
        make(PipelineOptions(db_mode=DbMode.ONLY, db=2, target_db=2), target=cluster)
    t = make(target=cluster)
    assert t.key(rec(db=0))
    with pytest.raises(IncompatibleTargetError, match="db 5"):
        t.key(rec(db=5))
    assert make(PipelineOptions(db_mode=DbMode.FOLD), target=cluster).key(rec(db=5))[0].db == 0


def test_a_probed_target_info_is_a_target() -> None:
    info = TargetInfo(address="127.0.0.1:1", vendor="redis", version=(7, 0, 15), rdb_version=10)
    [e] = Transformer(PipelineOptions(), REDIS11, info).key(rec())
    assert parse_payload(full_argv(e)[3])[2] == 10


def test_function_load() -> None:
    [e] = make().function(Function(b"#!lua name=lib\n...", offset=7))
    assert e.argv == [b"FUNCTION", b"LOAD", b"REPLACE", b"#!lua name=lib\n..."]
    assert (e.db, e.key) == (-1, None)
    t = make(target=REDIS60)
    assert t.function(Function(b"x")) == []
    assert t.unsupported_count == 1


# ---- rewrite path ---------------------------------------------------------------------------


def test_rewrite_when_the_target_lacks_the_type() -> None:
    t = make(target=REDIS70, decoded={b"raw": SetValue([b"a", b"b"])})
    out = t.key(rec(b"s", 20, b"raw", expire_ms=NOW + 1000, offset=5, end_offset=50))
    assert argvs(out) == [
        [b"DEL", b"s"],
        [b"SADD", b"s", b"a", b"b"],
        [b"PEXPIREAT", b"s", b"%d" % (NOW + 1000)],
    ]
    assert [e.tag for e in out] == ["set", "", ""]
    assert [e.source_offset for e in out] == [5, 5, 50]
    assert t.rewritten == 1 and t.keys_by_type == {"set": 1}


def test_forced_rewrite_without_replace() -> None:
    t = make(PipelineOptions(rewrite=True, replace=False), decoded={b"raw": StringValue(b"hello")})
    out = t.key(rec(b"k", 0, b"raw"))
    assert argvs(out) == [[b"SET", b"k", b"hello"]]
    assert out[0].tag == "string"


def test_rewrite_chunks_by_elements_and_bytes() -> None:
    t = make(PipelineOptions(rewrite=True, chunk_elements=3))
    items = [b"%d" % i for i in range(7)]
    out = argvs(t.rewrite(rec(b"l", 18), ListValue(items)))
    assert out[1:] == [
        [b"RPUSH", b"l", *items[0:3]],
        [b"RPUSH", b"l", *items[3:6]],
        [b"RPUSH", b"l", items[6]],
    ]
    big = [b"x" * (600 << 10)] * 3
    out = argvs(t.rewrite(rec(b"l", 18), ListValue(big)))
    assert [len(a) - 2 for a in out[1:]] == [1, 1, 1]


@pytest.mark.parametrize(
    "score", [0.1, 1e-300, 1.7976931348623157e308, float("inf"), float("-inf"), -0.0, 5e-324, 1e16, 3.0]
)
def test_score_text_parses_back_exactly(score: float) -> None:
    text = format_score(score)
    assert float(text) == score and str(float(text)) == str(score)


def test_zset_rewrite() -> None:
    t = make(PipelineOptions(rewrite=True))
    out = argvs(t.rewrite(rec(b"z", 17), ZSetValue([(b"a", 0.1), (b"b", float("-inf"))])))
    assert out[1] == [b"ZADD", b"z", b"0.1", b"a", b"-inf", b"b"]


def test_empty_collections_are_skipped() -> None:
    t = make(PipelineOptions(rewrite=True))
    assert t.rewrite(rec(b"z", 17), ZSetValue([])) == []
    assert t.empty == 1


def _hfe() -> HashValue:
    return HashValue(
        [(b"f1", b"v1"), (b"f2", b"v2"), (b"f3", b"v3"), (b"old", b"x")],
        {b"f1": NOW + 100, b"f2": NOW + 100, b"f3": NOW + 200, b"old": NOW - 1},
    )


def test_hash_field_ttls_on_a_target_that_has_them() -> None:
    t = make(PipelineOptions(rewrite=True), RdbHeader("REDIS", 12), REDIS74, decoded={b"raw": _hfe()})
    out = argvs(t.key(rec(b"h", 25, b"raw")))
    assert out == [
        [b"DEL", b"h"],
        [b"HSET", b"h", b"f1", b"v1", b"f2", b"v2", b"f3", b"v3"],
        [b"HPEXPIREAT", b"h", b"%d" % (NOW + 100), b"FIELDS", b"2", b"f1", b"f2"],
        [b"HPEXPIREAT", b"h", b"%d" % (NOW + 200), b"FIELDS", b"1", b"f3"],
    ]
    assert t.expired_fields == 1 and t.dropped_field_ttls == 0


def test_hash_field_ttls_dropped_on_an_older_target() -> None:
    t = make(header=RdbHeader("REDIS", 12), target=REDIS72, decoded={b"raw": _hfe()})
    out = argvs(t.key(rec(b"h", 24, b"raw")))
    assert out[-1] == [b"HSET", b"h", b"f1", b"v1", b"f2", b"v2", b"f3", b"v3"]
    assert t.dropped_field_ttls == 3 and t.dropped_field_ttl_keys == [(0, b"h")]


def test_valkey_hash2_to_valkey_restores_and_to_redis_rewrites() -> None:
    header = RdbHeader("VALKEY", 80)
    [e] = make(header=header, target=VALKEY9).key(rec(b"h", 22, b"raw"))
    assert e.name == b"RESTORE"
    t = make(header=header, target=REDIS74, decoded={b"raw": _hfe()})
    assert [a[0] for a in argvs(t.key(rec(b"h", 22, b"raw")))] == [
        b"DEL",
        b"HSET",
        b"HPEXPIREAT",
        b"HPEXPIREAT",
    ]


def test_module_values_cannot_be_rewritten() -> None:
    t = make(PipelineOptions(rewrite=True))
    assert t.key(rec(b"m", 7, b"raw")) == []
    assert t.rewrite(rec(b"m", 7), ModuleValue("ReJSON-RL", 1, b"")) == []
    assert t.unsupported_count == 2 and t.unsupported[0][:2] == (0, b"m")
    assert "RESTORE" in t.unsupported[0][2]
    [e] = make().key(rec(b"m", 7, b"raw"))  # the fast path moves it
    assert e.name == b"RESTORE"


# ---- streams --------------------------------------------------------------------------------


def _resp(path: str) -> Iterator[list[bytes]]:
    data = (CORPUS / path).read_bytes()
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n", pos)
        n, pos = int(data[pos + 1 : end]), end + 2
        argv = []
        for _ in range(n):
            end = data.index(b"\r\n", pos)
            size = int(data[pos + 1 : end])
            argv.append(data[end + 2 : end + 2 + size])
            pos = end + 4 + size
        yield argv


def librdb_stream() -> StreamValue:
    """corpus librdb/stream_v11.rdb, as librdb/stream_data_with_meta.json describes it."""
    ids = [1695649068107, 1695649068110, 1695649069139, 1695649446276, 1695649456516]
    entries = [((ms, 0), [b"message", b"Message%d" % (i + 1)]) for i, ms in enumerate(ids)]
    entries.append(((1695893015933, 0), [b"field1", b"value1", b"field2", b"value2", b"field3", b"value3"]))
    a, b = (1695649446276, 0), (1695649069139, 0)
    return StreamValue(
        entries, 6, (1695893015933, 0), (1695649068107, 0), (0, 0), 6,
        [
            StreamGroup(b"groupA", a, 4, [StreamPending(a, a[0], 1)], [
                StreamConsumer(b"consumerA1", 1696679585023, 1696679585023, []),
                StreamConsumer(b"consumerA2", 1696679585024, 1696679585024, [a]),
            ]),
            StreamGroup(b"groupB", b, 3, [StreamPending(b, b[0], 1)], [
                StreamConsumer(b"consumerB1", 1696679585026, 1696679585026, [b]),
            ]),
        ],
    )  # fmt: skip


@pytest.mark.parametrize(("target", "resp"), [(REDIS72, "7.2"), (TargetCaps(9, "redis", (6, 2, 14)), "6.2")])
def test_stream_rewrite_matches_librdb(target: TargetCaps, resp: str) -> None:
    t = make(PipelineOptions(rewrite=True, replace=False), target=target)
    out = argvs(t.rewrite(rec(b"mystream", 21), librdb_stream()))
    assert [b"XGROUP", b"CREATECONSUMER", b"mystream", b"groupA", b"consumerA1"] in out
    ours = [a for a in out if a[:2] != [b"XGROUP", b"CREATECONSUMER"]]
    assert ours == list(_resp(f"librdb/stream_v11_target_ver_{resp}.resp"))
    assert t.lost_pending == 0
    gone = librdb_stream()
    gone.entries = gone.entries[:3]  # groupA's pending entry was deleted after delivery
    t.rewrite(rec(b"mystream", 21), gone)
    assert t.lost_pending == 1


def test_rdb9_stream_gets_the_counters_a_loading_server_derives() -> None:
    a, b = (5, 0), (9, 0)
    group = StreamGroup(b"g", b, None, [], [])
    early = StreamGroup(b"e", (1, 0), None, [], [])
    value = StreamValue([(a, [b"f", b"v"]), (b, [b"f", b"w"])], 2, b, groups=[group, early])
    out = argvs(make(PipelineOptions(rewrite=True, replace=False)).rewrite(rec(b"s", 15), value))
    assert out[2:] == [
        [b"XSETID", b"s", b"9-0", b"ENTRIESADDED", b"2", b"MAXDELETEDID", b"0-0"],
        [b"XGROUP", b"CREATE", b"s", b"g", b"9-0", b"ENTRIESREAD", b"2"],  # at the last ID
        [b"XGROUP", b"CREATE", b"s", b"e", b"1-0", b"ENTRIESREAD", b"0"],  # before the first
    ]
    old = TargetCaps(9, "redis", (6, 2, 0))
    out = argvs(make(PipelineOptions(rewrite=True, replace=False), target=old).rewrite(rec(b"s", 15), value))
    assert out[2:] == [[b"XSETID", b"s", b"9-0"], [b"XGROUP", b"CREATE", b"s", b"g", b"9-0"],
                       [b"XGROUP", b"CREATE", b"s", b"e", b"1-0"]]  # fmt: skip


def test_empty_stream_is_created_through_a_dummy_group() -> None:
    t = make(PipelineOptions(rewrite=True, replace=False))
    out = argvs(t.rewrite(rec(b"s", 21), StreamValue([], 0, (5, 1), None, (5, 1), 3)))
    assert out == [
        [b"XGROUP", b"CREATE", b"s", b"dummyCG", b"$", b"MKSTREAM"],
        [b"XGROUP", b"DESTROY", b"s", b"dummyCG"],
        [b"XSETID", b"s", b"5-1", b"ENTRIESADDED", b"3", b"MAXDELETEDID", b"5-1"],
    ]


# ---- big keys -------------------------------------------------------------------------------


def test_big_key_chunks() -> None:
    t = make()
    first = t.key(rec(b"big", 18, b"", big=True, offset=100, expire_ms=NOW + 9))
    assert argvs(first) == [[b"DEL", b"big"]] and first[0].tag == "list"
    a = t.chunk(ValueChunk(0, b"big", 18, ListValue([b"a", b"b"]), last=False, end_offset=150))
    b = t.chunk(ValueChunk(0, b"big", 18, ListValue([b"c"]), last=True, end_offset=200))
    assert argvs(a + b) == [
        [b"RPUSH", b"big", b"a", b"b"],
        [b"RPUSH", b"big", b"c"],
        [b"PEXPIREAT", b"big", b"%d" % (NOW + 9)],
    ]
    assert [e.source_offset for e in a + b] == [100, 100, 200]
    assert all(e.tag == "" for e in a + b)
    assert t.keys_by_type == {"list": 1}


def test_big_string_and_stream_without_replace() -> None:
    t = make(PipelineOptions(replace=False))
    assert t.key(rec(b"s", 0, b"", big=True)) == []
    a = t.chunk(ValueChunk(0, b"s", 0, StringValue(b"x" * 10), last=False))
    b = t.chunk(ValueChunk(0, b"s", 0, StringValue(b"y"), last=True))
    assert argvs(a + b) == [[b"SET", b"s", b"x" * 10], [b"APPEND", b"s", b"y"]]
    assert a[0].tag == "string" and b[0].tag == ""
    assert t.key(rec(b"st", 21, b"", big=True)) == []
    part = StreamValue([((1, 0), [b"f", b"v"])])
    tail = StreamValue([((2, 0), [b"f", b"w"])], 2, (2, 0), (1, 0), (0, 0), 2)
    out = argvs(
        t.chunk(ValueChunk(0, b"st", 21, part, last=False))
        + t.chunk(ValueChunk(0, b"st", 21, tail, last=True))
    )
    assert [a[0] for a in out] == [b"XADD", b"XADD", b"XSETID"]


def test_dropped_big_keys_swallow_their_chunks() -> None:
    t = make(PipelineOptions(db_mode=DbMode.ONLY, db=1))
    assert t.key(rec(b"x", 18, b"", big=True, db=0)) == []
    assert t.chunk(ValueChunk(0, b"x", 18, ListValue([b"a"]), last=True)) == []
    assert t.key(rec(b"y", 18, b"", big=True, db=1, expire_ms=1)) == []
    assert t.chunk(ValueChunk(1, b"y", 18, ListValue([b"a"]), last=True)) == []
    assert (t.filtered, t.expired) == (1, 1)


# ---- speed ----------------------------------------------------------------------------------


def test_fast_path_speed_report(capsys: pytest.CaptureFixture[str]) -> None:
    t = Transformer(PipelineOptions(), REDIS11, REDIS72)
    records = [
        rec(b"key:%d" % i, 0, b"\x40\x64" + b"v" * 100, expire_ms=-1, end_offset=i) for i in range(2000)
    ]
    raw = records[0].value
    best_key = best_build = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for r in records:
            t.key(r)
        best_key = min(best_key, (time.perf_counter_ns() - start) / len(records))
        start = time.perf_counter_ns()
        for _r in records:
            build_payload(0, raw, 11)
        best_build = min(best_build, (time.perf_counter_ns() - start) / len(records))
    with capsys.disabled():
        print(
            f"\nbuild_payload(100 B): {best_build:.0f} ns/call; "
            f"Transformer.key fast path: {best_key:.0f} ns/call"
        )
    assert best_key < 50_000  # generous: only catches an accidental decode on the fast path
