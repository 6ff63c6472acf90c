"""Every AOF form of the corpus, imported by AofFileReader, equals the same AOF loaded by Redis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sources_support import GENERATED, compare_servers, import_paths, native_aof

from support.servers import RedisServer

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
    assert report.ok, report.examples
    assert report.keys_compared == keys
