"""RdbParser.key_hook: the hot loop hands each whole key to the hook instead of making a KeyRecord."""

from __future__ import annotations

import pytest
from rdb_testlib import build_rdb, enc_str, random_pieces

from cachemigrate.errors import RdbFormatError
from cachemigrate.formats.rdb import RdbParser
from cachemigrate.formats.rdb.model import KeyRecord, Record
from support.corpus import rdb_files


def _fields(r: KeyRecord) -> tuple[object, ...]:
    return (r.db, r.key, r.type_byte, r.value, r.expire_ms, r.idle, r.freq, r.offset, r.end_offset,
            r.key_meta)


def _walk(data: bytes, pieces: list[int], hook: bool, **opts: object) -> list[object]:
    p = RdbParser(**opts)  # type: ignore[arg-type]
    if hook:
        p.key_hook = lambda *fields: ("hooked", fields)
    out: list[object] = []
    pos = 0
    for n in [*pieces, len(data)]:
        p.feed(data[pos : pos + n])
        pos += n
        it: list[object] = list(p.records())
        out += it
        if pos >= len(data):
            break
    p.close()
    return out


def _keys_as_fields(out: list[object]) -> list[object]:
    """Hooked keys and KeyRecords (a key cut by a feed boundary comes as a record) alike."""
    return [
        ("key", _fields(r)) if isinstance(r, KeyRecord) and not r.big
        else ("key", r[1]) if isinstance(r, tuple) else r
        for r in out
    ]


@pytest.mark.parametrize("f", rdb_files(), ids=lambda f: f.path)
def test_hook_sees_every_whole_key_with_its_record_fields(f: object) -> None:
    data = f.full.read_bytes()  # type: ignore[attr-defined]
    try:
        plain = _walk(data, [], hook=False)
    except RdbFormatError as exc:  # a file the parser refuses: refused alike, at the same offset
        with pytest.raises(type(exc)) as hooked:
            _walk(data, [], hook=True)
        assert (hooked.value.offset, str(hooked.value)) == (exc.offset, str(exc))
        return
    hooked = _walk(data, [], hook=True)
    assert _keys_as_fields(hooked) == _keys_as_fields(plain)
    assert not [r for r in hooked if isinstance(r, KeyRecord) and not r.big]  # fed whole: all hooked
    if len(data) > 256 << 10:
        return  # fed in small pieces: the small files are enough (and quick)
    pieces = random_pieces(7, len(data), 97)
    assert _keys_as_fields(_walk(data, pieces, hook=True)) == _keys_as_fields(plain)


def test_big_values_still_come_as_records_and_chunks() -> None:
    body = b"\x00" + enc_str(b"small") + enc_str(b"v") + b"\x00" + enc_str(b"big") + enc_str(b"x" * 5000)
    data = build_rdb(body)
    out = _walk(data, [], hook=True, max_value_bytes=1000)
    hooked = [x for x in out if isinstance(x, tuple)]
    assert [h[1][1] for h in hooked] == [b"small"]  # type: ignore[index]
    recs: list[Record] = [x for x in out if not isinstance(x, tuple)]  # type: ignore[misc]
    assert any(isinstance(r, KeyRecord) and r.key == b"big" and r.big for r in recs)
