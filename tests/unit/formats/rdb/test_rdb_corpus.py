"""Every .rdb in the shared corpus: what real servers load must parse, the rest must be refused
with an RdbFormatError that names an offset — never another exception."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from cachemigrate.errors import RdbFormatError, UnsupportedRdbError
from cachemigrate.formats.rdb import End, Function, KeyRecord, RdbParser, decode_value
from support.corpus import CorpusFile, rdb_files, require_corpus, requires_corpus

FILES = rdb_files()
pytestmark = requires_corpus(FILES)

# Opcode 246 FUNCTION_PRE_GA (7.0 release candidates): formats.md says 7.0 GA refuses it, but
# Redis 7.0.15 loads these files (manifest, and checked by hand: FUNCTION LIST shows the
# libraries as "#!LUA name=lib2\n..."), so we read them the same way.
PRE_GA_FUNCTIONS = {"redis-replicator/function.rdb", "redis-rdb-cli/rdt/filter1.rdb"}

# Files we must refuse, with the error class and a phrase of its message.
EXPECTED_REFUSALS: dict[str, tuple[type[RdbFormatError], str]] = {
    "librdb/invalid_chksum_v8.rdb": (RdbFormatError, "checksum mismatch"),
    "librdb/redis_ent_opcode_ram_lru.rdb": (UnsupportedRdbError, "opcode 107"),
    "librdb/future_v19.rdb": (UnsupportedRdbError, "version 99"),
    "redis-replicator/module.rdb": (UnsupportedRdbError, "pre-GA type 6"),
    "valkey/encodings-rdb75-unknown-types.rdb": (UnsupportedRdbError, "version 75"),
    "valkey/encodings-rdb987-unknown-types.rdb": (UnsupportedRdbError, "version 987"),
    "valkey/encodings-rdb987.rdb": (UnsupportedRdbError, "version 987"),
}


@dataclass
class Outcome:
    keys: int = 0
    ended: bool = False
    error: Exception | None = None
    decode_error: Exception | None = None


def loadable(f: CorpusFile) -> bool:
    return f.redis7_loads or f.row.get("redis6.0.9_load", "").startswith("LOADED")


@functools.cache
def outcome(path: str) -> Outcome:
    f = next(x for x in FILES if x.path == path)
    out = Outcome()
    parser = RdbParser(source=f.path)
    try:
        with f.full.open("rb") as fh:
            while chunk := fh.read(64 * 1024):
                parser.feed(chunk)
                for rec in parser.records():
                    if isinstance(rec, KeyRecord):
                        out.keys += 1
                        assert parser.header is not None
                        try:
                            decode_value(rec.type_byte, rec.value, header=parser.header, key=rec.key,
                                         offset=rec.offset)
                        except RdbFormatError as exc:
                            out.decode_error = out.decode_error or exc
                    elif isinstance(rec, End):
                        out.ended = True
        parser.close()
    except Exception as exc:
        out.error = exc
    return out


@pytest.mark.parametrize("f", FILES, ids=[f.path for f in FILES])
def test_corpus_file(f: CorpusFile) -> None:
    o = outcome(f.path)
    if o.error is not None and not isinstance(o.error, RdbFormatError):
        raise AssertionError(f"unexpected {type(o.error).__name__}") from o.error
    if f.path in EXPECTED_REFUSALS:
        cls, phrase = EXPECTED_REFUSALS[f.path]
        assert isinstance(o.error, cls), f"expected {cls.__name__}, got {o.error!r}"
        assert phrase in str(o.error)
    elif loadable(f):
        assert o.error is None, f"a real server loads this file but we refused it: {o.error}"
    if o.error is not None:
        assert isinstance(o.error, RdbFormatError) and o.error.offset is not None
        assert "offset" in str(o.error)
        return
    assert o.ended
    if f.row.get("keys_in_file", "").isdigit():
        assert o.keys == int(f.row["keys_in_file"])
    if f.redis7_loads:
        assert o.decode_error is None, f"Redis 7.0.15 loads it but a value did not decode: {o.decode_error}"
    if o.decode_error is not None:
        assert "offset" in str(o.decode_error) and "key" in str(o.decode_error)


def test_corpus_outcome_table(capsys: pytest.CaptureFixture[str]) -> None:
    """One line per file (visible with -s); counts of parsed / refused / unexpected."""
    counts = {"parsed": 0, "refused": 0, "unexpected": 0, "value_refused": 0}
    lines = []
    for f in FILES:
        o = outcome(f.path)
        if o.error is None:
            counts["parsed"] += 1
            what = f"parsed keys={o.keys}"
            if o.decode_error is not None:
                counts["value_refused"] += 1
                what += f" (value refused: {o.decode_error})"
        elif isinstance(o.error, RdbFormatError):
            counts["refused"] += 1
            what = f"refused {type(o.error).__name__}: {o.error}"
        else:
            counts["unexpected"] += 1
            what = f"UNEXPECTED {type(o.error).__name__}: {o.error}"
        lines.append(f"{f.path:<72} {what}")
    with capsys.disabled():
        print("\n" + "\n".join(lines) + f"\n{counts}")
    assert counts["unexpected"] == 0


@pytest.mark.parametrize("path", sorted(PRE_GA_FUNCTIONS))
def test_pre_ga_functions_read_like_redis_7_0(path: str) -> None:
    f = next((x for x in FILES if x.path == path), None)
    require_corpus(f, path)
    assert f is not None
    parser = RdbParser()
    parser.feed(f.full.read_bytes())
    codes = [r.code for r in parser.records() if isinstance(r, Function)]
    parser.close()
    assert codes and all(c.startswith(b"#!LUA name=") for c in codes)
