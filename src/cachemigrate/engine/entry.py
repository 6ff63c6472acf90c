"""The unit of work that flows from a reader through the transform to a writer.

An ``Entry`` is one of four kinds, a class each; writers dispatch on the class:

- ``Command``: one command as its argument list, which the writer packs;
- ``Packed``: one command already packed in RESP (the RESTORE fast path builds it in one go);
- ``PackedRun``: ``count`` commands packed back to back, all in ``db``: the C walker's RESTORE run
  (``formats/rdb/_walk.c``, one per key, tag "restore"), or a run of the replication stream's
  commands passed on as the source sent them (``protocol/frames.py``, tag "", name b"": the
  commands are the stream's, of any name). Only the standalone writer takes it: it finds a failed
  command's name and key by parsing ``wire``. The cluster writer refuses it (it cannot route it).
- ``Piece``: part of ONE command too large to hold, a big key's RESTORE whose payload is streamed
  from the source (``engine/streamed.py``): the pieces of a command come back to back, in order,
  in one db; the last one is the command (``count`` 1, its tag, its end offset), the others have
  ``count`` 0 and the key's start offset. Standalone writer only, like a run.

What every kind has: ``db``, the target database the command runs in (after db mapping), ``-1``
for any (FUNCTION LOAD, FLUSHALL, SCRIPT...); ``key``, the key the command touches, which the
cluster writer routes on and errors name (None for commands without a key, and for a run);
``size``, the wire size used for flow control (a Command's is an estimate, 0: the writer
computes it); ``source_offset``, the source position reached once the entry is applied (file
bytes consumed, or the replication offset: what a checkpoint records; for a run, once its last
command is applied); ``tag``, what it stands for in the summary: the RDB type name on the first
command of a key ("string", "hash"...), "" on the following commands of the same key and on
stream commands; ``name``, the command name; ``wire`` (None for a Command) and ``count`` (1 but
for a run). The class attributes among these let a writer read every kind alike in bulk
(``map(attrgetter("wire"), entries)``) with no per-entry branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

Arg = bytes | bytearray | memoryview


@final
@dataclass(slots=True)
class Command:
    """One command: ``argv[0]`` is its name."""

    argv: list[Arg]
    db: int = 0
    key: bytes | None = None
    size: int = 0
    source_offset: int = 0
    tag: str = ""
    wire: ClassVar[None] = None
    count: ClassVar[int] = 1

    @property
    def name(self) -> bytes:
        return bytes(self.argv[0]) if self.argv else b""


@final
@dataclass(slots=True)
class Packed:
    """One command packed in RESP; ``size`` is ``len(wire)``.

    Made once per key on the RESTORE fast path, positionally: keyword arguments to a slots
    dataclass cost 2.5x the positional call (285 vs 112 ns with CPython 3.11).
    """

    wire: bytes
    size: int
    name: bytes
    key: bytes
    db: int
    source_offset: int
    tag: str
    count: ClassVar[int] = 1


@final
@dataclass(slots=True)
class PackedRun:
    """``count`` commands packed back to back in ``wire`` (``size`` = ``len(wire)``): RESTOREs, one
    per key (the defaults), or stream commands (``tag`` "", ``name`` b"": of any name)."""

    wire: bytes
    size: int
    count: int
    db: int
    source_offset: int
    tag: str = "restore"
    name: bytes = b"RESTORE"
    key: ClassVar[None] = None


@final
@dataclass(slots=True)
class Piece:
    """Part of one streamed command (``size`` = ``len(wire)``). ``charge``, on the first piece
    only, is the whole command's wire size: the writer's in-flight budget is charged it once,
    and given it back when the command's reply is in."""

    wire: bytes
    size: int
    charge: int
    count: int  # 1 on the last piece (the reply answers it), 0 before
    key: bytes
    db: int
    source_offset: int
    tag: str = ""
    name: ClassVar[bytes] = b"RESTORE"


Entry = Command | Packed | PackedRun | Piece
Routable = Command | Packed  # what the cluster writer can route, one key (or none) each
