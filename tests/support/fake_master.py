"""A scripted replication master for hostile-stream tests: a small asyncio server on a free port.

It answers the handshake as a master does (PING, AUTH, REPLCONF, INFO for the control
connection) and to each PSYNC sends the next of its ``replies`` (raw bytes: ``+FULLRESYNC ...``, a
bulk, a stream, any damage), the last one again for every later connection; then closes the
connection, or keeps it open and silent (``close``: one flag for all, or one per reply).
``psyncs`` counts the PSYNCs::

    async with FakeMaster([b"+FULLRESYNC " + b"a" * 40 + b" 0\\r\\nGARBAGE\\r\\n"]) as master:
        ... point a migration at master.url ...
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

REPLID = "f" * 40


def fullresync(offset: int = 0, replid: str = REPLID) -> bytes:
    return f"+FULLRESYNC {replid} {offset}\r\n".encode()


def bulk(payload: bytes, length: int | None = None) -> bytes:
    """A disk-style RDB transfer: ``$<length>`` (the true one unless given) and the bytes."""
    return b"$%d\r\n" % (len(payload) if length is None else length) + payload


class FakeMaster:
    def __init__(self, replies: list[bytes], *, close: bool | list[bool] = True) -> None:
        self.replies = replies
        self.close_after = close if isinstance(close, list) else [close] * len(replies)
        self._done = asyncio.Event()  # the test is over: silent connections end
        self.psyncs = 0
        self.commands: list[list[bytes]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeMaster:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._server is not None
        self._done.set()
        self._server.close()
        for task in list(self._tasks):
            with contextlib.suppress(ConnectionError):
                await task
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                argv = await _read_command(reader)
                if argv is None:
                    return
                self.commands.append(argv)
                name = argv[0].upper()
                if name == b"PING":
                    writer.write(b"+PONG\r\n")
                elif name in (b"AUTH", b"REPLCONF", b"SELECT", b"CLIENT"):
                    if name == b"REPLCONF" and len(argv) > 1 and argv[1].upper() == b"ACK":
                        continue  # acks get no reply
                    writer.write(b"+OK\r\n")
                elif name == b"INFO":
                    text = b"# Replication\r\nrole:master\r\nmaster_repl_offset:0\r\n"
                    writer.write(b"$%d\r\n%s\r\n" % (len(text), text))
                elif name in (b"PSYNC", b"SYNC"):
                    n = min(self.psyncs, len(self.replies) - 1)
                    self.psyncs += 1
                    writer.write(self.replies[n])
                    await writer.drain()
                    if not self.close_after[n]:
                        await self._done.wait()  # silent until the test ends
                    return
                else:
                    writer.write(b"-ERR unknown command\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            self._tasks.discard(task)


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    """One RESP array of bulk strings (what a client sends); None at EOF."""
    line = await reader.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return line.split()
    argv: list[bytes] = []
    for _ in range(int(line[1:])):
        size = int((await reader.readline())[1:])
        argv.append((await reader.readexactly(size + 2))[:-2])
    return argv
