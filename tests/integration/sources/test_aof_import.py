"""Every AOF form of the corpus, imported by AofFileReader, equals the same AOF loaded by Redis."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sources_support import GENERATED, compare_servers, import_paths

from cachemigrate.errors import AofFormatError
from support.corpus import CORPUS, manifest
from support.servers import RedisServer, native_aof, require_redis6

CASES = [
    ("redis-6.0.9-single-aof-plain/appendonly.aof", False, 25),
    ("redis-6.0.9-single-aof-rdbpreamble/appendonly.aof", False, 25),
    ("redis-7.0.15-multipart-rdbpreamble/appendonlydir", True, 26),
    ("redis-7.0.15-multipart-resp-base/appendonlydir", True, 26),
]


@pytest.mark.parametrize(("rel", "multipart", "keys"), CASES, ids=[c[0].split("/")[0] for c in CASES])
async def test_corpus_aof_matches_native_load(
    rel: str, multipart: bool, keys: int, redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    source = GENERATED / rel
    native = native_aof(redis_factory, tmp_path, "native", source, multipart=multipart)
    target = redis_factory("target")
    done = await import_paths([str(source)], target)
    assert not done.failures
    report = await compare_servers(native, target)
    assert report.ok, report.summary()
    assert report.compared == keys


async def test_functions_and_ttls_follow(redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    source = GENERATED / "redis-7.0.15-multipart-rdbpreamble" / "appendonlydir"
    native = native_aof(redis_factory, tmp_path, "native", source, multipart=True)
    target = redis_factory("target")
    done = await import_paths([str(source)], target)
    assert native.client().function_list() == target.client().function_list() != []
    [base, incr] = done.reader.sources
    assert (base.keys, base.commands, base.rdb_end) == (22, 0, base.size)
    assert (incr.keys, incr.commands, incr.state) == (0, 20, "done")


async def test_redisshake_cr_stripped_incr_fails_naming_file_and_offset(
    redis_factory: Callable[..., RedisServer],
) -> None:
    # MANIFEST: Redis 7.0.15 refuses this set ("Bad file format reading the append only file
    # appendonly.aof.2.incr.aof"); its base alone loads 10016 keys.
    folder = CORPUS / "redisshake" / "test" / "aof_test" / "appendonlydir"
    target = redis_factory("target")
    with pytest.raises(AofFormatError) as err:
        await import_paths([str(folder)], target)
    exc = err.value
    assert exc.source == str(folder / "appendonly.aof.2.incr.aof") and exc.offset == 0
    assert "appendonly.aof.2.incr.aof" in str(exc) and "offset 0" in str(exc)
    assert target.client().dbsize() == 10016  # every key of the base went in before the damage


def _cut(tmp: Path, source: Path, at: int) -> Path:
    out = tmp / "cut" / source.name
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(source.read_bytes()[:at])
    return out


@pytest.mark.parametrize("where", ["inside-last-command", "inside-multi"])
async def test_truncated_aof_stops_at_last_whole_command(
    where: str, redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    source = GENERATED / "redis-6.0.9-single-aof-rdbpreamble" / "appendonly.aof"
    data = source.read_bytes()
    if where == "inside-last-command":
        at = len(data) - 7
    else:  # the 2nd MULTI block, cut between its INCRBY and its EXEC
        multi = data.rfind(b"*1\r\n$5\r\nMULTI\r\n")
        at = data.index(b"*1\r\n$4\r\nEXEC\r\n", multi) + 5
    cut = _cut(tmp_path, source, at)
    native = native_aof(redis_factory, tmp_path, "native", cut, multipart=False)  # aof-load-truncated yes
    target = redis_factory("target")
    done = await import_paths([str(cut)], target)
    report = await compare_servers(native, target)
    assert report.ok, report.summary()
    [src] = done.reader.sources
    assert src.state == "truncated" and done.reader.truncated == [src]
    [warning] = done.warnings()
    assert str(cut) in warning and "the import stops at the last whole command" in warning
    if where == "inside-multi":
        assert f"MULTI block started at offset {multi}" in warning and "rolled back" in warning, warning
    else:
        assert "ends inside a command at offset" in warning


async def test_truncated_base_of_multipart_is_an_error(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    folder = tmp_path / "appendonlydir"
    shutil.copytree(GENERATED / "redis-7.0.15-multipart-resp-base" / "appendonlydir", folder)
    base = folder / "appendonly.aof.2.base.aof"
    size = base.stat().st_size
    base.write_bytes(base.read_bytes()[:-3])
    target = redis_factory("target")
    with pytest.raises(AofFormatError) as err:
        await import_paths([str(folder / "appendonly.aof.manifest")], target)
    assert err.value.source == str(base) and "not the last file" in str(err.value)
    assert err.value.offset is not None and 0 < err.value.offset < size


async def test_damage_in_the_middle_names_file_and_offset(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    source = GENERATED / "redis-6.0.9-single-aof-plain" / "appendonly.aof"
    data = bytearray(source.read_bytes())
    name = data.index(b"$4\r\nSADD\r\n", len(data) // 2)  # a command in the second half
    start = data.rindex(b"*", 0, name)
    data[name] = ord("%")  # its "$4" becomes "%4"
    bad = tmp_path / "damaged.aof"
    bad.write_bytes(bytes(data))
    target = redis_factory("target")
    with pytest.raises(AofFormatError) as err:
        await import_paths([str(bad)], target)
    assert (err.value.source, err.value.offset) == (str(bad), start)
    assert f"damaged.aof, offset {start}" in str(err.value)
    # what came before the damage is in the target: the SELECT'ed keys written until then
    assert target.client().dbsize() + sum(target.client(db=d).dbsize() for d in (1, 2)) > 0


@pytest.mark.parametrize("rel", [c[0] for c in CASES[:2]], ids=["plain", "rdbpreamble"])
async def test_redis6_files_into_redis6_match_its_own_load(
    rel: str, redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    binary = require_redis6()
    source = GENERATED / rel
    native = native_aof(redis_factory, tmp_path, "native", source, multipart=False, binary=binary)
    target = redis_factory("target", binary=binary)
    done = await import_paths([str(source)], target)
    assert not done.failures
    report = await compare_servers(native, target)
    assert report.ok and report.compared == 25, report.summary()


def _third_party_loadable() -> list[str]:
    return sorted(
        f.path for f in manifest()
        if f.path.endswith(".aof") and f.redis7_loads and not f.path.startswith("generated-local")
    )


@pytest.mark.parametrize("rel", _third_party_loadable())
async def test_third_party_aofs_that_redis7_loads_match_its_load(
    rel: str, redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    source = CORPUS / rel
    native = native_aof(redis_factory, tmp_path, "native", source, multipart=False)
    target = redis_factory("target")
    done = await import_paths([str(source)], target)
    # appendonly-with-ts.aof holds pre-GA 7.0 FUNCTION syntax: 7.0.15 refuses it while loading
    # too (a loading server ignores error replies), so the data still matches.
    assert all(f.command == "FUNCTION" for f in done.failures), done.failures[:3]  # type: ignore[attr-defined]
    report = await compare_servers(native, target)
    assert report.ok, report.summary()
    assert native.client().function_list() == target.client().function_list()
