"""Every corpus RDB through parser + transform into a real Redis 7.0, checked against Redis itself.

For files Redis 7.0.15 loads, a reference server loads the file (DEBUG RELOAD NOSAVE) and the
target, filled only with our entries, must hold the same keys, values and TTLs. Files 7.0 cannot
load because of their version (RDB 11/12, Valkey 80) must still apply without a single error:
their types are relabelled or rewritten for the older target.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from test_rewrite_servers import snapshot

from cachemigrate.engine.entry import Entry
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.transform import TargetCaps, Transformer
from cachemigrate.errors import CacheMigrateError, FormatError, UnsupportedRdbError
from cachemigrate.formats.rdb.model import Function, KeyRecord, RdbHeader, ValueChunk
from cachemigrate.formats.rdb.parser import RdbParser
from support.corpus import rdb_files, requires_corpus
from support.servers import RedisServer, start_redis
from support.wire import full_argv

REDIS70 = TargetCaps(rdb_version=10, vendor="redis", version=(7, 0, 15))
FILES = rdb_files()
# Files with tens of thousands of keys add nothing the others do not cover but minutes of round trips.
LOADED = [f for f in FILES if f.redis7_loads and int(f.row.get("keys_in_file") or 0) <= 2000]
NEWER = [
    f
    for f in FILES
    if not f.row.get("modules")  # a module value needs its module on the target
    if f.row.get("redis7.0.15_load", "").startswith(("FAILED: Can't handle RDB format version 1",
                                                     "FAILED: Wrong signature"))
    and f.rdb_version in {"11", "12", "80"}
]  # fmt: skip


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    base = tmp_path_factory.mktemp("corpus")
    ref = start_redis(base / "reference", args=["--enable-debug-command", "yes", "--databases", "32"])
    tgt = start_redis(base / "target", args=["--databases", "32"])
    yield ref, tgt
    ref.stop()
    tgt.stop()


def _records(path: Path, header_out: list[RdbHeader]) -> Iterator[Any]:
    parser = RdbParser(max_value_bytes=4096, chunk_elements=50, source=str(path))
    parser.feed(path.read_bytes())
    for r in parser.records():
        if parser.header is not None and not header_out:
            header_out.append(parser.header)
        yield r
    parser.close()


def _migrate(path: Path, tgt: RedisServer, options: PipelineOptions) -> tuple[Transformer | None, list[str]]:
    """Parse + transform + apply (pipelined per db); returns the transformer and the error replies."""
    header: list[RdbHeader] = []
    t: Transformer | None = None
    errors: list[str] = []
    batch: list[Entry] = []

    def flush() -> None:
        if not batch:
            return
        pipe = tgt.client(db=max(batch[0].db, 0)).pipeline(transaction=False)
        for e in batch:
            pipe.execute_command(*full_argv(e))
        for e, reply in zip(batch, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, redis.ResponseError):
                errors.append(f"{e.key!r}: {e.name!r}: {reply}")
        batch.clear()

    for r in _records(path, header):
        if isinstance(r, (KeyRecord, ValueChunk, Function)) and t is None:
            t = Transformer(options, header[0], REDIS70)
        if isinstance(r, KeyRecord):
            entries = t.key(r)  # type: ignore[union-attr]
        elif isinstance(r, ValueChunk):
            entries = t.chunk(r)  # type: ignore[union-attr]
        elif isinstance(r, Function):
            entries = t.function(r)  # type: ignore[union-attr]
        else:
            continue
        for e in entries:
            if batch and (batch[0].db != e.db or len(batch) >= 500):
                flush()
            batch.append(e)
    flush()
    return t, errors


def _state(server: RedisServer) -> dict[tuple[int, bytes], Any]:
    out = {}
    for db in server.client().info("keyspace"):
        c = server.client(db=int(db[2:]))
        keys = list(c.scan_iter(count=1000))
        pipe = c.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("PEXPIRETIME", key)  # absolute: the two servers are read apart
        for key, at in zip(keys, pipe.execute(), strict=True):
            out[(db, key)] = (snapshot(c, key), -1 if at < 0 else at // 2000)
    return out


def _commands_can_write(state: Any) -> Any:
    """What plain commands can reproduce of a key's state.

    A listpack zset stores the score -0.0 as the integer 0 when it comes through ZADD (7.0
    ``zzlInsertAt``), though a loaded one keeps "-0". A stream's length is a stored counter that
    a damaged file can get wrong (redis-replicator dump-stream.rdb "trim": 130 for 128 entries);
    commands make it count the entries.
    """
    (t, v), ttl = state
    if t == b"zset":
        v = [(m, s, 1.0 if s == 0 else sign) for m, s, sign in v]
    elif t == b"stream":
        v = {**v, b"length": len(v[b"entries"])}
    return (t, v), ttl


def _same(ref: dict[tuple[int, bytes], Any], ours: dict[tuple[int, bytes], Any], rewrite: bool) -> list[str]:
    problems = []
    for k in sorted(set(ref) | set(ours)):
        a, b = ref.get(k), ours.get(k)
        if rewrite and a is not None and b is not None:
            a, b = _commands_can_write(a), _commands_can_write(b)
        if a is None or b is None:
            problems.append(f"{k}: only in {'target' if a is None else 'reference'}")
        elif a[0] != b[0] or abs(a[1] - b[1]) > 1:
            problems.append(f"{k}: {a!r:.200} != {b!r:.200}")
    return problems


@requires_corpus(LOADED)
@pytest.mark.parametrize("rewrite", [False, True], ids=["restore", "rewrite"])
def test_files_redis7_loads_match_redis7_loading_them(
    servers: tuple[RedisServer, RedisServer], rewrite: bool
) -> None:
    ref, tgt = servers
    failures: dict[str, list[str]] = {}
    checked = 0
    for f in LOADED:
        ref.client().flushall()
        tgt.client().flushall()
        tgt.client().function_flush()
        shutil.copy(f.full, ref.rdb_path)
        ref.rdb_path.chmod(0o644)
        ref.client().execute_command("DEBUG", "RELOAD", "NOSAVE")
        try:
            _t, errors = _migrate(f.full, tgt, PipelineOptions(rewrite=rewrite))
        except UnsupportedRdbError:
            continue  # the parser's call (7.0 release-candidate functions): not the transform's
        except CacheMigrateError as exc:
            failures[f.path] = [f"parse/transform: {exc}"]
            continue
        problems = errors + _same(_state(ref), _state(tgt), rewrite)
        if problems:
            failures[f.path] = problems[:5]
        checked += 1
    assert not failures, "\n".join(f"{p}: {x}" for p, xs in failures.items() for x in xs)
    assert checked >= 50


@requires_corpus(NEWER)
def test_newer_files_apply_to_redis7_without_errors(servers: tuple[RedisServer, RedisServer]) -> None:
    _, tgt = servers
    failures: dict[str, list[str]] = {}
    checked = 0
    for f in NEWER:
        tgt.client().flushall()
        try:
            _t, errors = _migrate(f.full, tgt, PipelineOptions())
        except FormatError:
            continue  # the parser refuses it (vendor opcodes): not the transform's business
        except CacheMigrateError as exc:
            failures[f.path] = [f"parse/transform: {exc}"]
            continue
        if errors:
            failures[f.path] = errors[:5]
        checked += 1
    assert not failures, "\n".join(f"{p}: {x}" for p, xs in failures.items() for x in xs)
    assert checked >= 20, checked
