"""An HAProxy server slot as a front, driven through HAProxy's Runtime API.

The front is one ``server`` line of a ``mode tcp`` backend; the frontend clients connect to
forwards there. HAProxy must expose its Runtime API with admin level, on a unix socket
(``stats socket /run/haproxy/admin.sock mode 600 level admin``) or on TCP
(``stats socket ipv4@127.0.0.1:9999 level admin``). Three commands of that API do the work:

- ``show servers state <backend>``: the server's address, port and states (``backend()``,
  ``health()``);
- ``set server <backend>/<server> addr <ip> port <port>``: new connections go to the new server;
- ``shutdown sessions server <backend>/<server>``: the sessions still open (to the old server) are
  closed, so no client keeps writing there.

The last two go in one request (``;``-separated: HAProxy runs them one after the other without
serving anything in between), so a connection opened between them is not cut needlessly. Each
request is one connection to the socket (the API's non-interactive mode: HAProxy answers and
closes). HAProxy takes an IP address only, so a host name is resolved here first.

URL form (the CLI): ``haproxy:///path/to/admin.sock?server=<backend>/<server>`` or
``haproxy://127.0.0.1:9999?server=<backend>/<server>``; optional ``&timeout=<seconds>``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cachemigrate.engine.fronts.base import FrontHealth, resolve
from cachemigrate.errors import ConfigError, FrontError
from cachemigrate.protocol.endpoint import Endpoint, split_host_port

# srv_op_state of ``show servers state`` (HAProxy's enum srv_state).
_OP_STATES = {"0": "stopped", "1": "starting", "2": "running", "3": "stopping"}
_RUNNING = "2"
# A reply to ``set server ... addr`` that did what was asked (else HAProxy says why not).
_SET_OK = ("changed from", "no need to change")
MAX_REPLY = 4 << 20  # a ``show servers state`` of a very large configuration still fits


@dataclass(frozen=True, slots=True)
class HAProxyOptions:
    """Where the Runtime API listens (a unix socket path, or ``host:port``) and which server."""

    socket: str
    backend: str
    server: str
    timeout: float = 5.0  # seconds for one request (connect, send, whole reply)

    @classmethod
    def from_url(cls, url: str) -> HAProxyOptions:
        parts = urlsplit(url)
        if parts.scheme != "haproxy":
            raise ConfigError(f"an HAProxy front URL starts with haproxy://, got {url!r}")
        where = parts.netloc or parts.path
        if not where or (parts.netloc and parts.path not in ("", "/")):
            raise ConfigError(f"{url!r}: give haproxy:///path/to/admin.sock or haproxy://host:port")
        query = parse_qs(parts.query)
        be, sep, srv = (query.get("server") or [""])[-1].partition("/")
        if not (be and sep and srv):
            raise ConfigError(f"{url!r}: say which server is the front: ?server=<backend>/<server>")
        timeout = 5.0
        if query.get("timeout"):
            try:
                timeout = float(query["timeout"][-1])
            except ValueError:
                raise ConfigError(f"{url!r}: timeout is a number of seconds") from None
        if parts.netloc:
            split_host_port(parts.netloc)  # ConfigError when it is not host:port
        return cls(socket=where, backend=be, server=srv, timeout=timeout)


class HAProxyFront:
    """One HAProxy server slot; see the module docstring."""

    def __init__(self, options: HAProxyOptions) -> None:
        self.options = options

    @classmethod
    def from_url(cls, url: str) -> HAProxyFront:
        return cls(HAProxyOptions.from_url(url))

    @property
    def name(self) -> str:
        o = self.options
        return f"haproxy {o.backend}/{o.server} ({o.socket})"

    def __repr__(self) -> str:
        return f"<HAProxyFront {self.name}>"

    # ---- the Front role ----------------------------------------------------------------------

    async def backend(self) -> Endpoint:
        row = await self._state()
        try:
            return Endpoint(host=row["srv_addr"], port=int(row["srv_port"]))
        except (KeyError, ValueError):
            raise FrontError(f"{self.name}: no address in {row}") from None

    async def health(self) -> FrontHealth:
        row = await self._state()
        op, admin = row.get("srv_op_state", "?"), row.get("srv_admin_state", "?")
        detail = _OP_STATES.get(op, f"op state {op}")
        if admin != "0":
            detail += f", admin state {admin} (maintenance or drain)"
        return FrontHealth(up=op == _RUNNING and admin == "0", detail=detail)

    async def switch_to(self, server: Endpoint) -> None:
        o = self.options
        ip = (await resolve(server.host))[0]
        slot = f"{o.backend}/{o.server}"
        reply = await self.request(f"set server {slot} addr {ip} port {server.port}; "
                                   f"shutdown sessions server {slot}")
        if not any(ok in reply for ok in _SET_OK):
            raise FrontError(f"{self.name}: HAProxy refused to switch to {ip}:{server.port}: {_words(reply)}")
        now = await self.backend()
        if (now.host, now.port) != (ip, server.port):
            raise FrontError(f"{self.name}: asked for {ip}:{server.port}, HAProxy reports {now.address}")

    # ---- the Runtime API ---------------------------------------------------------------------

    async def request(self, command: str) -> str:
        """One Runtime API request (one connection) and HAProxy's whole reply."""
        o = self.options
        try:
            async with asyncio.timeout(o.timeout):
                if o.socket.startswith("/"):
                    reader, writer = await asyncio.open_unix_connection(o.socket)
                else:
                    host, port = split_host_port(o.socket)
                    reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(command.encode() + b"\n")
                    await writer.drain()
                    data = await reader.read(MAX_REPLY)
                    while chunk := await reader.read(MAX_REPLY):
                        data += chunk
                finally:
                    writer.close()
        except TimeoutError:
            raise FrontError(f"{self.name}: no answer from the Runtime API in {o.timeout:g} s") from None
        except OSError as exc:
            raise FrontError(f"{self.name}: cannot reach the Runtime API: {exc.strerror or exc}") from None
        return data.decode("utf-8", "replace")

    async def _state(self) -> dict[str, str]:
        """Our server's row of ``show servers state`` (format 1: a header line names the fields)."""
        o = self.options
        reply = await self.request(f"show servers state {o.backend}")
        lines = reply.splitlines()
        header = next((ln[1:].split() for ln in lines if ln.startswith("#")), None)
        if header is None:
            raise FrontError(f"{self.name}: HAProxy answered: {_words(reply)}")
        for line in lines:
            fields = line.split()
            if len(fields) == len(header):
                row = dict(zip(header, fields, strict=True))
                if row.get("be_name") == o.backend and row.get("srv_name") == o.server:
                    return row
        raise FrontError(f"{self.name}: backend {o.backend} has no server {o.server}")


def _words(reply: str) -> str:
    text = " ".join(reply.split())
    return repr(text[:300]) if text else "(nothing)"
