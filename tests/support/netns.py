"""Test hosts in network namespaces, joined through a router whose link to the migrator can be
slowed, made lossy or cut: the network faults of the online tests.

A ``NetLab`` is a small network of its own: one namespace per host plus a router namespace
``wan``, all named ``cmt-<random>-<host>`` (parallel runs never meet; nothing is added to the
machine's own namespace). Host ``i`` has one veth to the router, 10.213.i.2/24 (router: .1), a
private range every lab may use (the namespaces are isolated)::

    lab = NetLab.create(["mig", "src", "dst"])   # the first host is the impaired one
    lab.addr("src")                              # 10.213.1.2
    lab.prefix("mig")                            # ["ip", "netns", "exec", "cmt-...-mig"]
    lab.impair("delay 100 20")                   # support/impair.py: "loss 5", "partition", "clear"
    lab.close()                                  # the impairer stopped, every namespace deleted

Every packet to or from the first host goes through two TUN devices of the router and the
user-space impairer between them (support/impair.py: this kernel has no sch_netem, and no tc
classifier, action or iptables either, so ``tc netem`` cannot be used; the impairer does what
netem would, per packet, below TCP). The other hosts talk to each other directly.

Servers started in a namespace listen on their address and on a unix socket, which is how the
test process (in the machine's namespace) writes and compares without crossing the impaired link
(support.servers.start_redis with ``prefix=lab.prefix(host)``).

``require_netns()`` fails (CI) or skips (locally) saying why, when namespaces, veths or TUN
devices cannot be made here (not root, no ``ip``).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.require import require

NETWORK = "10.213"
ROUTER = "wan"
IMPAIR = Path(__file__).with_name("impair.py")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


@dataclass
class NetLab:
    tag: str
    hosts: list[str]
    impairer: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)  # the impairments applied, for the test's report

    def ns(self, host: str) -> str:
        return f"cmt-{self.tag}-{host}"

    def prefix(self, host: str) -> list[str]:
        """The command prefix that runs a program in ``host``."""
        return ["ip", "netns", "exec", self.ns(host)]

    def addr(self, host: str) -> str:
        return f"{NETWORK}.{self.hosts.index(host)}.2"

    @classmethod
    def create(cls, hosts: Sequence[str]) -> NetLab:
        lab = cls(secrets.token_hex(3), list(hosts))
        try:
            lab._build()
        except BaseException:
            lab.close()
            raise
        return lab

    def _build(self) -> None:
        wan = self.ns(ROUTER)
        _ip("netns", "add", wan)
        _ip("-n", wan, "link", "set", "lo", "up")
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0"):
            subprocess.run([*self.prefix(ROUTER), "sysctl", "-qw", key], check=True, timeout=30)
        for i, h in enumerate(self.hosts):
            ns = self.ns(h)
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", wan, "link", "add", f"to-{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", wan, "addr", "add", f"{NETWORK}.{i}.1/24", "dev", f"to-{i}")
            _ip("-n", wan, "link", "set", f"to-{i}", "up")
            _ip("-n", ns, "addr", "add", f"{NETWORK}.{i}.2/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "via", f"{NETWORK}.{i}.1")
        # Host 0's traffic: in from to-0 -> tun-a -> (impair.py) -> tun-b -> routed on; the way
        # back: in from any other host -> tun-b -> (impair.py) -> tun-a -> routed to to-0.
        for tun in ("tun-a", "tun-b"):
            _ip("-n", wan, "tuntap", "add", "dev", tun, "mode", "tun")
            _ip("-n", wan, "link", "set", tun, "up")
        _ip("-n", wan, "route", "add", "default", "dev", "tun-a", "table", "100")
        _ip("-n", wan, "route", "add", "default", "dev", "tun-b", "table", "101")
        _ip("-n", wan, "rule", "add", "iif", "to-0", "lookup", "100", "pref", "100")
        for i in range(1, len(self.hosts)):
            _ip("-n", wan, "rule", "add", "iif", f"to-{i}", "to", f"{NETWORK}.0.0/24", "lookup", "101",
                "pref", "101")
        self.impairer = subprocess.Popen(
            [*self.prefix(ROUTER), sys.executable, str(IMPAIR), "tun-a", "tun-b"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.impairer.stdout is not None
        ready = self.impairer.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the impairer did not start: {ready!r}")

    def impair(self, command: str) -> str:
        """One support/impair.py command ("delay 100 20", "loss 5", "partition", "clear",
        "stats"); returns its answer ("ok forwarded N dropped M")."""
        p = self.impairer
        assert p is not None and p.stdin is not None and p.stdout is not None
        p.stdin.write(command + "\n")
        p.stdin.flush()
        answer = p.stdout.readline().strip()
        if not answer.startswith("ok"):
            raise RuntimeError(f"impair {command!r}: {answer!r}")
        if command != "stats":
            self.log.append(command)
        return answer

    def counts(self) -> tuple[int, int]:
        """Packets forwarded and dropped by the impairer so far."""
        words = self.impair("stats").split()
        return int(words[2]), int(words[4])

    def close(self) -> None:
        """Stop the impairer and delete every namespace (a veth goes with the namespace of an end)."""
        p = self.impairer
        if p is not None:
            if p.poll() is None:
                p.kill()
                p.wait()
            for pipe in (p.stdin, p.stdout):
                if pipe is not None:
                    pipe.close()
        for h in [*self.hosts, ROUTER]:
            _ip("netns", "del", self.ns(h), check=False)


def netns_problem() -> str | None:
    """Why a NetLab cannot be made here, or None when it can."""
    if shutil.which("ip") is None:
        return "the ip command (apt-get install iproute2)"
    lab: NetLab | None = None
    try:
        lab = NetLab.create(["a", "b"])
        lab.impair("delay 1")
    except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:
        err = getattr(exc, "stderr", "") or str(exc)
        return f"network namespaces, veths and TUN devices (run as root): {str(err).strip()[:200]}"
    finally:
        if lab is not None:
            lab.close()
    return None


def require_netns() -> None:
    """Go on when a NetLab can be made here; else fail (CI) or skip, saying why."""
    problem = netns_problem()
    require(problem is None, problem or "")
