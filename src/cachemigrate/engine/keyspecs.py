"""Every key of a command, its name and its group, from Redis's key specifications.

What the filters (engine/filters.py) and the Lua ``function`` hook (engine/script.py) see of a
command of the replication stream or an AOF: ``CMD`` (the name, a subcommand joined to its
container with ``-``: ``XGROUP-CREATE``, as RedisShake names it), ``GROUP`` (Redis's command
group, upper case: ``STRING``, ``SORTED_SET``...) and ``KEY_INDEXES`` (0-based here; the script
sees them 1-based). The table is generated from a server's ``COMMAND INFO`` / ``COMMAND DOCS``
(scripts/gen_command_table.py); a command it lacks has its key at argument 1 (the rule of nearly
every data command), and the group of its name's family where one is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cachemigrate.engine._command_table import TABLE

# Commands newer than the generated table (Redis 7.4-8.x, Valkey 8-9): key at 1, group known.
_LATER: Final = {
    name: ("HASH", (("i", 1, "r", 0, 1, 0),))
    for name in (b"HEXPIRE", b"HPEXPIRE", b"HEXPIREAT", b"HPEXPIREAT", b"HPERSIST", b"HTTL", b"HPTTL",
                 b"HEXPIRETIME", b"HPEXPIRETIME", b"HGETDEL", b"HGETEX", b"HSETEX")
} | {b"DELIFEQ": ("STRING", (("i", 1, "r", 0, 1, 0),))}
_FALLBACK: Final = ("", (("i", 1, "r", 0, 1, 0),))


@dataclass(frozen=True, slots=True)
class CommandInfo:
    name: str  # "SET", "XGROUP-CREATE"
    group: str  # "STRING", "" when unknown
    key_indexes: tuple[int, ...]  # positions in argv (0-based) of every key, in order


def _find(specs: tuple[tuple[str | bytes | int, ...], ...], argv: list[bytes]) -> tuple[int, ...]:
    argc = len(argv)
    out: list[int] = []
    for spec in specs:
        if spec[0] == "i":
            first = int(spec[1])
            find = spec[2:]
        else:
            kw, start = spec[1], int(spec[2])
            find = spec[3:]
            rng = range(start, argc) if start >= 0 else range(argc + start, 0, -1)
            first = -1
            for i in rng:
                if 0 < i < argc and bytes(argv[i]).upper() == kw:
                    first = i + 1
                    break
            if first < 0:
                continue
        kind, a, b, c = find[0], int(find[1]), int(find[2]), int(find[3])
        if kind == "r":
            lastkey, step, limit = a, b, c
            if lastkey >= 0:
                last = first + lastkey
            elif limit <= 1:
                last = argc + lastkey
            else:
                last = first + (argc - first) // limit + lastkey
        else:
            numidx, firstkey, step = a, b, c
            if first + numidx >= argc:
                continue
            try:
                numkeys = int(argv[first + numidx])
            except ValueError:
                continue
            first = first + firstkey
            last = first + (numkeys - 1) * step
        out.extend(i for i in range(first, min(last, argc - 1) + 1, max(step, 1)) if i > 0)
    return tuple(out)


def command_info(argv: list[bytes], name: bytes | None = None) -> CommandInfo:
    """``name``: ``argv[0].upper()`` when the caller has it already."""
    if name is None:
        name = bytes(argv[0]).upper()
    display = name
    row = TABLE.get(name) or _LATER.get(name)
    if row is not None and len(argv) > 1 and not row[1]:  # a container: the subcommand decides
        sub = name + b"|" + bytes(argv[1]).upper()
        subrow = TABLE.get(sub)
        if subrow is not None:
            row, display = subrow, name + b"-" + bytes(argv[1]).upper()
    group, specs = row if row is not None else _FALLBACK
    return CommandInfo(display.decode(errors="replace"), group, _find(specs, argv))
