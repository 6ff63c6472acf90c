"""SyncReader driven directly (no pipeline): silent links, progress, checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from online_workload import FAST, Online, check_equal, seed

from cachemigrate.engine.exactly_once import marker_key
from cachemigrate.engine.readers.base import ReaderContext
from cachemigrate.engine.readers.sync import SyncReader
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import Phase, RecordingSink
from cachemigrate.engine.transform import TargetCaps, Transformer
from cachemigrate.engine.writers import open_writer
from cachemigrate.formats.rdb.model import RdbHeader
from cachemigrate.protocol.endpoint import Endpoint
from support.poll import until
from support.servers import RedisServer

OPTIONS = PipelineOptions(incremental=True)


def _factory(header: RdbHeader) -> Transformer:
    return Transformer(OPTIONS, header, TargetCaps(rdb_version=10))


async def test_kill_inside_the_snapshot_resyncs_and_flushes(
    redis_factory: Callable[..., RedisServer],
) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client())
    c = source.client()
    p = c.pipeline(transaction=False)
    for i in range(25_000):
        p.set(f"big:{i}", os.urandom(1000))  # ~25 MB: more than the socket buffers hold
    p.execute()
    sink = RecordingSink()
    reader = SyncReader(Endpoint.from_url(source.url), ReaderContext(OPTIONS, _factory, sink))
    writer = await open_writer(Endpoint.from_url(target.url))
    batches = reader.batches()
    try:
        await writer.write(await anext(batches))
        assert reader.progress().phase is Phase.FULL
        # The reader is not reading: the master is stuck inside the transfer when the link dies.
        await until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 1, what="the transfer")
        assert int(c.execute_command("CLIENT", "KILL", "TYPE", "replica")) == 1
        for i in range(200):
            c.delete(f"big:{i}")  # deleted while the snapshot is re-done: must go from the target
        c.set("during", "resync")
        while reader.progress().phase is not Phase.INCREMENTAL or target.client().get("during") is None:
            await writer.write(await asyncio.wait_for(anext(batches), 30))
        await writer.flush()
        p = reader.progress()
        assert p.resumes_fullresync == 1 and p.resumes_continue == 0
        assert any("FULLRESYNC" in m for _, m in sink.logs)
        check_equal([source.client()], [target.client()])
        cp = reader.checkpoint(writer.stats.applied_offset)
        assert cp is not None and cp.phase == "incremental"
    finally:
        reader.stop()
        await batches.aclose()
        await writer.close()


async def test_silent_link_is_dropped_and_continued(redis_factory: Callable[..., RedisServer]) -> None:
    # The source PINGs its replicas every 10 s: a 1.5 s repl-timeout sees an idle link as dead.
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    source.client().set("a", 1)
    sink = RecordingSink()
    reader = SyncReader(Endpoint.from_url(source.url), ReaderContext(OPTIONS, _factory, sink),
                        repl_timeout=1.5)
    writer = await open_writer(Endpoint.from_url(target.url))

    async def pump() -> None:
        async for batch in reader.batches():
            await writer.write(batch)

    task = asyncio.create_task(pump())
    try:
        await until(lambda: reader.progress().resumes_continue >= 1, what="a +CONTINUE resume")
        p = reader.progress()
        assert p.resumes_continue >= 1 and p.resumes_fullresync == 0
        assert any("no data from" in m for _, m in sink.logs)
        source.client().set("b", 2)
        await until(lambda: target.client().get("b") == b"2", what="b on the target")
        assert target.client().get("a") == b"1" and target.client().get("b") == b"2"
        await writer.flush()
        cp = reader.checkpoint(writer.stats.applied_offset)
        assert cp is not None and cp.phase == "incremental"
        assert cp.offset <= int(source.client().info("replication")["master_repl_offset"])
        assert reader.progress().phase is Phase.INCREMENTAL
    finally:
        reader.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.close()


async def test_source_restarted_empty_is_followed(redis_factory: Callable[..., RedisServer]) -> None:
    # A new replid and offsets starting again near 0: the reader resyncs and flushes the target.
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        before = online.last.applied_offset if online.last else None
        source.restart()  # --save "": it comes back empty
        c = source.client()
        c.set("new", "life")
        await online.wait_for(lambda s: s.resumes_fullresync == 1 and s.phase is Phase.INCREMENTAL)
        c.rpush("after", 1, 2)
        await online.wait_for(lambda s: s.caught_up and target.client().exists("after") == 1)
        check_equal([source.client()], [target.client()])
        keys = sorted(target.client().scan_iter())
        assert keys == sorted([b"after", b"new", marker_key(f"127.0.0.1:{source.port}")])
    finally:
        final = await online.finish()
    assert final.applied_offset is not None and before is not None and final.applied_offset > before
    cp = await online.store.load()
    info = source.client().info("replication")
    assert cp is not None and cp.replid == info["master_replid"]
    assert 0 < cp.offset <= info["master_repl_offset"]  # the source's own numbering again
