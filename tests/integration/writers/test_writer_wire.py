"""Entries that come packed (``Packed``, the RESTORE fast path) are sent as they are."""

from __future__ import annotations

from cachemigrate.engine.entry import Command, Entry, Packed
from cachemigrate.engine.status import KeyFailure
from cachemigrate.engine.writers import StandaloneWriter, WriterOptions
from cachemigrate.formats.dump import parse_payload, restore_packer
from cachemigrate.protocol.commands import pack_command
from cachemigrate.protocol.endpoint import Endpoint
from support.servers import RedisServer


async def test_wire_entries_mixed_with_argv_entries_dbs_and_large_values(
    source_redis: RedisServer, target_redis: RedisServer
) -> None:
    src = source_redis.client()
    pack = restore_packer(True)
    entries: list[Entry] = []
    for i in range(3000):
        key = b"k:%d" % i
        value = b"v" * (40_000 if i % 500 == 7 else i % 300)  # some above the writer's LARGE_ARG
        src.set(key, value)
        payload = src.dump(key)
        assert isinstance(payload, bytes)
        type_byte, raw, version = parse_payload(payload)
        db = 1 if i % 1000 >= 900 else 0
        if i % 4 == 3:  # a plain command in between
            argv: list[bytes] = [b"SET", key, value]
            entries.append(Command(list(argv), db, key, len(pack_command(argv)), i + 1, "string"))
        else:
            wire = pack(key, -1, type_byte, raw, version)
            entries.append(Packed(wire, len(wire), b"RESTORE", key, db, i + 1, "string"))
    failures: list[KeyFailure] = []
    w = StandaloneWriter(Endpoint.from_url(target_redis.url),
                         WriterOptions(batch_bytes=64 << 10, on_failure=failures.append))
    await w.start()
    for i in range(0, len(entries), 700):
        await w.write(entries[i : i + 700])
    await w.flush()
    tgt0, tgt1 = target_redis.client(db=0), target_redis.client(db=1)
    for i, e in enumerate(entries):
        c = tgt1 if e.db == 1 else tgt0
        assert c.get(e.key) == src.get(e.key), i  # type: ignore[arg-type]
    assert w.stats.keys_written == len(entries) and w.stats.applied_offset == len(entries)
    # A refused packed entry is reported with its name and key.
    refused = restore_packer(False)(b"k:1", -1, 0, b"\x01x", 10)
    await w.write([Packed(refused, len(refused), b"RESTORE", b"k:1", 0, 9999, "string")])
    await w.flush()
    await w.close()
    assert [(f.command, f.key) for f in failures] == [("RESTORE", b"k:1")]
    assert "BUSYKEY" in failures[0].error
