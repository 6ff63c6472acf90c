"""The unit of work that flows from a reader through the transform to a writer."""

from __future__ import annotations

from dataclasses import dataclass

Arg = bytes | bytearray | memoryview


@dataclass(slots=True)
class Entry:
    """One command for the target.

    ``argv[0]`` is the command name. ``db`` is the target database the command must run in
    (after db mapping); ``-1`` means any database (FUNCTION LOAD, FLUSHALL, SCRIPT...). ``key`` is
    the key the command touches: the cluster writer routes on it and errors name it (None for
    commands without a key). ``size`` is the wire size estimate used for flow control (0: the
    writer computes it). ``source_offset`` is the source position reached once this entry is
    applied (file bytes consumed, or the replication offset): what a checkpoint records.
    ``tag`` says what the entry stands for in the summary: the RDB type name for the first
    command of a key ("string", "hash"...), "" for the following commands of the same key and
    for stream commands. ``wire`` is the command already packed in RESP (the RESTORE fast path
    builds it in one go): writers send it as it is, ``argv`` then holds only the command name and
    the key (for routing and error messages) and ``size`` is ``len(wire)``.

    ``count`` > 1: ``wire`` holds that many commands, one per key (the C walker's RESTORE run,
    ``formats/rdb/_walk.c``), all in ``db``; ``key`` is None and ``source_offset`` is reached
    once the last of them is applied. Only the standalone writer takes such entries: it finds a
    failed command's key by parsing ``wire``.
    """

    argv: list[Arg]
    db: int = 0
    key: bytes | None = None
    size: int = 0
    source_offset: int = 0
    tag: str = ""
    wire: bytes | None = None
    count: int = 1
