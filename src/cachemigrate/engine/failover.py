"""A source that moved: the checkpoint of server A continued on server B after a failover.

When A's replica B is promoted (``REPLICAOF NO ONE``, Sentinel, a managed service's failover), B
keeps A's history: its ``master_replid2`` is A's replid and its offsets go on from A's, so a
replica of A may continue on B with ``PSYNC <A's replid> <offset + 1>`` (PSYNC2), as long as the
offset is not beyond where B left A (``second_repl_offset``). A migration pointed at B with A's
checkpoint does the same:

- A checkpoint names its server (``source``) so that it is never applied to another one that
  merely answers. B proves it holds the same history when the checkpoint's replid is its
  ``master_replid`` or ``master_replid2`` (INFO replication): the checkpoint is then taken as
  B's, with ``extra["moved_from"]`` = A. Any other server still refuses it (the sync reader's
  "belongs to" error). Cluster checkpoints (per shard) are not followed.
- The exactly-once marker (engine/exactly_once.py) is per source address: A's marker in the target
  is the exact position applied from A (the checkpoint can be a second behind it) and is where B
  continues from. A marker of B with B's current replid is from a run on B that stopped before it
  saved a checkpoint: it is further on and wins. The applier deletes A's marker in its first
  transaction on B, together with writing B's, so one of the two always says where the target is.
- If B cannot continue (the offset is beyond its copy of A's history: writes A acknowledged that
  never reached B), PSYNC answers FULLRESYNC and the usual rules apply: resume mode auto flushes
  the target and copies B anew (counted in ``resumes_fullresync``), manual stops with an error.
"""

from __future__ import annotations

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.exactly_once import read_marker
from cachemigrate.engine.readers.source_offsets import fetch_info
from cachemigrate.engine.status import EventSink, LogLevel
from cachemigrate.errors import CacheMigrateError
from cachemigrate.protocol.endpoint import Endpoint

MOVED_FROM = "moved_from"


async def follow_failover(
    start: Checkpoint, endpoint: Endpoint, target: Endpoint | None, events: EventSink
) -> Checkpoint:
    """``start`` taken over by ``endpoint`` when that server continues its history (see the
    module docstring), else ``start`` itself. ``target``: a standalone target, for its markers."""
    new = endpoint.address
    if start.source == new or start.phase != "incremental" or "shards" in start.extra or not start.replid:
        return start
    try:
        info = await fetch_info(endpoint, "replication")
    except (CacheMigrateError, OSError, TimeoutError):
        return start  # the reader's own connection says what is wrong
    current, previous = info.get("master_replid", ""), info.get("master_replid2", "")
    if start.replid not in (current, previous):
        return start
    extra = {**start.extra, MOVED_FROM: start.source}
    point = Checkpoint(new, start.replid, start.offset, phase="incremental", extra=extra)
    how = "its replication id" if start.replid == current else "its previous replication id (replid2)"
    events.log(LogLevel.INFO, f"{new}: the checkpoint of {start.source} (offset {start.offset}) continues "
               f"here: {new} has {start.source}'s history as {how}")
    if target is None:
        return point
    try:
        old, mine = await read_marker(target, start.source), await read_marker(target, new)
    except (CacheMigrateError, OSError, TimeoutError) as exc:
        events.log(LogLevel.WARNING, f"{new}: cannot read the offset markers in the target ({exc}); "
                   "resuming from the checkpoint: commands after it may be applied twice")
        return point
    if mine is not None and mine.replid == current and mine.offset > point.offset:
        point = Checkpoint(new, current, mine.offset, phase="incremental", extra={**extra, "db": mine.db})
    elif old is not None and old.replid == start.replid and old.offset > point.offset:
        point = Checkpoint(new, start.replid, old.offset, phase="incremental", extra={**extra, "db": old.db})
    if point.offset != start.offset:
        events.log(LogLevel.INFO, f"{new}: the target has applied up to offset {point.offset} "
                   f"(checkpoint: {start.offset}); continuing from there")
    return point
