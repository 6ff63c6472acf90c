"""The replication stream's framing: commands found in a buffer as *segments*, not as objects.

``scan(buf, special)`` splits ``buf`` (RESP arrays of bulk strings, as a master sends them) into
``Segment`` tuples ``(argv, start, stop, count)``:

- a *run*: ``argv`` None, ``count`` whole commands back to back in ``buf[start:stop]``, none of
  them named in ``special``: bytes a target can take as they are (the incremental fast path);
- a *special* command: its ``argv``, its bytes ``buf[start:stop]``, ``count`` 1. ``special`` is a
  tuple of upper-case command names, matched without case; None makes every command special (the
  per-command path: filters, scripts, cluster targets).

Bare ``\\n`` keepalives and empty arrays end a run and are in no segment; ``end``, the position
after the last whole command (and the keepalives after it), counts them: replication offsets
count every byte. ``need`` > 0 is the length ``buf`` must reach before its incomplete tail can
complete (a large value still arriving), else 0.

The C accelerator (``_frames.c``) does the work when it is built; the pure-Python twin below (the
exact parser of ``resp.py``, grouped) gives the same answer and is what runs without it. At bytes
that are not a RESP array the C scan stops and hands over to the exact parser, which raises the
``ProtocolError`` with its words (or, for a form the C scan does not take, parses it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cachemigrate.protocol.resp import _bytes_needed, _parse_py

Segment = tuple[list[bytes] | None, int, int, int]
Scan = Callable[[bytes, int, "tuple[bytes, ...] | None"], tuple[list[Segment], int, int]]

c_scan: Scan | None
try:
    from . import _frames
except ImportError:  # no compiler at install time: the pure-Python twin runs
    c_scan = None
else:
    c_scan = _frames.scan

HAS_C_SCAN: Final = c_scan is not None


def scan(
    buf: bytes, special: tuple[bytes, ...] | None, *, accelerated: bool | None = None
) -> tuple[list[Segment], int, int]:
    """``(segments, end, need)`` of ``buf``; see the module docstring."""
    if accelerated is None:
        accelerated = HAS_C_SCAN
    if not accelerated or c_scan is None:
        return py_scan(buf, 0, special)
    segments, end, need = c_scan(buf, 0, special)
    if need >= 0:
        return segments, end, need
    more, end, need = py_scan(buf, end, special)  # raises unless it is a form C leaves
    if segments and more and segments[-1][0] is None and more[0][0] is None and segments[-1][2] == more[0][1]:
        _, start, _, count = segments.pop()
        more[0] = (None, start, more[0][2], count + more[0][3])
    return segments + more, end, need


def py_scan(buf: bytes, pos: int, special: tuple[bytes, ...] | None) -> tuple[list[Segment], int, int]:
    """The pure-Python ``scan`` from ``pos`` (the exact parser of ``resp.py``, grouped)."""
    commands, sizes, end = _parse_py(buf, pos, inline=False)
    names = frozenset(special) if special is not None else None
    segments: list[Segment] = []
    run_start = run_count = 0
    prev = pos  # end of the previous command (keepalives and empty arrays may follow it)
    for argv, size in zip(commands, sizes, strict=True):
        stop = prev + size
        start = _command_start(buf, prev)
        plain = names is not None and bytes(argv[0]).upper() not in names
        if plain and run_count and start == prev:
            run_count += 1
        else:
            if run_count:
                segments.append((None, run_start, prev, run_count))
            run_count = 0
            if plain:
                run_start, run_count = start, 1
            else:
                segments.append(([bytes(a) for a in argv], start, stop, 1))
        prev = stop
    if run_count:
        segments.append((None, run_start, prev, run_count))
    need = _bytes_needed(buf[end:])
    return segments, end, end + need if need else 0


def _command_start(buf: bytes, at: int) -> int:
    """Where the command after ``at`` starts: past keepalives and empty arrays ("*0", "*-1")."""
    while True:
        while buf[at : at + 1] == b"\n":
            at += 1
        nl = buf.find(b"\r\n", at)
        if buf[at : at + 1] != b"*" or buf[at + 1 : nl] not in (b"0", b"-1"):
            return at
        at = nl + 2
