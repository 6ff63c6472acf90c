"""Decoded values against the expected content shipped with the corpus: librdb ``*_data.json``
companions and HDT3213/rdb ``.aof`` companions (RESP commands)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdb_testlib import merged_values, parse_bytes

from cachemigrate.formats.rdb import (
    HashValue,
    KeyRecord,
    ListValue,
    ModuleValue,
    SetValue,
    StreamValue,
    StringValue,
    Value,
    ZSetValue,
)
from support.corpus import CORPUS, rdb_files, require_corpus, requires_corpus

FILES = {f.path: f for f in rdb_files()}
pytestmark = requires_corpus(FILES)


def decoded(path: str) -> dict[tuple[int, bytes], Value]:
    records, parser = parse_bytes((CORPUS / path).read_bytes())
    assert parser.header is not None
    return {(db, key): v for db, key, _, v in merged_values(records, parser.header)}


def librdb_json(path: Path) -> list[dict[str, object]]:
    """librdb's data JSON is a fragment ('"k": v, ...') or a list of per-db objects."""
    text = path.read_text(encoding="utf-8").strip()
    doc = json.loads(text if text.startswith("[") else "{" + text + "}")
    dbs = doc if isinstance(doc, list) else [doc]
    return [{k: v for k, v in d.items() if k != "__aux__"} for d in dbs]


LIBRDB_CASES = sorted(
    p for p in FILES
    if p.startswith("librdb/") and (CORPUS / "librdb" / (Path(p).stem + "_data.json")).exists()
)


def _b(s: str) -> bytes:
    return s.encode("utf-8")


@pytest.mark.parametrize("path", LIBRDB_CASES)
def test_librdb_data_json(path: str) -> None:
    got = decoded(path)
    expected_dbs = librdb_json(CORPUS / "librdb" / (Path(path).stem + "_data.json"))
    seen = set()
    for expected in expected_dbs:
        for key, exp in expected.items():
            matches = [(db, k) for db, k in got if k == _b(key)]
            assert matches, f"key {key!r} missing"
            v = got[matches[0]]
            seen.add(matches[0])
            if isinstance(v, ModuleValue):
                continue
            if isinstance(exp, str):
                assert isinstance(v, StringValue) and v.data == _b(exp)
            elif isinstance(exp, list):
                if isinstance(v, ListValue):
                    assert v.items == [_b(x) for x in exp]
                else:
                    assert isinstance(v, SetValue) and sorted(v.members) == sorted(_b(x) for x in exp)
            else:
                assert isinstance(exp, dict)
                if isinstance(v, ZSetValue):
                    assert {m: s for m, s in v.items} == {_b(m): float(s) for m, s in exp.items()}
                else:
                    assert isinstance(v, HashValue)
                    assert dict(v.items) == {_b(f): _b(x) for f, x in exp.items()}
    assert len(seen) == len(got)


def resp_commands(data: bytes) -> list[list[bytes]]:
    cmds, i = [], 0
    while i < len(data):
        assert data[i : i + 1] == b"*"
        j = data.index(b"\r\n", i)
        n, i, args = int(data[i + 1 : j]), j + 2, []
        for _ in range(n):
            j = data.index(b"\r\n", i)
            size = int(data[i + 1 : j])
            args.append(data[j + 2 : j + 2 + size])
            i = j + 4 + size
        cmds.append(args)
    return cmds


Model = tuple[dict[bytes, object], dict[bytes, int], dict[bytes, dict[bytes, int]]]


def replay(cmds: list[list[bytes]]) -> Model:
    """A tiny model of the commands the HDT3213 companions use."""
    data: dict[bytes, object] = {}
    expires: dict[bytes, int] = {}
    field_ttl: dict[bytes, dict[bytes, int]] = {}
    for cmd in cmds:
        name, key, args = cmd[0].upper(), cmd[1], cmd[2:]
        if name == b"SET":
            data[key] = args[0]
        elif name in (b"HMSET", b"HSET"):
            h = data.setdefault(key, {})
            assert isinstance(h, dict)
            h.update(zip(args[::2], args[1::2], strict=True))
        elif name == b"RPUSH":
            lst = data.setdefault(key, [])
            assert isinstance(lst, list)
            lst.extend(args)
        elif name == b"SADD":
            st = data.setdefault(key, set())
            assert isinstance(st, set)
            st.update(args)
        elif name == b"ZADD":
            z = data.setdefault(key, {})
            assert isinstance(z, dict)
            z.update({m: float(s) for s, m in zip(args[::2], args[1::2], strict=True)})
        elif name == b"PEXPIREAT":
            expires[key] = int(args[0])
        elif name == b"HPEXPIREAT":
            n = int(args[2])
            for f in args[3 : 3 + n]:
                field_ttl.setdefault(key, {})[f] = int(args[0])
        elif name == b"HPERSIST":
            pass
        else:
            raise AssertionError(f"command {name!r} not modelled")
    return data, expires, field_ttl


