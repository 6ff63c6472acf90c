"""A TCP relay on a free loopback port that delays one direction of a connection by a fixed time.

It induces latency deterministically, without touching the server or mocking it: a real
redis-server behind it answers as usual, and the client sees its requests arrive late
(``direction="requests"``) or its replies arrive late (``direction="replies"``). Order and bytes
are kept; each chunk is held ``delay`` seconds from when it arrived, so throughput is kept too.
With ``after``, the delay starts once a client chunk contains those bytes (``b"DUMP"``: only the
reads after the handshake), so a test pays the delay on the round trips it is about.

Runs its own event loop in a thread, so sync and async tests (and subprocesses) can use it::

    with Relay(server.port, delay=2.0, direction="replies", after=b"DUMP") as relay:
        ... connect to 127.0.0.1:relay.port ...

``cut()`` makes it a black hole (what a network partition looks like to the client): nothing
passes either way on the open connections, new connections are accepted and hear nothing, and
the client learns nothing until its own timeouts; ``heal()`` closes every connection of the cut
(the client sees them reset and reconnects) and relays again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType
from typing import Literal

Direction = Literal["requests", "replies"]


class Relay:
    def __init__(
        self, upstream_port: int, *, delay: float, direction: Direction, after: bytes | None = None,
        upstream_host: str = "127.0.0.1",
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.direction = direction
        self.after = after
        self.port = 0
        self.delayed_chunks = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="relay")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut = threading.Event()

    def cut(self) -> None:
        self._cut.set()

    def heal(self) -> None:
        """Close the connections open during the cut, then relay again."""
        asyncio.run_coroutine_threadsafe(self._heal(), self._loop).result(10)

    async def _heal(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._cut.clear()

    def __enter__(self) -> Relay:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        return server

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        if self._cut.is_set():  # a black hole: read and drop until healed (then closed)
            try:
                while await client_r.read(1 << 16):
                    pass
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                client_w.close()
                self._tasks.discard(task)
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        armed = asyncio.Event()
        if self.after is None:
            armed.set()
        try:
            await asyncio.gather(
                self._pump(client_r, up_w, armed, delayed=self.direction == "requests", arms=True),
                self._pump(up_r, client_w, armed, delayed=self.direction == "replies", arms=False),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (client_w, up_w):
                w.close()
            self._tasks.discard(task)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, armed: asyncio.Event,
        *, delayed: bool, arms: bool,
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if self._cut.is_set():
                    continue  # dropped: the cut lets nothing through
                dst.write(chunk)
                await dst.drain()

        sender = asyncio.create_task(forward())
        try:
            while True:
                chunk = await src.read(1 << 16)
                if arms and self.after is not None and self.after in chunk:
                    armed.set()
                hold = delayed and armed.is_set() and bool(chunk)
                if hold:
                    self.delayed_chunks += 1
                queue.put_nowait((time.monotonic() + (self.delay if hold else 0.0), chunk))
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()
