"""Writers: send entries to a target. ``open_writer`` picks standalone or cluster by probing."""

from __future__ import annotations

from cachemigrate.engine.writers.base import Writer, WriterOptions, WriterStats
from cachemigrate.engine.writers.cluster import ClusterWriter
from cachemigrate.engine.writers.standalone import StandaloneWriter
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import TargetInfo, probe_target


async def open_writer(
    endpoint: Endpoint, options: WriterOptions | None = None, *, info: TargetInfo | None = None
) -> Writer:
    """A started writer for ``endpoint``: a ClusterWriter when the target is a cluster.

    ``info`` is a probe the caller already made (otherwise the target is probed here).
    """
    if info is None:
        info = await probe_target(endpoint)
    writer: ClusterWriter | StandaloneWriter
    writer = ClusterWriter(endpoint, options) if info.cluster else StandaloneWriter(endpoint, options)
    await writer.start()
    return writer


__all__ = [
    "ClusterWriter",
    "StandaloneWriter",
    "Writer",
    "WriterOptions",
    "WriterStats",
    "open_writer",
]
