"""Helpers for the backup-source tests: load an AOF natively, import it with the reader, compare."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


def native_aof(
    factory: Callable[..., RedisServer],
    tmp: Path,
    name: str,
    source: Path,
    *,
    multipart: bool,
    binary: str | None = None,
) -> RedisServer:
    """A real redis-server that loaded ``source`` itself (one AOF file, or a multi-part folder).

    Redis 7 (the default) adopts a single file as the base of a new multi-part set
    (aofUpgradePrepare); ``binary`` may be the 6.0.9 one for single files.
    """
    server_dir = tmp / name
    server_dir.mkdir(parents=True, exist_ok=True)
    if multipart:
        shutil.copytree(source, server_dir / "appendonlydir")
    else:
        shutil.copy(source, server_dir / "appendonly.aof")
    args = ["--appendonly", "yes", "--appendfilename", "appendonly.aof", "--aof-load-truncated", "yes"]
    if binary is None:
        args += ["--appenddirname", "appendonlydir"]
    return factory(name, args=args, binary=binary)


async def compare_servers(a: RedisServer, b: RedisServer) -> Comparison:
    """Every key of every db, with the independent comparator (support.compare)."""
    return await asyncio.to_thread(compare_sides, [a.client()], [b.client()])
