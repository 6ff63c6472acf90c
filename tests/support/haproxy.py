"""A real haproxy process with one TCP front per name, for the tests, the demo and benchmarks.

``start_haproxy(directory, {"source": (host, port), ...})`` writes a generated configuration
(one ``mode tcp`` frontend and backend per front, each backend with one server ``main``, the
Runtime API on a unix socket at admin level: what engine/fronts/haproxy.py drives) and starts
haproxy in the foreground; ``HAProxy.url(name)`` is the front's URL for ``open_front`` and the
CLI, ``HAProxy.port(name)`` where clients connect. Ports are free loopback ports.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from support.poll import wait_until
from support.require import require
from support.servers import free_port

SERVER = "main"  # the one server of each backend: the front's slot


def require_haproxy() -> str:
    binary = shutil.which("haproxy")
    require(binary, "haproxy (make parts installs it: apt-get install haproxy)")
    assert binary is not None
    return binary


def haproxy_config(admin_socket: Path, fronts: Mapping[str, tuple[int, str, int]]) -> str:
    """The configuration: ``fronts`` maps a name to (listen port, backend host, backend port)."""
    lines = [
        "global",
        f"    stats socket {admin_socket} mode 600 level admin",
        "    stats timeout 30s",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        # Redis connections idle for long: no client/server timeout worth hitting in a test.
        "    timeout client 1h",
        "    timeout server 1h",
    ]
    for name, (listen, host, port) in fronts.items():
        lines += [
            f"frontend front_{name}",
            f"    bind 127.0.0.1:{listen}",
            f"    default_backend back_{name}",
            f"backend back_{name}",
            f"    server {SERVER} {host}:{port} check inter 1s",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class HAProxy:
    directory: Path
    proc: subprocess.Popen[bytes]
    admin_socket: Path
    ports: dict[str, int] = field(default_factory=dict)

    def port(self, name: str) -> int:
        return self.ports[name]

    def url(self, name: str) -> str:
        return f"haproxy://{self.admin_socket}?server=back_{name}/{SERVER}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_haproxy(
    directory: Path, fronts: Mapping[str, tuple[str, int]], *, binary: str | None = None
) -> HAProxy:
    """haproxy with a front per name, each forwarding to its (host, port) at start (``binary``:
    the haproxy to run; by default the one on PATH, required as support.require says)."""
    binary = binary or require_haproxy()
    directory.mkdir(parents=True, exist_ok=True)
    admin = directory / "admin.sock"
    ports = {name: free_port() for name in fronts}
    config = directory / "haproxy.cfg"
    config.write_text(haproxy_config(admin, {n: (ports[n], *fronts[n]) for n in fronts}), encoding="utf-8")
    log = (directory / "haproxy.log").open("wb")
    proc = subprocess.Popen([binary, "-f", str(config), "-db"], stdout=log, stderr=log)
    log.close()
    hx = HAProxy(directory=directory, proc=proc, admin_socket=admin, ports=ports)

    def ready() -> bool:
        if proc.poll() is not None:
            text = (directory / "haproxy.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"haproxy exited at start (code {proc.returncode}):\n{text}")
        return admin.exists() and all(_listening(p) for p in ports.values())

    try:
        wait_until(ready, timeout=20, what="haproxy's admin socket and fronts")
    except BaseException:
        hx.stop()
        raise
    return hx
