"""What a key is on one server at one moment (``KeyState``), read in bulk over one connection.

``read_states``: per key ``TYPE`` + ``PTTL`` + ``DUMP``, one pipeline packed in one go (three
replies per key: a comparison's hot path). The DUMP payload is kept without its footer (RDB version
and CRC), so equal values of servers of other versions still have equal payloads when their
encoding is the same. ``read_values``: the value itself in a comparable normal form, for keys
whose payloads did not settle it (``GET``, ``LRANGE``, ``SMEMBERS``, ``ZRANGE WITHSCORES``,
``HGETALL``, ``XRANGE`` + ``XINFO STREAM FULL``; a module type: its DUMP). Expire times are
absolute: our clock when the replies arrived + PTTL, so that a state read earlier stays comparable
with one read now.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cachemigrate.errors import CacheMigrateError
from cachemigrate.protocol.commands import key_commands_packer
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import parse_info, parse_keyspace
from cachemigrate.protocol.resp import ErrorReply

_FOOTER = 10  # a DUMP payload ends with the RDB version (2 bytes) and a CRC64 (8 bytes)
_NONE = b"none"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Unread:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD: Final = _Unread()
"""A KeyState's ``value`` before it is read (it is read only when the payloads differ)."""


@dataclass(slots=True)
class KeyState:
    """One key on one side as read at one moment."""

    type: bytes  # b"none": no such key
    expire_at: int = -1  # unix ms (our clock at the reply + PTTL); -1: no expiry
    payload: bytes | None = None  # the DUMP payload without its footer; None: not available
    value: Any = UNREAD  # the value in a comparable normal form, once read

    @property
    def exists(self) -> bool:
        return self.type != _NONE


ABSENT: Final = KeyState(_NONE)


_PACK_WITH_DUMP: Final = key_commands_packer((b"TYPE", b"PTTL", b"DUMP"))
_PACK_NO_DUMP: Final = key_commands_packer((b"TYPE", b"PTTL"))


async def read_states(conn: Connection, keys: Sequence[bytes], *, dump: bool = True) -> list[KeyState]:
    """TYPE, PTTL and (with ``dump``) DUMP of every key, in one pipeline."""
    per = 3 if dump else 2
    pack = _PACK_WITH_DUMP if dump else _PACK_NO_DUMP
    replies = await conn.pipeline_packed(pack(keys), per * len(keys))
    now = now_ms()
    out: list[KeyState] = []
    for i in range(0, len(replies), per):
        t, ttl = replies[i], replies[i + 1]
        if isinstance(t, ErrorReply):
            raise CacheMigrateError(f"{conn.endpoint.display_url()}: TYPE: {t.message}")
        if t == _NONE or ttl == -2:
            out.append(ABSENT)
            continue
        exp = now + ttl if isinstance(ttl, int) and ttl >= 0 else -1
        raw = replies[i + 2] if dump else None
        payload = raw[:-_FOOTER] if isinstance(raw, bytes) and len(raw) > _FOOTER else None
        out.append(KeyState(t, exp, payload))
    return out


_VALUE_CALLS: Final = {b"string": 1, b"list": 1, b"set": 1, b"zset": 1, b"hash": 1, b"stream": 2}


def _value_commands(key: bytes, t: bytes) -> list[tuple[bytes, ...]]:
    if t == b"string":
        return [(b"GET", key)]
    if t == b"list":
        return [(b"LRANGE", key, b"0", b"-1")]
    if t == b"set":
        return [(b"SMEMBERS", key)]
    if t == b"zset":
        return [(b"ZRANGE", key, b"0", b"-1", b"WITHSCORES")]
    if t == b"hash":
        return [(b"HGETALL", key)]
    if t == b"stream":
        return [(b"XRANGE", key, b"-", b"+"), (b"XINFO", b"STREAM", key, b"FULL")]
    return [(b"DUMP", key)]  # a module type: its serialized value is all there is to compare


async def read_values(conn: Connection, keys: Sequence[bytes], states: Sequence[KeyState]) -> None:
    """Fill in ``value`` of ``states`` (of ``keys``, same order), in one pipeline."""
    cmds: list[tuple[bytes, ...]] = []
    for k, s in zip(keys, states, strict=True):
        cmds.extend(_value_commands(k, s.type))
    replies = await conn.pipeline(cmds)
    i = 0
    for s in states:
        n = _VALUE_CALLS.get(s.type, 1)
        raw = replies[i:i + n]
        i += n
        # An error: the key changed type (or went) between the reads; it differs from anything.
        s.value = None if any(isinstance(r, ErrorReply) for r in raw) else _normal(s.type, raw)


def _normal(t: bytes, raw: list[Any]) -> Any:
    if t == b"set":
        return sorted(raw[0])
    if t == b"zset":
        flat = raw[0]
        return sorted((flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2))
    if t == b"hash":
        flat = raw[0]
        return sorted((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
    if t == b"stream":
        return (raw[0], _stream_state(raw[1]))
    return raw[0]


class Known:
    """Named fields of which a server may not report them all: fields only one side has are not
    compared (entries-added, max-deleted-entry-id and entries-read arrived in Redis 7.0)."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[bytes, Any]) -> None:
        self.fields = fields

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Known):
            return NotImplemented
        a, b = self.fields, other.fields
        return all(a[k] == b[k] for k in a.keys() & b.keys())

    def __hash__(self) -> int:
        raise TypeError("Known is not hashable (its equality ignores fields one side lacks)")

    def __repr__(self) -> str:
        return f"Known({self.fields!r})"


_STREAM_FIELDS: Final = (b"length", b"last-generated-id", b"max-deleted-entry-id", b"entries-added")
_GROUP_FIELDS: Final = (b"last-delivered-id", b"entries-read")


def _stream_state(full: Any) -> Any:
    """The parts of XINFO STREAM FULL that a migration must carry over."""
    info = _pairs(full)
    groups = []
    for g in info.get(b"groups") or []:
        gi = _pairs(g)
        consumers = []
        for c in gi.get(b"consumers") or []:
            ci = _pairs(c)
            consumers.append((ci.get(b"name"), ci.get(b"pel-count"), ci.get(b"pel")))
        groups.append((gi.get(b"name"), Known({k: gi[k] for k in _GROUP_FIELDS if k in gi}),
                       gi.get(b"pel"), sorted(consumers, key=repr)))
    stream = Known({k: info[k] for k in _STREAM_FIELDS if k in info})
    return (stream, sorted(groups, key=lambda g: repr(g[0])))


def _pairs(flat: Any) -> dict[bytes, Any]:
    if isinstance(flat, dict):
        return flat
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def same_payload(a: KeyState, b: KeyState) -> bool:
    return a.payload is not None and a.payload == b.payload


def same_value(a: KeyState, b: KeyState) -> bool:
    """Equal payloads, or else equal values (unread values are not known to be equal)."""
    if same_payload(a, b):
        return True
    return a.value is not UNREAD and b.value is not UNREAD and a.value == b.value


async def can_dump(conn: Connection) -> bool:
    """Whether DUMP works here at all (a missing payload may also be a key deleted meanwhile)."""
    reply = await conn.pipeline([(b"DUMP", b"cachemigrate:compare:probe")])
    return not isinstance(reply[0], ErrorReply)


async def keyspace(endpoint: Endpoint) -> dict[int, int]:
    """{db: keys} from INFO keyspace."""
    conn = await Connection.open(endpoint, db=0, name="cachemigrate-compare")
    try:
        raw = await conn.execute("INFO", "keyspace")
    finally:
        await conn.close()
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return parse_keyspace(parse_info(text))
