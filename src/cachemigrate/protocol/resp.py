"""Sans-IO RESP2/RESP3 codec: a reply reader (``feed()`` / ``gets()``) and a request parser.

The reply reader is ``hiredis.Reader`` when hiredis is importable (the accelerator), else the
pure-Python ``PyReplyReader`` with the same interface. Both return error replies as
``ErrorReply`` values (never raised), return ``NEED_DATA`` when a reply is incomplete, and raise
``ProtocolError`` on malformed input. RESP3 maps become dicts, sets/pushes lists, nulls None.

The request parser (``parse_commands`` / ``CommandStream``) turns an AOF (or a request stream) into
commands plus the exact byte length of each: replication offsets count bytes. The replication
stream goes through ``frames.py`` (runs of commands as bytes), whose pure-Python path is this
parser. It parses many commands per call. With hiredis it lets the C reader split the arrays and
computes each command's length from its arguments (the encoding Redis writes is canonical);
every command start is checked to be ``*`` so a non-canonical stream falls back to the exact
pure-Python parser.
Measured on SET/HSET streams: ~2.7 us per command with hiredis vs ~5.2 us pure Python (hiredis is
fed 16 KiB at a time: it moves its unread bytes down after every reply, which is quadratic over
one large feed).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Final, Protocol, cast

from cachemigrate.errors import ProtocolError

hiredis: ModuleType | None
try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a hard dependency; the fallback is tested
    hiredis = None

HAS_HIREDIS: Final = hiredis is not None


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"

    def __bool__(self) -> bool:
        return False


NEED_DATA: Final = _NeedData()
"""What ``gets()`` returns while no complete reply is buffered (RESP3 ``#f`` is False, so not False)."""


class ErrorReply(Exception):
    """An error reply (``-ERR ...``), returned as a value by the readers."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ReplyReader(Protocol):
    def feed(self, data: bytes | bytearray | memoryview, off: int = 0, length: int = -1, /) -> None: ...

    def gets(self) -> Any: ...

    def has_data(self) -> bool: ...


def reply_reader(*, accelerated: bool | None = None) -> ReplyReader:
    """A new reply reader: hiredis when available (or ``accelerated=True``), else pure Python."""
    if accelerated is None:
        accelerated = HAS_HIREDIS
    if accelerated:
        if hiredis is None:
            raise RuntimeError("hiredis is not installed")
        reader = hiredis.Reader(
            protocolError=ProtocolError, replyError=ErrorReply, notEnoughData=NEED_DATA
        )
        return cast(ReplyReader, reader)
    return PyReplyReader()


class _Incomplete(Exception):
    pass


_AGGREGATES = frozenset(b"*~>")


class PyReplyReader:
    """Pure-Python reply reader; the same contract as the hiredis one."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray | memoryview, off: int = 0, length: int = -1, /) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        view = memoryview(data)
        self._buf += view[off:] if length < 0 else view[off : off + length]

    def has_data(self) -> bool:
        """Whether bytes of an incomplete reply (or unread replies) are buffered."""
        return self._pos < len(self._buf)

    def gets(self) -> Any:
        try:
            value, pos = self._parse(self._pos)
        except _Incomplete:
            return NEED_DATA
        self._pos = pos
        return value

    def _line(self, pos: int) -> tuple[bytes, int]:
        nl = self._buf.find(b"\r\n", pos)
        if nl < 0:
            raise _Incomplete
        return bytes(self._buf[pos:nl]), nl + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        buf = self._buf
        if pos >= len(buf):
            raise _Incomplete
        kind = buf[pos]
        line, pos = self._line(pos + 1)
        if kind == 43:  # +
            return line, pos
        if kind == 45:  # -
            return ErrorReply(line.decode("utf-8", "replace")), pos
        if kind in (58, 40):  # : and ( (big number)
            return (int(line) if kind == 58 else line), pos
        if kind in (36, 61, 33):  # $ bulk, = verbatim, ! bulk error
            size = _int(line)
            if size < 0:
                return None, pos
            end = pos + size
            if end + 2 > len(buf):
                raise _Incomplete
            data = bytes(buf[pos:end])
            if kind == 61:
                data = data[4:]  # "txt:" prefix
            elif kind == 33:
                return ErrorReply(data.decode("utf-8", "replace")), end + 2
            return data, end + 2
        if kind in _AGGREGATES or kind in (37, 124):  # * ~ > % |
            count = _int(line)
            if count < 0:
                return None, pos
            if kind in (37, 124):
                count *= 2
            items = []
            for _ in range(count):
                item, pos = self._parse(pos)
                items.append(item)
            if kind == 37:
                return dict(zip(items[::2], items[1::2], strict=True)), pos
            return items, pos
        if kind == 95:  # _ null
            return None, pos
        if kind == 35:  # # boolean
            return line == b"t", pos
        if kind == 44:  # , double
            return float(line), pos
        raise ProtocolError(f"Protocol error, got {chr(kind)!r} as reply type byte")


def _int(line: bytes) -> int:
    try:
        return int(line)
    except ValueError:
        raise ProtocolError(f"Protocol error, bad length {line[:32]!r}") from None


Command = list[bytes]


def parse_commands(
    data: bytes, *, accelerated: bool | None = None, inline: bool = True
) -> tuple[list[Command], list[int], int]:
    """Split ``data`` into complete commands.

    Returns ``(commands, sizes, consumed)``: ``sizes[i]`` is the number of bytes from the end of
    the previous command (or the start of ``data``) to the end of command ``i`` (so bare ``\\n``
    keepalives count toward the next command), ``consumed`` the bytes fully parsed, including
    trailing keepalives. A trailing incomplete command is left unconsumed. Without ``inline``, a
    line that is not a RESP array is a ProtocolError (a master never sends one: Redis drops such a
    master as desynchronised).
    """
    if accelerated is None:
        accelerated = HAS_HIREDIS
    if accelerated and hiredis is not None:
        return _parse_hiredis(data, inline)
    return _parse_py(data, 0, inline)


def _parse_py(buf: bytes, pos: int, inline: bool = True) -> tuple[list[Command], list[int], int]:
    commands: list[Command] = []
    sizes: list[int] = []
    n = len(buf)
    find = buf.find
    start = pos  # end of the previous command
    try:
        while pos < n:
            if buf[pos] == 42:  # '*'
                nl = find(b"\r\n", pos)
                if nl < 0:
                    break
                argc = _int(buf[pos + 1 : nl])
                p = nl + 2
                args: Command = []
                for _ in range(argc):
                    if p >= n:
                        raise _Incomplete
                    if buf[p] != 36:
                        raise ProtocolError(f"expected '$' at byte {p}, got {buf[p:p + 1]!r}")
                    nl = find(b"\r\n", p)
                    if nl < 0:
                        raise _Incomplete
                    size = _int(buf[p + 1 : nl])
                    if size < 0:  # a request's arguments are never nil (the two bytes after
                        # one are skipped unread, as the server does)
                        raise ProtocolError(f"bad bulk length {size} at byte {p}")
                    end = nl + 2 + size
                    if end + 2 > n:
                        raise _Incomplete
                    args.append(buf[nl + 2 : end])
                    p = end + 2
                pos = p
                if not args:
                    continue  # "*0" / "*-1": Redis skips them; their bytes count toward the next
            elif buf[pos] == 10:  # bare "\n" keepalive
                pos += 1
                continue
            else:  # inline command
                if not inline:
                    raise ProtocolError(f"not a RESP array at byte {pos}: {buf[pos:pos + 40]!r}")
                nl = find(b"\n", pos)
                if nl < 0:
                    break
                args = buf[pos:nl].split()
                pos = nl + 1
                if not args:
                    continue
            commands.append(args)
            sizes.append(pos - start)
            start = pos
    except _Incomplete:
        pass
    return commands, sizes, pos


_WINDOW = 16 << 10


def _parse_hiredis(buf: bytes, inline: bool = True) -> tuple[list[Command], list[int], int]:
    n = len(buf)
    if not n or buf[0] != 42 or hiredis is None:
        return _parse_py(buf, 0, inline)
    commands: list[Command] = []
    sizes: list[int] = []
    pos = 0
    reader = hiredis.Reader(protocolError=ProtocolError, notEnoughData=NEED_DATA)
    gets = reader.gets
    fed = 0
    try:
        while pos < n:
            cmd = gets()
            if cmd is NEED_DATA and fed < n:
                # Feed in windows: hiredis moves its unread bytes down after each reply, which is
                # quadratic over one huge feed.
                reader.feed(buf, fed, min(_WINDOW, n - fed))
                fed += _WINDOW
                continue
            if cmd is NEED_DATA:
                break
            if not cmd:
                raise ProtocolError("empty array")  # skipped by the exact parser below
            # The canonical encoding's length: "*N\r\n", then per argument "$L\r\n" data "\r\n".
            argc = len(cmd)
            lens = tuple(map(len, cmd))
            end = pos + 3 + len(str(argc)) + 5 * argc + sum(lens) + len(b"%d" * argc % lens)
            if buf[end - 2 : end] != b"\r\n" or (end < n and buf[end] != 42):
                # Not canonical, or a keepalive / inline command follows: the exact parser
                # takes over from this command's start.
                raise ProtocolError("resync")
            commands.append(cmd)
            sizes.append(end - pos)
            pos = end
    except (ProtocolError, TypeError):
        more, more_sizes, end = _parse_py(buf, pos, inline)
        return commands + more, sizes + more_sizes, end
    return commands, sizes, pos


def _bytes_needed(buf: bytes) -> int:
    """How long ``buf`` must be before its first (incomplete) command can complete (0: unknown).

    Lets a stream skip re-parsing while a large value is still arriving.
    """
    n = len(buf)
    if not n or buf[0] != 42:
        return 0
    nl = buf.find(b"\r\n")
    if nl < 0:
        return 0
    try:
        argc = int(buf[1:nl])
        p = nl + 2
        for _ in range(argc):
            nl = buf.find(b"\r\n", p)
            if p >= n or buf[p] != 36 or nl < 0:
                return 0
            p = nl + 2 + int(buf[p + 1 : nl]) + 2
            if p > n:
                return p
    except ValueError:
        return 0
    return 0


class CommandStream:
    """Incremental request parser: feed bytes as they arrive, pop complete commands with sizes.

    While a large command is still arriving, ``pop`` neither joins nor re-parses the buffer.
    """

    __slots__ = ("_accelerated", "_chunks", "_inline", "_need", "_size")

    def __init__(self, *, accelerated: bool | None = None, inline: bool = True) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._need = 0
        self._accelerated = accelerated
        self._inline = inline

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(self._chunks[-1])

    def pop(self) -> tuple[list[Command], list[int], int]:
        if self._size < self._need or not self._chunks:
            return [], [], 0
        buf = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        commands, sizes, consumed = parse_commands(buf, accelerated=self._accelerated, inline=self._inline)
        rest = buf[consumed:] if consumed else buf
        self._chunks = [rest] if rest else []
        self._size = len(rest)
        self._need = _bytes_needed(rest)
        return commands, sizes, consumed

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a complete command."""
        return self._size
