"""Helpers for the backup-source tests: load an AOF natively, import it with the reader, compare."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from cachemigrate.engine.readers.aof_file import AofFileReader
from cachemigrate.engine.readers.base import ReaderContext, RecordTransform
from cachemigrate.engine.sources import BucketFiles
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import RecordingSink
from cachemigrate.engine.transform import Transformer
from cachemigrate.engine.writers import WriterOptions, open_writer
from cachemigrate.formats.rdb.model import RdbHeader
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import probe_target
from support.compare import Comparison
from support.compare import compare_servers as compare_sides
from support.corpus import CORPUS
from support.servers import RedisServer

GENERATED = CORPUS / "generated-local"


@dataclass
class Imported:
    reader: AofFileReader
    sink: RecordingSink
    commands_written: int
    failures: list[object] = field(default_factory=list)

    def warnings(self) -> list[str]:
        return [m for lvl, m in self.sink.logs if lvl.value == "warning"]


async def import_paths(
    paths: Sequence[str],
    target: RedisServer,
    *,
    files: BucketFiles | None = None,
    options: PipelineOptions | None = None,
) -> Imported:
    """Drive AofFileReader into a real target with the engine's writer (what run_pipeline does)."""
    opts = options or PipelineOptions()
    ep = Endpoint.from_url(target.url)
    info = await probe_target(ep)

    def factory(header: RdbHeader) -> RecordTransform:
        return Transformer(opts, header, info)

    sink = RecordingSink()
    reader = AofFileReader(paths, ReaderContext(opts, factory, sink), files=files)
    writer = await open_writer(ep, WriterOptions(multi_db=True), info=info)
    try:
        try:
            async for batch in reader.batches():
                await writer.write(batch)
        finally:
            await writer.flush()
    finally:
        await writer.close()
    return Imported(reader, sink, writer.stats.commands_written, list(writer.failures))


async def compare_servers(a: RedisServer, b: RedisServer) -> Comparison:
    """Every key of every db, with the independent comparator (support.compare)."""
    return await asyncio.to_thread(compare_sides, [a.client()], [b.client()])
