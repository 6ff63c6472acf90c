"""A user-space netem: forwards IP packets between two TUN devices with delay, jitter, loss or none.

This machine's kernel has no ``sch_netem`` (nor classifiers, actions or iptables), so the
impairment is done where any kernel allows it: the router namespace of a ``support.netns.NetLab``
sends every packet of the migrator's link through the TUN device ``a`` (from the migrator) or
``b`` (towards it), and this process, run in that namespace, writes each packet into the other
device when it is due. TCP sees real packet delay, jitter and loss (and retransmits, backs off,
times out) exactly as through netem. Order within a direction is kept (jitter does not reorder).

Run as ``python impair.py TUN_A TUN_B`` (in the namespace that holds the devices); commands on
stdin, one a line, each answered with one line on stdout::

    delay MS [JITTER_MS]    every packet held MS ± JITTER_MS
    loss PERCENT            each packet dropped with that probability (seeded: reproducible)
    partition               every packet dropped
    clear                   no impairment
    stats                   "forwarded N dropped M"

Standard library only (it runs under ``ip netns exec`` with the test's interpreter).
"""

from __future__ import annotations

import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Impairer:
    """The two devices, the impairment in force and the packets waiting for their time."""

    def __init__(self, a: int, b: int) -> None:
        self.other = {a: b, b: a}
        self.rng = random.Random(13)
        self.delay = self.jitter = self.loss = 0.0
        self.partition = False
        self.queue: list[tuple[float, int, int, bytes]] = []  # (due, seq, fd to write, packet)
        self.last_due = {a: 0.0, b: 0.0}
        self.seq = self.forwarded = self.dropped = 0

    def command(self, words: list[str]) -> str:
        cmd, args = words[0], [float(w) for w in words[1:]]
        if cmd == "delay":
            self.delay, self.jitter = args[0] / 1000, (args[1] / 1000 if len(args) > 1 else 0.0)
        elif cmd == "loss":
            self.loss = args[0] / 100
        elif cmd == "partition":
            self.partition = True
        elif cmd == "clear":
            self.delay = self.jitter = self.loss = 0.0
            self.partition = False
        elif cmd != "stats":
            return f"error unknown command {cmd}"
        return f"ok forwarded {self.forwarded} dropped {self.dropped}"

    def send(self, fd: int, packet: bytes) -> None:
        try:
            os.write(fd, packet)
            self.forwarded += 1
        except OSError:
            self.dropped += 1

    def arrived(self, fd: int, now: float) -> None:
        """Take what ``fd`` has (a bounded number: the two devices are served fairly)."""
        for _ in range(64):
            try:
                packet = os.read(fd, 65536)
            except BlockingIOError:
                return
            if self.partition or (self.loss and self.rng.random() < self.loss):
                self.dropped += 1
                continue
            out = self.other[fd]
            due = now + self.delay + (self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
            due = self.last_due[out] = max(due, self.last_due[out])  # no reordering in a direction
            if due <= now and not self.queue:
                self.send(out, packet)
            else:
                self.seq += 1
                heapq.heappush(self.queue, (due, self.seq, out, packet))

    def due(self, now: float) -> float:
        """Send what is due; the seconds until the next packet is (0.5 when none waits)."""
        while self.queue and self.queue[0][0] <= now:
            _, _, fd, packet = heapq.heappop(self.queue)
            self.send(fd, packet)
        return max(0.0, self.queue[0][0] - now) if self.queue else 0.5


def main(a_name: str, b_name: str) -> None:
    a, b = open_tun(a_name), open_tun(b_name)
    imp = Impairer(a, b)
    stdin = sys.stdin.fileno()
    buf = b""
    print("ready", flush=True)
    while True:
        timeout = imp.due(time.monotonic())
        readable, _, _ = select.select([a, b, stdin], [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            if fd != stdin:
                imp.arrived(fd, now)
                continue
            data = os.read(stdin, 4096)
            if not data:
                return  # the test is gone
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.split():
                    print(imp.command(line.decode().split()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
