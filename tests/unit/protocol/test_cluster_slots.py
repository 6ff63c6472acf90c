"""Key slots (CRC16/XMODEM, hashtags), topology tables, the probe's version table."""

from __future__ import annotations

import pytest

from cachemigrate.protocol.cluster import ClusterNode, Topology, key_slot
from cachemigrate.protocol.probe import parse_info, parse_keyspace, parse_version, rdb_version_for


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"123456789", 0x31C3 & 16383),  # the CRC16/XMODEM check value
        (b"foo", 12182),
        (b"bar", 5061),
        (b"", 0),
        (b"{user1000}.following", key_slot(b"user1000")),
        (b"{user1000}.followers", key_slot(b"user1000")),
        (b"foo{}{bar}", key_slot(b"foo{}{bar}")),  # empty first tag: the whole key
        (b"foo{{bar}}zap", key_slot(b"{bar")),
        (b"foo{bar}{zap}", key_slot(b"bar")),
    ],
)
def test_key_slot(key: bytes, slot: int) -> None:
    assert key_slot(key) == slot
    assert key_slot(memoryview(key)) == slot


def test_topology_owner_table() -> None:
    a = ClusterNode("h", 1, "a", ((0, 99), (200, 16383)))
    b = ClusterNode("h", 2, "b", ((100, 199),))
    t = Topology.from_masters([b, a])
    assert t.masters[0] is a and t.covered
    assert t.node_for_slot(150) is b and t.node_for_slot(0) is a and t.node_for_slot(16383) is a
    assert t.node_for_key(b"foo") is a
    assert not Topology.from_masters([b]).covered


@pytest.mark.parametrize(
    ("vendor", "version", "rdb"),
    [
        ("redis", (2, 4, 0), 0), ("redis", (2, 6, 17), 6), ("redis", (2, 8, 24), 6),
        ("redis", (3, 0, 7), 6), ("redis", (3, 2, 12), 7), ("redis", (4, 0, 14), 8),
        ("redis", (5, 0, 14), 9), ("redis", (6, 0, 9), 9), ("redis", (6, 2, 14), 9),
        ("redis", (7, 0, 15), 10), ("redis", (7, 2, 5), 11), ("redis", (7, 4, 1), 12),
        ("redis", (8, 0, 2), 12), ("redis", (8, 2, 0), 12), ("redis", (8, 6, 0), 13),
        ("valkey", (7, 2, 5), 11), ("valkey", (8, 1, 0), 11), ("valkey", (9, 0, 0), 80),
    ],
)
def test_rdb_version_table(vendor: str, version: tuple[int, ...], rdb: int) -> None:
    assert rdb_version_for(vendor, version) == rdb  # type: ignore[arg-type]


def test_info_parsing() -> None:
    info = parse_info(
        "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\n"
        "db0:keys=3,expires=1,avg_ttl=0\r\ndb12:keys=40,expires=0,avg_ttl=0\r\n"
    )
    assert info["redis_version"] == "7.0.15"
    assert parse_keyspace(info) == {0: 3, 12: 40}
    assert parse_version("7.2.4-rc1") == (7, 2, 4)
