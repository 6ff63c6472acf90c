"""The merged cluster reader maps its own sequence numbers back to per-shard offsets."""

from __future__ import annotations

from typing import Any

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.entry import Command
from cachemigrate.engine.readers.base import ReaderContext
from cachemigrate.engine.readers.cluster_source import ClusterSourceReader
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import NullSink
from cachemigrate.protocol.endpoint import Endpoint


class _Shard:
    def __init__(self, port: int) -> None:
        self.endpoint = Endpoint(port=port)
        self.asked: list[int] = []

    def checkpoint(self, applied: int) -> Checkpoint:
        self.asked.append(applied)
        return Checkpoint(self.endpoint.address, "r", applied, phase="incremental" if applied > 0 else "full")


def _reader(*shards: _Shard) -> ClusterSourceReader:
    context = ReaderContext(PipelineOptions(), lambda h: None, NullSink())  # type: ignore[arg-type,return-value]
    r = ClusterSourceReader(Endpoint(port=7000), context)
    r.shards = list(shards)  # type: ignore[arg-type]
    r._shard_applied = [-1] * len(shards)
    return r


def _batch(*offsets: int) -> list[Command]:
    return [Command([b"SET", b"k", b"v"], source_offset=o) for o in offsets]


def test_sequence_maps_back_to_each_shard() -> None:
    a, b = _Shard(7001), _Shard(7002)
    r = _reader(a, b)
    first = r._renumber(0, _batch(9, 9, 10))  # shard a: a group whose offset moves at its end
    second = r._renumber(1, _batch(50, 60))
    assert [e.source_offset for e in first + second] == [1, 2, 3, 4, 5]
    cp = r.checkpoint(2)  # half of shard a's batch applied
    assert a.asked[-1] == 9 and b.asked[-1] == -1
    assert cp is not None and cp.phase == "full" and cp.offset == 2
    cp = r.checkpoint(4)
    assert a.asked[-1] == 10 and b.asked[-1] == 50
    assert cp is not None and cp.phase == "incremental"
    shards: dict[str, Any] = cp.extra["shards"]
    assert shards["127.0.0.1:7001"]["offset"] == 10 and shards["127.0.0.1:7002"]["offset"] == 50
    r.checkpoint(5)
    assert b.asked[-1] == 60 and not r._history
