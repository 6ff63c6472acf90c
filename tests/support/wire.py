"""An entry as the argument list the target receives (``Entry.wire`` unpacked when it is set)."""

from __future__ import annotations

from cachemigrate.engine.entry import Entry
from cachemigrate.protocol.resp import parse_commands


def full_argv(e: Entry) -> list[bytes]:
    """The command of ``e``: its packed ``wire`` parsed back, or its ``argv``."""
    if e.wire is None:
        return [bytes(a) for a in e.argv]
    (argv,), _, consumed = parse_commands(e.wire)
    assert consumed == len(e.wire), "an entry's wire holds exactly one command"
    return [bytes(a) for a in argv]