AOF_CASES = sorted(
    p for p in FILES if p.startswith("hdt3213-rdb/") and (CORPUS / p).with_suffix(".aof").exists()
)


@pytest.mark.parametrize("path", AOF_CASES)
def test_hdt3213_aof_companion(path: str) -> None:
    data, expires, field_ttl = replay(resp_commands((CORPUS / path).with_suffix(".aof").read_bytes()))
    records, parser = parse_bytes((CORPUS / path).read_bytes())
    assert parser.header is not None
    got = {k: v for _, k, _, v in merged_values(records, parser.header)}
    assert set(got) == set(data)
    for key, exp in data.items():
        v = got[key]
        if isinstance(exp, bytes):
            assert isinstance(v, StringValue) and v.data == exp
        elif isinstance(exp, list):
            assert isinstance(v, ListValue) and v.items == exp
        elif isinstance(exp, set):
            assert isinstance(v, SetValue) and set(v.members) == exp
        elif isinstance(v, ZSetValue):
            assert dict(v.items) == exp
        else:
            assert isinstance(v, HashValue) and dict(v.items) == exp
            assert v.field_expires == {f: t for f, t in field_ttl.get(key, {}).items() if f in exp}
    key_expires = {r.key: r.expire_ms for r in records if hasattr(r, "expire_ms") and r.expire_ms >= 0}
    assert key_expires == expires


def _sid(b: bytes) -> tuple[int, int]:
    ms, _, seq = b.partition(b"-")
    return int(ms), int(seq or 0)


STREAM_CASES = [
    ("librdb/stream_v11.rdb", "librdb/stream_v11_target_ver_7.2.resp"),
    ("librdb/stream_v13_idmp.rdb", "librdb/stream_v13_target_ver_8.4.resp"),
]


@pytest.mark.parametrize("path,resp", STREAM_CASES)
def test_librdb_stream_resp(path: str, resp: str) -> None:
    """librdb's replay of a stream (XADD, XSETID, XGROUP CREATE ... ENTRIESREAD, XCLAIM ... FORCE)."""
    require_corpus(path in FILES and (CORPUS / resp).exists(), f"{path} and {resp}")
    got = decoded(path)
    by_key = {k: v for (_, k), v in got.items()}
    cmds = resp_commands((CORPUS / resp).read_bytes())
    keys = {c[2] if c[0] == b"XGROUP" else c[1] for c in cmds}
    for key in keys:
        v = by_key[key]
        assert isinstance(v, StreamValue)
        mine = [c for c in cmds if (c[2] if c[0] == b"XGROUP" else c[1]) == key]
        entries = [(_sid(c[2]), c[3:]) for c in mine if c[0] == b"XADD"]
        assert v.entries == entries
        (setid,) = [c for c in mine if c[0] == b"XSETID"]
        assert v.last_id == _sid(setid[2]) and v.entries_added == int(setid[4])
        assert v.max_deleted_id == _sid(setid[6])
        groups = {g.name: g for g in v.groups}
        creates = [c for c in mine if c[0] == b"XGROUP"]
        assert set(groups) == {c[3] for c in creates}
        for c in creates:
            g = groups[c[3]]
            assert g.last_id == _sid(c[4]) and g.entries_read == int(c[6])
            claims = [x for x in mine if x[0] == b"XCLAIM" and x[2] == c[3]]
            assert sorted((p.id, p.delivery_time, p.delivery_count) for p in g.pending) == sorted(
                (_sid(x[5]), int(x[7]), int(x[9])) for x in claims)
            owners = {x[3]: [_sid(x[5])] for x in claims}
            assert {cons.name: cons.pending for cons in g.consumers if cons.pending} == owners


PAYLOAD_DIRS = sorted(
    p.parent
    for p in (CORPUS / "generated-local").glob("*/dump.rdb")
    if (p.parent / "dump_payloads.json").exists()
)


@pytest.mark.parametrize("folder", PAYLOAD_DIRS, ids=[p.name for p in PAYLOAD_DIRS])
def test_raw_values_equal_dump_payload_bodies(folder: Path) -> None:
    """The fast path's raw value is exactly what DUMP serialises (type byte + value + footer)."""
    payloads = json.loads((folder / "dump_payloads.json").read_text())["dump_payloads"]
    records, _ = parse_bytes((folder / "dump.rdb").read_bytes())
    keys = [r for r in records if isinstance(r, KeyRecord)]
    assert len(keys) == len(payloads)
    for k in keys:
        payload = bytes.fromhex(payloads[f"{k.db}:{k.key.decode()}"]["payload_hex"])
        assert payload[0] == k.type_byte and payload[1:-10] == k.value, k.key
