"""Transformer.key_fields (the parser's key_hook) gives what key() gives for the same record."""

from __future__ import annotations

import pytest
from test_transform import NOW, REDIS60, REDIS72, make, rec

from cachemigrate.engine.entry import Entry
from cachemigrate.engine.spec import DbMode, PipelineOptions
from cachemigrate.engine.transform import Transformer
from cachemigrate.formats.rdb.model import KeyRecord, ListValue
from support.wire import full_argv

_ONE = b"\x09\x00\x00\x00\x01\x00\x01\x01\xff"  # a listpack holding the integer 1
RECORDS = [
    rec(b"plain", 0, b"\x03abc", offset=5, end_offset=20),
    rec(b"ttl", 0, b"\x01v", expire_ms=NOW + 5000, end_offset=30),
    rec(b"expired", 0, b"\x01v", expire_ms=NOW - 1),
    rec(b"idle", 0, b"\x01v", idle=42),
    rec(b"freq", 0, b"\x01v", freq=7, db=3),
    rec(b"other-db", 0, b"\x01v", db=5),
    rec(b"empty-set", 2, b"\x00"),
    rec(b"list", 18, b"\x01\x02\x09" + _ONE),
    rec(b"meta", 0, b"\x01v", key_meta=b"\x01\x02"),
    rec(b"quicklist2", 18, b"\x01\x02\x09" + _ONE * 3, end_offset=99),  # rewritten on Redis 6
]


def _view(out: list[Entry] | Entry) -> list[tuple[object, ...]]:
    entries = [out] if isinstance(out, Entry) else out
    return [(full_argv(e), e.db, e.key, e.source_offset, e.tag, e.size if e.wire else None)
            for e in entries]


def _counters(t: Transformer) -> tuple[object, ...]:
    return (dict(t.keys_by_type), t.expired, t.filtered, t.empty, t.rewritten, t.unsupported_count)


Fields = tuple[int, bytes, int, bytes, int, int | None, int | None, int, int, bytes | None]


def _fields(r: KeyRecord) -> Fields:
    return (r.db, r.key, r.type_byte, r.value, r.expire_ms, r.idle, r.freq, r.offset, r.end_offset,
            r.key_meta)


OPTIONS = [PipelineOptions(), PipelineOptions(replace=False), PipelineOptions(db_mode=DbMode.ONLY, db=0)]


@pytest.mark.parametrize("options", OPTIONS, ids=["replace", "keep", "only0"])
@pytest.mark.parametrize("target", [REDIS72, REDIS60], ids=["7.2", "6.0"])
def test_key_fields_matches_key(options: PipelineOptions, target: object) -> None:
    decoded = {r.value: ListValue([b"1"] * (3 if r.key == b"quicklist2" else 1))
               for r in RECORDS if r.type_byte == 18}
    decoded[b"\x00"] = ListValue([])
    a = make(options, target=target, decoded=decoded)  # type: ignore[arg-type]
    b = make(options, target=target, decoded=decoded)  # type: ignore[arg-type]
    for r in RECORDS:
        assert _view(b.key_fields(*_fields(r))) == _view(a.key(r)), r.key
    assert _counters(b) == _counters(a)
