"""Cluster slots and topology: CRC16 key slot with {hashtag} rules, masters and their slot ranges."""

from __future__ import annotations

from binascii import crc_hqx
from dataclasses import dataclass, field
from typing import Any

from cachemigrate.errors import ProtocolError, ServerError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import decimal

SLOTS = 16384


def key_slot(key: bytes | bytearray | memoryview) -> int:
    """The cluster slot of ``key``: CRC16/XMODEM (``binascii.crc_hqx`` with 0) modulo 16384.

    When the key has a ``{...}`` with at least one byte between the first ``{`` and the next
    ``}``, only that part is hashed.
    """
    k = bytes(key) if not isinstance(key, bytes) else key
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1 : end]
    return crc_hqx(k, 0) & (SLOTS - 1)


@dataclass(frozen=True, slots=True)
class ClusterNode:
    host: str
    port: int
    node_id: str = ""
    slots: tuple[tuple[int, int], ...] = ()  # inclusive ranges

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Topology:
    """The masters of a cluster and which one serves each slot."""

    masters: tuple[ClusterNode, ...]
    owner: tuple[int, ...] = field(repr=False, default=())  # slot -> index in masters (-1: none)

    @classmethod
    def from_masters(cls, masters: list[ClusterNode]) -> Topology:
        owner = [-1] * SLOTS
        for m in masters:
            if not 0 < m.port < 65536 or any(not 0 <= lo <= hi < SLOTS for lo, hi in m.slots):
                raise ProtocolError(f"a cluster node announces port {m.port}, slots {m.slots[:4]}")
        ordered = sorted(masters, key=lambda m: (m.slots[0] if m.slots else (SLOTS, SLOTS), m.address))
        for i, m in enumerate(ordered):
            for lo, hi in m.slots:
                owner[lo : hi + 1] = [i] * (hi - lo + 1)
        return cls(tuple(ordered), tuple(owner))

    def node_for_slot(self, slot: int) -> ClusterNode | None:
        i = self.owner[slot]
        return None if i < 0 else self.masters[i]

    def node_for_key(self, key: bytes) -> ClusterNode | None:
        return self.node_for_slot(key_slot(key))

    @property
    def covered(self) -> bool:
        return -1 not in self.owner


async def fetch_topology(conn: Connection) -> Topology:
    """Masters and slot ranges: CLUSTER SHARDS (7.0+), else CLUSTER SLOTS, else CLUSTER NODES."""
    for fetch in (_from_shards, _from_slots, _from_nodes):
        try:
            masters = await fetch(conn)
        except ServerError:
            continue
        if masters:
            return Topology.from_masters(masters)
    raise ProtocolError(f"{conn.endpoint.display_url()}: cannot read the cluster topology")


def _int(v: Any) -> int:
    """A number of a topology reply: a RESP integer as it is, text in ASCII digits only."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    n = decimal(_s(v))
    if n is None:
        raise ProtocolError(f"not a number in a cluster topology reply: {_s(v)[:40]!r}")
    return n


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def _pairs(v: Any) -> dict[str, Any]:
    """RESP2 flat [k, v, ...] lists or RESP3 maps, with text keys."""
    if isinstance(v, dict):
        return {_s(k): x for k, x in v.items()}
    return {_s(v[i]): v[i + 1] for i in range(0, len(v) - 1, 2)}


async def _from_shards(conn: Connection) -> list[ClusterNode]:
    masters = []
    for shard in await conn.execute("CLUSTER", "SHARDS"):
        info = _pairs(shard)
        flat = [_int(x) for x in info.get("slots", [])]
        ranges = tuple((flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2))
        for node in info.get("nodes", []):
            n = _pairs(node)
            if _s(n.get("role", "")) != "master" or _s(n.get("health", "online")) != "online":
                continue
            host = _s(n.get("ip") or n.get("endpoint") or conn.endpoint.host)
            port = _int(n.get("port") or n.get("tls-port") or 0)
            masters.append(ClusterNode(_host(host, conn), port, _s(n.get("id", "")), ranges))
    return [m for m in masters if m.slots]


async def _from_slots(conn: Connection) -> list[ClusterNode]:
    by_addr: dict[tuple[str, int], tuple[str, list[tuple[int, int]]]] = {}
    for row in await conn.execute("CLUSTER", "SLOTS"):
        lo, hi, master = _int(row[0]), _int(row[1]), row[2]
        host = _host(_s(master[0]), conn)
        port = _int(master[1])
        node_id = _s(master[2]) if len(master) > 2 else ""
        by_addr.setdefault((host, port), (node_id, []))[1].append((lo, hi))
    return [ClusterNode(h, p, nid, tuple(sorted(r))) for (h, p), (nid, r) in by_addr.items()]


async def _from_nodes(conn: Connection) -> list[ClusterNode]:
    masters = []
    for line in _s(await conn.execute("CLUSTER", "NODES")).splitlines():
        parts = line.split()
        if len(parts) < 8 or "master" not in parts[2].split(",") or "fail" in parts[2]:
            continue
        addr = parts[1].split("@", 1)[0]
        host, _, port = addr.rpartition(":")
        ranges = []
        for r in parts[8:]:
            if r.startswith("["):
                continue  # a slot being imported / migrated
            lo, _, hi = r.partition("-")
            ranges.append((_int(lo), _int(hi or lo)))
        if ranges:
            masters.append(ClusterNode(_host(host, conn), _int(port), parts[0], tuple(sorted(ranges))))
    return masters


def _host(host: str, conn: Connection) -> str:
    """Nodes announce "" or "?" when they do not know their address: use the one we reached."""
    return conn.endpoint.host if host in ("", "?") else host
