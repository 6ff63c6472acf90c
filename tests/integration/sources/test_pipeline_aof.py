"""The same AOF imports through run_pipeline (SourceKind.AOF_FILES)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sources_support import GENERATED, compare_servers

from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import Endpoint, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import Phase, RecordingSink
from cachemigrate.errors import AofFormatError
from support.corpus import CORPUS
from support.servers import RedisServer, native_aof


async def _run(paths: list[str], target: RedisServer) -> RecordingSink:
    sink = RecordingSink()
    spec = PipelineSpec(source=SourceSpec(SourceKind.AOF_FILES, paths=tuple(paths)),
                        target=Endpoint.from_url(target.url), name="aof")
    final = await run_pipeline(spec, events=sink)
    assert final.phase is Phase.DONE
    return sink


async def test_multipart_aof_through_the_pipeline(redis_factory: Callable[..., RedisServer],
                                                  tmp_path: Path) -> None:
    source = GENERATED / "redis-7.0.15-multipart-rdbpreamble" / "appendonlydir"
    native = native_aof(redis_factory, tmp_path, "native", source, multipart=True)
    target = redis_factory("target")
    sink = await _run([str(source)], target)
    report = await compare_servers(native, target)
    assert report.ok and report.compared == 26, report.summary()
    assert sink.last is not None and sink.last.commands_failed == 0


async def test_damaged_set_fails_the_pipeline_naming_file_and_offset(
    redis_factory: Callable[..., RedisServer],
) -> None:
    folder = CORPUS / "redisshake" / "test" / "aof_test" / "appendonlydir"
    target = redis_factory("target")
    sink = RecordingSink()
    spec = PipelineSpec(source=SourceSpec(SourceKind.AOF_FILES, paths=(str(folder),)),
                        target=Endpoint.from_url(target.url), name="aof")
    with pytest.raises(AofFormatError, match=r"appendonly\.aof\.2\.incr\.aof, offset 0"):
        await run_pipeline(spec, events=sink)
    assert any("appendonly.aof.2.incr.aof" in m for _, m in sink.logs)
