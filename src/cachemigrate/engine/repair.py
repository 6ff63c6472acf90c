"""Repair of what a verification (engine/verify.py) still finds different: each key is copied
again from the source — DUMP + ``RESTORE ... REPLACE ABSTTL`` with its expire time, through the
engine's own transform and writer (``readers.scan.ScanReader.read_keys``, ``writers.open_writer``),
so a target of an older version or another vendor gets the rewrite path as in a migration; a key
absent from the source is deleted from the target. Payloads the target still refuses are sent
again as plain commands (``options.rewrite``). A key goes through the migration's rules (its
target db and new name); ``skip_expiring_within`` is not applied to a key being repaired.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence

from cachemigrate.engine.comparer import BATCH
from cachemigrate.engine.differences import Difference
from cachemigrate.engine.entry import Command, Entry
from cachemigrate.engine.readers.scan import ScanReader
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import EventSink, KeyFailure, LogLevel
from cachemigrate.engine.transform import Transformer
from cachemigrate.engine.writers import WriterOptions, open_writer
from cachemigrate.errors import PayloadRejectedError, server_error
from cachemigrate.formats.rdb.model import RdbHeader
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import TargetInfo, probe_target


async def repair_keys(
    source: Endpoint, target: Endpoint, diffs: Sequence[Difference], events: EventSink,
    migration: PipelineOptions | None,
) -> tuple[int, int]:
    """Copy every key of ``diffs`` again from the source (delete it from the target where the
    source has none), through the migration's rules; returns (keys written, keys refused)."""
    rules = migration.filters if migration is not None else None
    if rules is not None and rules.skip_expiring_within_ms:
        rules = dataclasses.replace(rules, skip_expiring_within_ms=0)  # a key being repaired is copied
    base = dataclasses.replace(migration, filters=rules) if migration is not None else PipelineOptions()
    info = await probe_target(target)
    failures: list[KeyFailure] = []
    writer = await open_writer(target, WriterOptions(replace=True, on_failure=failures.append,
                                                     multi_db=True, client_name="cachemigrate-repair"),
                               info=info)
    try:
        by_db: dict[int, list[Difference]] = {}
        for d in diffs:
            by_db.setdefault(d.db, []).append(d)
        for db, group in sorted(by_db.items()):
            await _repair_db(source, info, db, group, writer.write, events, base, rewrite=False)
        await writer.flush()
        # Payloads the target refused after all (a version or encoding the probe did not tell):
        # the same keys once more as plain commands.
        rejected = [f for f in failures if f.key is not None and _payload_refused(f)]
        if rejected:
            failures[:] = [f for f in failures if f not in rejected]
            idents = {(f.db, f.key) for f in rejected}
            again: dict[int, list[Difference]] = {}
            for d in diffs:
                if (d.tdb, d.target_key) in idents:
                    again.setdefault(d.db, []).append(d)
            events.log(LogLevel.INFO, f"repair: {len(rejected)} payloads refused by the target; "
                       "sending those keys as plain commands")
            for db, group in sorted(again.items()):
                await _repair_db(source, info, db, group, writer.write, events, base, rewrite=True)
            await writer.flush()
        stats = writer.stats
    finally:
        await writer.close()
    for f in failures[:10]:
        key = f.key.decode("utf-8", "backslashreplace") if f.key is not None else "-"
        events.log(LogLevel.ERROR, f"repair: db {f.db} key {key!r}: {f.command}: {f.error}")
    # The refused payloads sent again are not failures: the keys still refused are.
    return stats.keys_written, len({(f.db, f.key) for f in failures})


def _payload_refused(f: KeyFailure) -> bool:
    return f.command.upper() == "RESTORE" and isinstance(server_error(f.error), PayloadRejectedError)


async def _repair_db(
    source: Endpoint, info: TargetInfo, db: int, diffs: list[Difference],
    write: Callable[[Sequence[Entry]], Awaitable[None]], events: EventSink, base: PipelineOptions, *,
    rewrite: bool,
) -> None:
    options = dataclasses.replace(base, replace=True, rewrite=rewrite, c_walker=False, incremental=False,
                                  flush_target=False)

    def transform(header: RdbHeader) -> Transformer:
        return Transformer(options, header, info, packed=False)

    reader = ScanReader(source, options, transform_factory=transform, events=events)
    deletes: list[Entry] = [Command([b"DEL", d.target_key], db=d.tdb, key=d.target_key, tag="del")
                            for d in diffs if not d.source.exists]
    copies = [d.key for d in diffs if d.source.exists]
    if deletes:
        await write(deletes)
    if not copies:
        return
    conn = await Connection.open(source, db=db, name="cachemigrate-repair")
    try:
        for i in range(0, len(copies), BATCH):
            entries = await reader.read_keys(conn, db, copies[i:i + BATCH])
            if entries:
                await write(entries)
    finally:
        await conn.close()
