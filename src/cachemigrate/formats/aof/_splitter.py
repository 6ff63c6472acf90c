"""A streaming splitter of the RESP part of an AOF into commands with their exact file offsets.

The part is a whole plain AOF, or the tail after an RDB preamble. The splitting itself is
``protocol.resp.parse_commands`` (hiredis when available); this module adds what an AOF loader
needs around it: ``#`` annotation lines (``#TS:<unix>``) are skipped, anything that is not
``*``-framed is a format error naming its offset, and at the end of the file a partial last
command is told apart from damage (a truncated tail can be dropped like ``aof-load-truncated``;
a malformed one cannot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cachemigrate.errors import AofFormatError, ProtocolError
from cachemigrate.protocol.resp import parse_commands

RDB_MAGICS: Final = (b"REDIS", b"VALKEY")
_MAX_HEADER = 32  # "*<argc>" / "$<len>" lines are short; a longer one is damage, not a partial line
_STAR, _DOLLAR, _HASH = 42, 36, 35


def is_rdb_start(head: bytes) -> bool:
    """True when a file starts with an RDB (an RDB file, a multi-part base, an RDB preamble)."""
    return head.startswith(RDB_MAGICS)


@dataclass(slots=True)
class AofCommand:
    argv: list[bytes]
    offset: int  # file offset of the command's first byte
    size: int  # bytes from `offset` to the end of the command

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class Truncation:
    """A partial last command: the file ends ``nbytes`` into a command that starts at ``offset``."""

    offset: int
    nbytes: int


class AofSplitter:
    """Feed file bytes, pull whole commands with offsets; ``close()`` at the end of the file.

    ``base_offset`` is the file offset of the first byte fed (the end of an RDB preamble).
    Commands are returned in file order. When damage is found, the whole commands before it are
    returned first and the AofFormatError is raised by the next ``commands()`` or ``close()``:
    a loader keeps everything before the damage and then stops with the error.
    """

    __slots__ = ("_accelerated", "_base", "_buf", "_error", "_more", "_more_len", "_need", "source")

    def __init__(
        self, *, source: str | None = None, base_offset: int = 0, accelerated: bool | None = None
    ) -> None:
        self.source = source
        self._buf = b""
        self._more: list[bytes] = []  # fed after _buf, joined only when a parse can make progress
        self._more_len = 0
        self._base = base_offset  # file offset of _buf[0]
        self._accelerated = accelerated
        self._error: AofFormatError | None = None
        self._need = 0  # buffered bytes needed before the pending command can be whole

    @property
    def offset(self) -> int:
        """File offset up to which the input has been split into whole commands."""
        return self._base

    @property
    def pending(self) -> int:
        return len(self._buf) + self._more_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._more.append(bytes(data))
            self._more_len += len(data)

    def _joined(self) -> bytes:
        if self._more:
            self._buf = b"".join([self._buf, *self._more]) if self._buf else b"".join(self._more)
            self._more.clear()
            self._more_len = 0
        return self._buf

    def commands(self) -> list[AofCommand]:
        if self._error is not None:
            raise self._error
        out: list[AofCommand] = []
        if self.pending < self._need:
            return out  # a big command still arriving: no copying or parsing until it can be whole
        buf = self._joined()
        self._need = 0
        n = len(buf)
        pos = 0
        try:
            while pos < n:
                c = buf[pos]
                if c == _HASH:  # annotation line, e.g. "#TS:1700000000"
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        break
                    pos = nl + 1
                    continue
                if c != _STAR:
                    raise self._bad(pos, f"expected '*' at the start of a command, got {buf[pos:pos + 1]!r}")
                # Hand the parser runs that hold no annotation, so that hiredis splits them all.
                cut = buf.find(b"\n#", pos)
                end = n if cut < 0 else cut + 1
                done = self._split(buf, pos, end, out)
                if done == pos and end < n:
                    done = self._split(buf, pos, n, out)  # the "\n#" was inside a value
                if done == pos:
                    at, reason, need = _first_problem(buf, pos)
                    if reason is not None:
                        raise self._bad(at, reason)
                    self._need = need - pos  # no new attempt before that many bytes are buffered
                    break
                pos = done
        except AofFormatError as exc:
            if not out:
                raise
            self._error = exc
        self._buf = buf[pos:]
        self._base += pos
        return out

    def close(self) -> Truncation | None:
        """End of file: None when it ended after a whole command, else where the partial one starts."""
        if self._error is not None:
            raise self._error
        buf = self._joined()
        if not buf or (buf[0] == _HASH and b"\n" not in buf):
            return None  # nothing, or a last annotation line without its newline
        at, reason, _ = _first_problem(buf, 0)
        if reason is not None:
            raise self._bad(at, reason)
        return Truncation(self._base + at, len(buf) - at)

    def _split(self, buf: bytes, pos: int, end: int, out: list[AofCommand]) -> int:
        data = buf if pos == 0 and end == len(buf) else buf[pos:end]
        try:
            cmds, sizes, consumed = parse_commands(data, accelerated=self._accelerated)
        except ProtocolError:
            at, reason, _ = _first_problem(buf, pos)
            if at > pos:
                self._split(buf, pos, at, out)  # the whole commands before the damage
            raise self._bad(at, reason or "malformed command") from None
        start = pos
        base = self._base
        for argv, size in zip(cmds, sizes, strict=True):
            s = start
            start += size
            first = buf[s]
            if first == _STAR:
                # The RESP parser skips "*0"/"*-1" as Redis does for clients, folding their bytes
                # into the next command; in an AOF they are damage (argc < 1 is fmterr in aof.c).
                if not argv or buf.startswith((b"*0\r", b"*-"), s):
                    raise self._bad(s, "bad argument count")
                out.append(AofCommand(argv, base + s, size))
            elif first != _HASH:  # an inline command or a bare newline: not AOF framing
                raise self._bad(s, f"expected '*' at the start of a command, got {buf[s:s + 1]!r}")
        return pos + consumed

    def _bad(self, at: int, reason: str) -> AofFormatError:
        return AofFormatError(f"bad AOF format: {reason}", offset=self._base + at, source=self.source)


def _header(buf: bytes, pos: int) -> tuple[int | None, int, str | None]:
    """Read "<digits>\\r\\n" at pos: (value or None when incomplete, next pos, problem)."""
    nl = buf.find(b"\r\n", pos, pos + _MAX_HEADER)
    digits = buf[pos:nl] if nl >= 0 else buf[pos : pos + _MAX_HEADER]
    if nl < 0 and pos + len(digits) == len(buf) and digits.endswith(b"\r"):
        digits = digits[:-1]  # the buffer ends between CR and LF
    if not digits.isdigit() and not (nl < 0 and not digits):
        return None, pos, f"bad length line {digits[:_MAX_HEADER]!r}"
    if nl < 0:
        if len(digits) >= _MAX_HEADER - 2:
            return None, pos, "length line not terminated by CRLF"
        return None, pos, None
    return int(digits), nl + 2, None


def _first_problem(buf: bytes, pos: int) -> tuple[int, str | None, int]:
    """Walk the framing of whole commands from ``pos`` (no values are made).

    Returns (offset of the first command that is malformed or incomplete, the problem or None
    when it is merely incomplete, the buffer length it needs at least before it can be whole);
    (len(buf), None, 0) when every command is whole. Like the server's loader, the two bytes
    after an argument are skipped, not checked.
    """
    n = len(buf)
    while pos < n:
        start = pos
        if buf[pos] == _HASH:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                return start, None, n + 1
            pos = nl + 1
            continue
        if buf[pos] != _STAR:
            return start, f"expected '*' at the start of a command, got {buf[pos:pos + 1]!r}", 0
        argc, pos, why = _header(buf, pos + 1)
        if argc is None:
            return start, why, n + 1
        if argc < 1:
            return start, f"bad argument count {argc}", 0
        for i in range(argc):
            if pos >= n:
                return start, None, n + 1
            if buf[pos] != _DOLLAR:
                got = buf[pos : pos + 1]
                return start, f"expected '$' for argument {i + 1} at offset +{pos - start}, got {got!r}", 0
            size, pos, why = _header(buf, pos + 1)
            if size is None:
                return start, None if why is None else f"argument {i + 1}: {why}", n + 1
            pos += size + 2
            if pos > n:
                return start, None, pos
    return n, None, 0
