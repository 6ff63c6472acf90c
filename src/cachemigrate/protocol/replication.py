"""The replica side of Redis replication: handshake, RDB transfer, command stream with offsets.

One ``ReplicationLink`` is one TCP connection to a master, used in this order::

    link = ReplicationLink(endpoint)
    await link.connect()                      # PING, AUTH, REPLCONF listening-port / capa
    result = await link.psync(replid, offset)  # PSYNC ... -> FullResync | Continue
    if result.full:
        async for chunk in link.rdb():        # the RDB, streamed in chunks, never spooled whole
            ...
    async for batch in link.commands():       # [(argv, offset after argv), ...] per read
        ...
    # or, the stream as segments of the buffer read (protocol/frames.py): runs of commands not
    # named in `special`, passed on as bytes, and the special ones parsed
    async for chunk in link.frames(special):  # StreamChunk(data, segments, base) per read
        ...
    await link.close()

Offsets follow the master's own count (``master_repl_offset``): the FULLRESYNC offset plus every
byte of the stream consumed, PINGs and REPLCONF GETACK included even though they are not
forwarded. ``REPLCONF ACK <offset>`` is sent once a second from a task and at once on GETACK.
Dual-channel sync (Valkey 8+) is deliberately not advertised. See ``docs``: formats.md §5.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from cachemigrate.errors import ConnectionLostError, ProtocolError, ServerError, server_error
from cachemigrate.protocol.commands import CommandArg, pack_command
from cachemigrate.protocol.dialer import authenticate, connection_error, open_stream
from cachemigrate.protocol.endpoint import Endpoint, decimal
from cachemigrate.protocol.frames import Segment, scan

EOF_MARK_SIZE = 40
DEFAULT_REPL_TIMEOUT = 60.0
CHUNK = (1 << 20) - (16 << 10)  # the same read size as the file reader's (rdb_file.CHUNK)
COALESCE_BYTES = 512 << 10
COALESCE_WAIT = 0.002

StreamCommand = tuple[list[bytes], int]  # argv, replication offset just after it
_LINK_SPECIAL = (b"PING", b"REPLCONF")  # the link's own: counted in the offset, never yielded


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """What one read of the stream completed: ``segments`` of ``data`` (``protocol/frames.py``;
    the master's PING and REPLCONF taken out), and ``base``, the replication offset just before
    ``data[0]``: a segment ending at ``stop`` ends at offset ``base + stop``."""

    data: bytes
    segments: list[Segment]
    base: int


class RetryLaterError(ServerError):
    """The master cannot serve a sync now (-NOMASTERLINK, -LOADING): try again later."""


class SyncRefusedError(ServerError):
    """The server refuses to act as a master for us (PSYNC/SYNC unknown, NOPERM...)."""


@dataclass(frozen=True, slots=True)
class PsyncResult:
    """``full``: +FULLRESYNC (an RDB follows, the stream starts at ``offset``); else +CONTINUE
    (the stream continues at ``offset``, the one we asked for minus one). ``replid`` is the id to
    use from now on (the new one after ``+CONTINUE <newid>``)."""

    full: bool
    replid: str
    offset: int


class EofMarkSplitter:
    """Finds the end of a diskless RDB: the 40-byte mark after the payload, possibly split.

    ``feed()`` returns the payload bytes that are certainly not part of the mark; the last 40
    bytes seen are held back until more data proves they are payload. Once ``done``, the bytes
    that followed the mark are in ``remainder`` (the start of the command stream).
    """

    __slots__ = ("_tail", "done", "mark", "remainder")

    def __init__(self, mark: bytes) -> None:
        if len(mark) != EOF_MARK_SIZE:
            raise ProtocolError(f"EOF mark must be {EOF_MARK_SIZE} bytes, got {len(mark)}")
        self.mark = mark
        self._tail = b""
        self.done = False
        self.remainder = b""

    def feed(self, data: bytes) -> bytes:
        if self.done:
            self.remainder += data
            return b""
        buf = self._tail + data if self._tail else data
        at = buf.find(self.mark)
        if at >= 0:
            self.done = True
            self.remainder = buf[at + EOF_MARK_SIZE :]
            self._tail = b""
            return buf[:at]
        keep = min(len(buf), EOF_MARK_SIZE - 1)
        self._tail = buf[len(buf) - keep :]
        return buf[: len(buf) - keep]


class ReplicationLink:
    """One replication connection to a master (see the module docstring for the order of calls)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        repl_timeout: float = DEFAULT_REPL_TIMEOUT,
        ack_interval: float = 1.0,
        chunk_size: int = CHUNK,
        throttle: Callable[[int], Awaitable[None]] | None = None,
        accelerated: bool | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.accelerated = accelerated  # the C framing scan (None: when built; frames.py)
        self._name = endpoint.display_url()  # how errors name the master (as Connection's do)
        self.repl_timeout = repl_timeout
        self.ack_interval = ack_interval
        self.chunk_size = chunk_size
        self.throttle = throttle
        self.offset = 0  # replication offset of the last byte of the stream consumed
        self.rdb_size: int | None = None  # announced size; None for a diskless transfer
        self.rdb_received = 0
        self.bytes_read = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ack_task: asyncio.Task[None] | None = None
        self._leftover = b""  # stream bytes that arrived with the end of the RDB

    # ---- handshake ------------------------------------------------------------------------

    async def connect(self) -> None:
        self._reader, self._writer = await open_stream(self.endpoint, limit=CHUNK * 2)
        reply = await self._call(b"PING")
        if not reply.startswith(("+", "-")):
            # Not a Redis server (a banner, an HTTP answer): its words are not repeated to a
            # caller the network policy speaks for.
            raise connection_error(self.endpoint, "", f"not a Redis server: PING answered {reply[:80]!r}")
        if reply.startswith("-") and not reply.startswith(("-NOAUTH", "-NOPERM")):
            raise server_error(reply[1:], command=b"PING")
        await authenticate(self.endpoint, self._checked_call)
        sock = self._writer.get_extra_info("sockname")
        port = sock[1] if isinstance(sock, tuple) and len(sock) > 1 else 0
        # Both REPLCONFs are advisory: an old or restricted master may refuse them.
        await self.replconf(b"listening-port", port)
        await self.replconf(b"capa", b"eof", b"capa", b"psync2")

    async def replconf(self, *args: CommandArg) -> bool:
        """``REPLCONF args...`` before PSYNC; False when the master refused it (an option it does
        not know, such as ``rdb-only`` before Redis 7.0)."""
        return not (await self._call(b"REPLCONF", *args)).startswith("-")

    async def psync(self, replid: str | None, offset: int) -> PsyncResult:
        """``PSYNC replid offset`` (``offset`` is the first byte wanted) or ``PSYNC ? -1``."""
        if replid is None:
            reply = await self._call(b"PSYNC", b"?", b"-1")
        else:
            reply = await self._call(b"PSYNC", replid, offset)
        if reply.startswith("+FULLRESYNC"):
            parts = reply.split()
            magnitude = decimal(parts[2].removeprefix("-")) if len(parts) == 3 else None
            if magnitude is None:
                raise ProtocolError(f"bad FULLRESYNC reply {reply[:80]!r}")
            self.offset = -magnitude if parts[2].startswith("-") else magnitude
            return PsyncResult(True, parts[1], self.offset)
        if reply.startswith("+CONTINUE"):
            parts = reply.split()
            if replid is None:
                raise ProtocolError("CONTINUE in reply to PSYNC ? -1")
            self.offset = offset - 1
            self._start_acks()
            return PsyncResult(False, parts[1] if len(parts) > 1 else replid, self.offset)
        if reply.startswith(("-NOMASTERLINK", "-LOADING")):
            raise RetryLaterError(reply[1:], command=b"PSYNC")
        if reply.startswith("-"):
            raise SyncRefusedError(reply[1:], command=b"PSYNC")
        raise ProtocolError(f"unexpected PSYNC reply {reply[:80]!r}")

    async def _call(self, *args: CommandArg) -> str:
        """One request of the handshake and its reply line (error replies start with "-")."""
        self._send(pack_command(args))
        return await self._read_line()

    async def _checked_call(self, *args: CommandArg) -> str:
        reply = await self._call(*args)
        if reply.startswith("-"):
            name = args[0]
            raise server_error(reply[1:], command=name if isinstance(name, bytes) else None)
        return reply

    def _send(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionLostError(f"replication link to {self._name} is closed")
        self._writer.write(data)

    async def _read_line(self) -> str:
        return (await self._read_raw_line()).decode("utf-8", "replace")

    async def _read_raw_line(self) -> bytes:
        """One reply line, skipping the bare newlines a master sends as keepalives."""
        while True:
            raw = await self._guarded(self._stream().readuntil(b"\n"))
            line = raw.rstrip(b"\r\n")
            if line:
                return line

    def _stream(self) -> asyncio.StreamReader:
        if self._reader is None:
            raise ConnectionLostError("replication link not connected")
        return self._reader

    async def _guarded(self, op: Awaitable[bytes], *, idle: float | None = None) -> bytes:
        """Await a read within the replication timeout; any failure is a lost link. With ``idle``,
        a read that waits that long raises TimeoutError instead, for the caller to act on."""
        try:
            async with asyncio.timeout(self.repl_timeout if idle is None else idle):  # no task
                data = await op
        except TimeoutError:
            if idle is not None:
                raise
            raise self._silent() from None
        except asyncio.IncompleteReadError:
            raise ConnectionLostError(f"{self._name} closed the replication link") from None
        except (OSError, asyncio.LimitOverrunError) as exc:
            raise ConnectionLostError(f"replication link to {self._name}: {exc}") from None
        if not data:
            raise ConnectionLostError(f"{self._name} closed the replication link")
        self.bytes_read += len(data)
        if self.throttle is not None:
            await self.throttle(len(data))
        return data

    def _silent(self) -> ConnectionLostError:
        return ConnectionLostError(f"no data from {self._name} for {self.repl_timeout:g} s")

    # ---- RDB transfer -----------------------------------------------------------------------

    async def rdb(self) -> AsyncIterator[bytes]:
        """The RDB bytes of a full sync, in chunks, for either transfer form."""
        header = await self._read_raw_line()
        if not header.startswith(b"$"):
            raise ProtocolError(f"expected the RDB bulk header, got {header[:80]!r}")
        if header.startswith(b"$EOF:"):
            mark = header[5:]
            splitter = EofMarkSplitter(mark)
            while not splitter.done:
                data = await self._rdb_read(self.chunk_size)
                payload = splitter.feed(data)
                if payload:
                    self.rdb_received += len(payload)
                    yield payload
            self._leftover = splitter.remainder
        else:
            if not header[1:].isdigit():
                raise ProtocolError(f"bad RDB bulk header {header[:80]!r}")
            remaining = self.rdb_size = int(header[1:])
            while remaining > 0:
                data = await self._rdb_read(min(self.chunk_size, remaining))
                remaining -= len(data)
                self.rdb_received += len(data)
                yield data
        # A diskless master keeps the stream back until the replica acks the loaded RDB.
        self._send_ack()
        self._start_acks()

    async def _rdb_read(self, n: int) -> bytes:
        """Up to ``n`` RDB bytes: what one read gives, topped up for a moment when that is little.

        Reads return as soon as anything arrived, often ~20 KB; each chunk costs the parser, the
        walker and the writer a fixed overhead, so small ones are joined: more is read for up to
        ``COALESCE_WAIT`` s or until ``COALESCE_BYTES``. (After a diskless RDB's end nothing comes
        until we ack: the wait then just runs out.)
        """
        data = await self._guarded(self._stream().read(n))
        if len(data) >= min(n, COALESCE_BYTES):
            return data
        parts = [data]
        got = len(data)
        stream = self._stream()
        # A lost link here shows on the next (guarded) read; the bytes so far are good.
        with contextlib.suppress(TimeoutError, OSError, asyncio.LimitOverrunError):
            async with asyncio.timeout(COALESCE_WAIT):
                while got < min(n, COALESCE_BYTES):
                    more = await stream.read(n - got)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
        if len(parts) == 1:
            return data
        extra = got - len(data)
        self.bytes_read += extra
        if self.throttle is not None:
            await self.throttle(extra)
        return b"".join(parts)

    # ---- command stream ---------------------------------------------------------------------

    async def commands(self, *, idle: float | None = None) -> AsyncIterator[list[StreamCommand]]:
        """Lists of (argv, offset after it), one list per read (possibly empty: PINGs only).

        PING and REPLCONF from the master count in ``offset`` but are not yielded. With
        ``idle``, an empty list is also yielded after that many seconds without data, so that a
        consumer can look at its stop flag; silence beyond ``repl_timeout`` still fails.
        """
        async for chunk in self.frames(None, idle=idle):
            base = chunk.base
            yield [(argv, base + stop) for argv, _, stop, _ in chunk.segments if argv is not None]

    async def frames(
        self, special: tuple[bytes, ...] | None, *, idle: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """The stream as it is read: one ``StreamChunk`` per read (its segments possibly none:
        PINGs only, or a command still arriving), the commands not named in ``special`` in runs
        (None: every command parsed); ``idle`` as for ``commands``. ``offset`` has moved past
        the chunk's whole commands when it is yielded."""
        wanted = None if special is None else tuple({*special, *_LINK_SPECIAL})
        pending: list[bytes] = [self._leftover] if self._leftover else []
        size = len(self._leftover)
        need = 0
        self._leftover = b""
        loop = asyncio.get_running_loop()
        while True:
            if pending:
                if size >= need:
                    buf = pending[0] if len(pending) == 1 else b"".join(pending)
                    segments, end, need = scan(buf, wanted, accelerated=self.accelerated)
                    need = need - end if need else 0  # the tail's length, once it can complete
                    rest = buf[end:]
                    pending = [rest] if rest else []
                    size = len(rest)
                    yield self._take(buf, segments, end)
                else:
                    yield StreamChunk(b"", [], self.offset)  # a large command still arriving
            if idle is None:
                data = await self._guarded(self._stream().read(self.chunk_size))
            else:
                deadline = loop.time() + self.repl_timeout
                while True:
                    try:
                        data = await self._guarded(self._stream().read(self.chunk_size), idle=idle)
                    except TimeoutError:
                        if loop.time() >= deadline:
                            raise self._silent() from None
                        yield StreamChunk(b"", [], self.offset)
                        continue
                    break
            pending.append(data)
            size += len(data)

    def _take(self, buf: bytes, segments: list[Segment], end: int) -> StreamChunk:
        """The chunk of ``segments`` without the master's PING and REPLCONF (a GETACK answered
        with the offset just after it); ``offset`` moves to ``end``."""
        base = self.offset
        if any(argv is not None and bytes(argv[0]).upper() in _LINK_SPECIAL for argv, *_ in segments):
            kept: list[Segment] = []
            for seg in segments:
                argv = seg[0]
                name = bytes(argv[0]).upper() if argv is not None else b""
                if name == b"REPLCONF":
                    if argv is not None and len(argv) > 1 and argv[1].lower() == b"getack":
                        self._send_ack(base + seg[2])
                elif name != b"PING":
                    kept.append(seg)
            segments = kept
        self.offset = base + end  # whatever else was consumed (bare newlines) counts too
        return StreamChunk(buf, segments, base)

    # ---- acks and shutdown ------------------------------------------------------------------

    def _send_ack(self, offset: int | None = None) -> None:
        with contextlib.suppress(ConnectionLostError, OSError):
            self._send(pack_command((b"REPLCONF", b"ACK", self.offset if offset is None else offset)))

    def _start_acks(self) -> None:
        if self._ack_task is None:
            self._ack_task = asyncio.get_running_loop().create_task(self._acks())

    async def _acks(self) -> None:
        while self._writer is not None and not self._writer.is_closing():
            await asyncio.sleep(self.ack_interval)
            self._send_ack()

    def abort(self) -> None:
        """Drop the link now (from synchronous code): a pending read fails as a lost link."""
        if self._ack_task is not None:
            self._ack_task.cancel()
            self._ack_task = None
        if self._writer is not None:
            self._writer.transport.abort()

    async def close(self) -> None:
        if self._ack_task is not None:
            self._ack_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ack_task
            self._ack_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
            self._writer = None
        self._reader = None
