"""What a target server is: vendor, version, the RDB version its RESTORE takes, cluster, dbs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cachemigrate.errors import ServerError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint, decimal

Vendor = Literal["redis", "valkey"]
DEFAULT_MAX_BULK_LEN = 512 << 20  # Redis and Valkey's default proto-max-bulk-len

# (first version, highest RDB version RESTORE accepts), ascending. DUMP/RESTORE arrived in 2.6.
_REDIS_RDB: tuple[tuple[tuple[int, ...], int], ...] = (
    ((2, 6), 6), ((3, 2), 7), ((4, 0), 8), ((5, 0), 9), ((7, 0), 10), ((7, 2), 11),
    ((7, 4), 12), ((8, 6), 13),
)
_VALKEY_RDB: tuple[tuple[tuple[int, ...], int], ...] = (((7, 2), 11), ((9, 0), 80))


def rdb_version_for(vendor: Vendor, version: tuple[int, ...]) -> int:
    """The highest DUMP payload version a server of this vendor and version restores (0: none)."""
    table = _VALKEY_RDB if vendor == "valkey" else _REDIS_RDB
    best = 0
    for first, rdb in table:
        if version >= first:
            best = rdb
    return best


def parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.strip().split("."):
        digits = ""
        for c in p:
            if not "0" <= c <= "9":  # ASCII: str.isdigit() takes "²", which int() refuses
                break
            digits += c
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def parse_info(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def parse_keyspace(info: dict[str, str]) -> dict[int, int]:
    """``db0:keys=1,expires=0,avg_ttl=0`` lines into {db: keys}."""
    out: dict[int, int] = {}
    for k, v in info.items():
        db = decimal(k[2:]) if k.startswith("db") else None
        if db is not None:
            fields = dict(p.split("=", 1) for p in v.split(",") if "=" in p)
            out[db] = decimal(fields.get("keys", "0")) or 0
    return out


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """A probed target. ``databases`` is None when CONFIG is refused (managed services)."""

    address: str
    vendor: Vendor
    version: tuple[int, ...]
    rdb_version: int
    cluster: bool = False
    databases: int | None = None
    keyspace: dict[int, int] = field(default_factory=dict)  # db -> keys
    rdb_strict: bool = False  # Valkey 9 "rdb-version-check strict": RDB 12..79 payloads refused
    mode: str = "standalone"
    # proto-max-bulk-len: the largest argument it takes (the default when CONFIG is refused)
    max_bulk_len: int = DEFAULT_MAX_BULK_LEN

    @property
    def total_keys(self) -> int:
        return sum(self.keyspace.values())

    @property
    def version_text(self) -> str:
        return ".".join(str(p) for p in self.version)

    def accepts_rdb(self, rdb_version: int) -> bool:
        """Whether RESTORE takes a payload of this RDB version."""
        if self.rdb_strict and 12 <= rdb_version <= 79:
            return False
        return rdb_version <= self.rdb_version

    def describe(self) -> str:
        kind = "cluster" if self.cluster else "standalone"
        dbs = f"{self.databases} dbs" if self.databases is not None else "db count unknown"
        strict = ", strict RDB check (refuses RDB 12-79)" if self.rdb_strict else ""
        return (
            f"{self.vendor} {self.version_text} {kind} at {self.address} (RESTORE up to RDB "
            f"{self.rdb_version}{strict}; {dbs}; {self.total_keys} keys)"
        )


async def probe(conn: Connection) -> TargetInfo:
    """Probe the server behind an open control connection."""
    info = parse_info(_text(await conn.execute("INFO", "server")))
    vendor: Vendor = "redis"
    version_text = info.get("redis_version", "0")
    if "valkey_version" in info or info.get("server_name", "").lower() == "valkey":
        vendor = "valkey"
        version_text = info.get("valkey_version", version_text)
    version = parse_version(version_text)
    cluster_info = parse_info(_text(await conn.execute("INFO", "cluster")))
    cluster = cluster_info.get("cluster_enabled") == "1"
    databases = 1 if cluster else await _config_int(conn, "databases")
    keyspace = parse_keyspace(parse_info(_text(await conn.execute("INFO", "keyspace"))))
    max_bulk = await _config_int(conn, "proto-max-bulk-len") or DEFAULT_MAX_BULK_LEN
    strict = False
    if vendor == "valkey" and version >= (9, 0):
        strict = (await _config_str(conn, "rdb-version-check") or "strict") == "strict"
    return TargetInfo(
        address=conn.endpoint.address,
        vendor=vendor,
        version=version,
        rdb_version=rdb_version_for(vendor, version),
        cluster=cluster,
        databases=databases,
        keyspace=keyspace,
        rdb_strict=strict,
        mode=info.get("redis_mode", "cluster" if cluster else "standalone"),
        max_bulk_len=max_bulk,
    )


async def probe_target(endpoint: Endpoint) -> TargetInfo:
    """Connect, probe, disconnect."""
    conn = await Connection.open(endpoint, db=0)
    try:
        return await probe(conn)
    finally:
        await conn.close()


async def _config_str(conn: Connection, name: str) -> str | None:
    try:
        reply = await conn.execute("CONFIG", "GET", name)
    except ServerError:
        return None  # CONFIG renamed or refused (managed services)
    if isinstance(reply, dict):
        value = reply.get(name.encode())
        return None if value is None else _text(value)
    if isinstance(reply, list) and len(reply) >= 2:
        return _text(reply[1])
    return None


async def _config_int(conn: Connection, name: str) -> int | None:
    value = await _config_str(conn, name)
    return None if value is None else decimal(value)


def _text(reply: object) -> str:
    if isinstance(reply, (bytes, bytearray)):
        return bytes(reply).decode("utf-8", "replace")
    return str(reply)
