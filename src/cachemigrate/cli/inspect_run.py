"""What `cachemigrate inspect FILE` does: read an RDB without a server and report what it holds."""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

from cachemigrate.errors import ConfigError
from cachemigrate.formats.rdb import RdbParser
from cachemigrate.formats.rdb.kinds import file_vendor, type_kind
from cachemigrate.formats.rdb.model import Aux, End, Function, KeyRecord, ModuleAux, Record, ValueChunk


def run_inspect(*, path: str, top: int = 10, as_json: bool = False) -> None:
    """The options of inspect_cmd.inspect_file, by the same names."""
    aux: dict[str, str] = {}
    per_db: Counter[int] = Counter()
    per_type: Counter[str] = Counter()
    expires = functions = module_aux = 0
    biggest: list[tuple[int, int, bytes, str]] = []  # min-heap of (size, db, key, type)
    checksum: int | None = None
    parser = RdbParser(source=path)
    for rec in _records(parser, path):
        kind = type(rec)
        if kind is KeyRecord:
            assert isinstance(rec, KeyRecord)
            per_db[rec.db] += 1
            t = type_kind(rec.type_byte, file_vendor(parser.header) if parser.header else "redis")
            per_type[t] += 1
            expires += rec.expire_ms >= 0
            size = len(rec.value) if not rec.big else rec.end_offset - rec.offset
            item = (size, rec.db, rec.key, t)
            if len(biggest) < top:
                heapq.heappush(biggest, item)
            elif size > biggest[0][0]:
                heapq.heapreplace(biggest, item)
        elif kind is ValueChunk:
            continue
        elif isinstance(rec, Aux):
            aux[rec.key.decode(errors="replace")] = rec.value.decode(errors="replace")
        elif isinstance(rec, Function):
            functions += 1
        elif isinstance(rec, ModuleAux):
            module_aux += 1
        elif isinstance(rec, End):
            checksum = rec.checksum
    header = parser.header
    assert header is not None
    report: dict[str, Any] = {
        "file": path,
        "size": os.path.getsize(path),
        "magic": header.magic,
        "rdb_version": header.version,
        "producer": (aux.get("valkey-ver") and f"valkey {aux['valkey-ver']}")
        or (f"redis {aux['redis-ver']}" if "redis-ver" in aux else "unknown"),
        "keys": sum(per_db.values()),
        "keys_per_db": dict(sorted(per_db.items())),
        "keys_per_type": dict(per_type.most_common()),
        "keys_with_expiry": expires,
        "functions": functions,
        "module_aux": module_aux,
        "checksum": "disabled" if checksum == 0 else "absent" if checksum is None else f"{checksum:016x} ok",
        "aux": aux,
        "biggest_keys": [
            {"db": db, "key": key.decode(errors="backslashreplace"), "type": t, "bytes": size}
            for size, db, key, t in sorted(biggest, reverse=True)
        ],
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print(report)


def _records(parser: RdbParser, path: str) -> Iterator[Record]:
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from None
    with fh:
        while not parser.done:
            data = fh.read(8 << 20)
            if not data:
                break
            parser.feed(data)
            yield from parser.records()
    parser.close()


def _print(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape  # file and key names may hold "[...]"
    from rich.table import Table

    out = Console()
    out.print(f"[bold]{escape(str(r['file']))}[/]: {r['magic']} RDB version {r['rdb_version']}, "
              f"by {escape(str(r['producer']))}, {r['size']:,} bytes, checksum {r['checksum']}",
              highlight=False)
    out.print(f"keys: {r['keys']:,} (with expiry: {r['keys_with_expiry']:,}); per db: {r['keys_per_db']}; "
              f"functions: {r['functions']}; module aux records: {r['module_aux']}", highlight=False)
    t = Table(title="keys per type")
    t.add_column("type")
    t.add_column("keys", justify="right")
    for name, n in r["keys_per_type"].items():
        t.add_row(name, f"{n:,}")
    out.print(t)
    b = Table(title="biggest keys (serialized bytes)")
    for col in ("db", "key", "type", "bytes"):
        b.add_column(col)
    for k in r["biggest_keys"]:
        b.add_row(str(k["db"]), escape(k["key"]), k["type"], f"{k['bytes']:,}")
    out.print(b)
