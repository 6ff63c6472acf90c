"""What the RDB parser yields: records of the stream, and decoded values.

Two ways to use a key:
- fast path: ``KeyRecord.value`` holds the value's serialized bytes exactly as in the file
  (without the type byte); ``formats.dump`` turns them into a RESTORE payload untouched;
- rewrite path: ``decode_value`` turns those bytes into one of the ``*Value`` classes below, whose
  items become plain commands. A value too big to hold (``KeyRecord.big``) arrives instead as a
  series of ``ValueChunk`` records, each carrying a partial value of the same class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NO_EXPIRE = -1

# A stream ID as (milliseconds, sequence).
StreamId = tuple[int, int]


@dataclass(frozen=True, slots=True)
class RdbHeader:
    magic: str  # "REDIS" or "VALKEY"
    version: int

    @property
    def is_valkey(self) -> bool:
        return self.magic == "VALKEY"


@dataclass(slots=True)
class Aux:
    key: bytes
    value: bytes
    offset: int = 0


@dataclass(slots=True)
class SelectDb:
    db: int
    offset: int = 0


@dataclass(slots=True)
class ResizeDb:
    db_size: int
    expires_size: int
    offset: int = 0


@dataclass(slots=True)
class SlotInfo:
    slot: int
    size: int
    expires_size: int
    offset: int = 0


@dataclass(slots=True)
class Function:
    """A function library (FUNCTION2): replay with FUNCTION LOAD REPLACE code."""

    code: bytes
    offset: int = 0


@dataclass(slots=True)
class ModuleAux:
    module_name: str
    module_id: int
    when: int
    raw: bytes  # the opcode sequence after `when`, up to and including its EOF
    offset: int = 0


@dataclass(slots=True)
class KeyRecord:
    """One key. ``value`` is the raw serialized value (empty when ``big`` is True)."""

    db: int
    key: bytes
    type_byte: int
    value: bytes
    expire_ms: int = NO_EXPIRE  # absolute unix time in ms
    idle: int | None = None  # LRU idle seconds (IDLE opcode)
    freq: int | None = None  # LFU counter (FREQ opcode)
    offset: int = 0  # stream offset of the key's first opcode byte
    end_offset: int = 0  # stream offset just past the value
    big: bool = False  # value follows as ValueChunk records (RawChunk records when ``raw``)
    # Redis 13 KEY_META opcode body that preceded the key (module metadata classes), if any.
    key_meta: bytes | None = None
    raw: bool = False  # big, and the parser's raw_hook asked for the value's bytes (RawChunk)


@dataclass(slots=True)
class ValueChunk:
    """Part of a big key's value; ``last`` marks the final part (which carries stream metadata)."""

    db: int
    key: bytes
    type_byte: int
    value: Value
    last: bool
    end_offset: int = 0


@dataclass(slots=True)
class RawChunk:
    """Part of a big key's value as the bytes the RDB holds (``KeyRecord.raw``), in order:
    together they are the value's serialization, exactly its span; ``last`` marks the final part
    and ``end_offset`` is the stream offset just past this part."""

    key: bytes
    data: bytes
    last: bool
    end_offset: int = 0


@dataclass(slots=True)
class End:
    """The EOF opcode. ``checksum`` is the stored CRC64 (None before RDB 5, 0 when disabled)."""

    checksum: int | None
    offset: int = 0


Record = (
    Aux | SelectDb | ResizeDb | SlotInfo | Function | ModuleAux | KeyRecord | ValueChunk | RawChunk | End
)


# ---- decoded values ---------------------------------------------------------------------------


@dataclass(slots=True)
class StringValue:
    data: bytes


@dataclass(slots=True)
class ListValue:
    items: list[bytes]


@dataclass(slots=True)
class SetValue:
    members: list[bytes]


@dataclass(slots=True)
class ZSetValue:
    items: list[tuple[bytes, float]]  # (member, score); scores are exact IEEE doubles


@dataclass(slots=True)
class HashValue:
    items: list[tuple[bytes, bytes]]
    # Absolute expiry in unix ms per field, for hashes with field TTLs (Redis 7.4+, Valkey 9+).
    field_expires: dict[bytes, int] = field(default_factory=dict)


@dataclass(slots=True)
class StreamPending:
    id: StreamId
    delivery_time: int  # unix ms
    delivery_count: int


@dataclass(slots=True)
class StreamConsumer:
    name: bytes
    seen_time: int  # unix ms
    active_time: int | None  # unix ms (RDB 11+), else None
    pending: list[StreamId]


@dataclass(slots=True)
class StreamGroup:
    name: bytes
    last_id: StreamId
    entries_read: int | None  # RDB 10+ (None: unknown)
    pending: list[StreamPending]
    consumers: list[StreamConsumer]


@dataclass(slots=True)
class StreamValue:
    # (id, [field1, value1, field2, value2, ...]) in ID order; deleted entries are left out.
    entries: list[tuple[StreamId, list[bytes]]]
    length: int = 0
    last_id: StreamId = (0, 0)
    first_id: StreamId | None = None  # RDB 10+
    max_deleted_id: StreamId | None = None  # RDB 10+
    entries_added: int | None = None  # RDB 10+
    groups: list[StreamGroup] = field(default_factory=list)


@dataclass(slots=True)
class ModuleValue:
    """A module value, carried as raw bytes: only RESTORE can move it."""

    module_name: str
    module_id: int
    raw: bytes


Value = StringValue | ListValue | SetValue | ZSetValue | HashValue | StreamValue | ModuleValue
