"""Records of the source become commands for the target.

Fast path (the default): a key's raw value bytes become one ``RESTORE ... ABSTTL`` whose footer
version is relabelled to one the target accepts (``formats.dump.payload_version_for_target``);
nothing is decoded. The filter rules (engine/filters.py) are asked per key before that, on the
key name, type byte and expire time only: a key left out costs no decoding, a renamed key keeps
the fast path (the payload does not depend on the name). Rewrite path: when asked to
(``options.rewrite``), when the target cannot load the type, for big keys that arrive as
``ValueChunk`` records, or for a filter script, the value is decoded and replayed as plain
commands (``engine.rewrite``).
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from cachemigrate.engine import rewrite as rw
from cachemigrate.engine.capabilities import Target, TargetCaps, at_least
from cachemigrate.engine.commands import command_key
from cachemigrate.engine.dbmap import DbMap
from cachemigrate.engine.entry import Arg, Command, Entry, Packed
from cachemigrate.engine.filters import compile_rules
from cachemigrate.engine.keyspecs import command_info
from cachemigrate.engine.packed_runs import PackedRuns
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import EventSink
from cachemigrate.engine.streamed import StreamedRestore
from cachemigrate.errors import (
    FormatError,
    MigrationError,
    UnsupportedRdbError,
)
from cachemigrate.formats.dump import payload_version_for_target, restore_packer
from cachemigrate.formats.rdb.decode import decode_value
from cachemigrate.formats.rdb.kinds import VALUE_TYPES, file_vendor, kinds_by_byte
from cachemigrate.formats.rdb.model import (
    NO_EXPIRE,
    Function,
    KeyRecord,
    ModuleValue,
    RdbHeader,
    StreamId,
    StreamValue,
    Value,
    ValueChunk,
)
from cachemigrate.formats.rdb.walk import LEFT_OUT
from cachemigrate.protocol.commands import restore_extra

__all__ = ["Target", "TargetCaps", "Transformer"]

# Collections whose empty form is a legal RDB value but not a legal key. Every empty encoding
# (a zero length, an empty ziplist/listpack/intset/zipmap blob, a hash-metadata header) fits in
# _TINY bytes, so only values that small are decoded to look.
_IS_COLLECTION: Final = {
    vendor: tuple(k in ("list", "set", "zset", "hash") for k in kinds_by_byte(vendor))
    for vendor in VALUE_TYPES
}
_TINY = 16

_RESTORE = b"RESTORE"
_CLOCK_EVERY = 64
_UNSUPPORTED_KEEP = 10_000  # keys named in `unsupported`; the count goes on beyond


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True, kw_only=True)
class _BigKey:
    """A big key whose value is still arriving as ValueChunk records."""

    key: bytes
    db: int | None  # None: the key was dropped (expired, filtered, unsupported)
    type_byte: int
    expire_ms: int
    start_offset: int
    tag: str  # still to put on the next entry ("" once used)
    parts: int = 0
    stream_entries: int = 0
    stream_first: StreamId | None = None
    source_key: bytes = b""  # the key's name in the source, when a rule renamed it


class Transformer:
    """Turns KeyRecord / ValueChunk / Function records into target entries; keeps the counters."""

    def __init__(
        self,
        options: PipelineOptions,
        header: RdbHeader,
        target: Target,
        *,
        now_ms: Callable[[], int] = _now_ms,
        packed: bool = False,
        events: EventSink | None = None,
    ) -> None:
        """``packed``: the writer takes entries of many commands (``PackedRun``; a standalone
        target with nothing to check per key), so the C walker may turn runs of keys into one.
        ``events``: where the filter's log lines go (a script's ``shake.log``)."""
        self.options = options
        self.header = header
        vendor = file_vendor(header)
        self._kinds = kinds_by_byte(vendor)  # the type name per type byte, in this file's table
        self._is_collection = _IS_COLLECTION[vendor]
        self.target = target
        self._now_ms = now_ms
        self.dbmap = DbMap(options, cluster=target.cluster)
        self._dbs = self.dbmap.known
        self.caps = rw.RewriteCaps(
            field_ttl=at_least(target, redis=(7, 4), valkey=(9, 0)),
            stream_v7=at_least(target, redis=(7, 0), valkey=(7, 2)),
            create_consumer=at_least(target, redis=(6, 2), valkey=(7, 2)),
            chunk_elements=max(1, options.chunk_elements),
        )
        # The filter rules of keys (None: every key goes, under its own name).
        self._filter = flt = compile_rules(options.filters, events)
        self._script = flt.script if flt is not None else None
        self._type_ok = [flt.type_ok(k) for k in self._kinds] if flt is not None else []
        # Per type byte: the footer version for RESTORE, or None when the key must be rewritten
        # (always with a script: it sees the commands that rebuild each key).
        self._footer: list[int | None] = [
            None
            if options.rewrite or self._script is not None
            else payload_version_for_target(
                t, header.version, target.rdb_version, header.is_valkey, target.vendor == "valkey"
            )
            for t in range(256)
        ]
        self._replace = options.replace
        self._pack = restore_packer(options.replace)
        self._now = now_ms()
        self._clock_left = _CLOCK_EVERY
        self._big: _BigKey | None = None
        self._decode: Callable[..., Value] = decode_value
        # Counters; per type byte for the fast paths (the C walker adds to it in place).
        self._by_type: Counter[str] = Counter()
        self._by_type_byte = array("Q", bytes(256 * 8))
        # The parser's batch_hook (runs of keys in one entry: the C walker) or None.
        # With filter rules on names and types the walker asks the rules per key (a type left
        # out: LEFT_OUT in its footer table); expiry rules and a script need the per-key path.
        walkable = flt is None or not (flt.skip_ms or flt.max_ttl_ms or flt.script is not None)
        # A type the rules leave out is skipped by the walker (never decoded, counted as filtered).
        walk_footer: list[int | None] = self._footer if flt is None else [
            v if self._type_ok[t] else LEFT_OUT for t, v in enumerate(self._footer[: len(self._type_ok)])
        ] + [None] * (256 - len(self._type_ok))
        runs = PackedRuns(walk_footer, replace=options.replace, map_db=self.dbmap.target,
                          counts=self._by_type_byte, now_ms=now_ms,
                          key_filter=flt.walker_rules() if flt is not None else None) \
            if packed and options.c_walker and walkable else None
        self.batch_hook = runs if runs is not None and runs.usable else None
        # Big keys as one RESTORE streamed from the source (engine/streamed.py): where the writer
        # takes Pieces (a standalone target, nothing looked at per key) and no script must see
        # the commands that rebuild each key.
        self._stream_big = packed and self._script is None
        self.max_payload = target.max_bulk_len
        self.expired = 0
        self.filtered = 0
        self.rewritten = 0
        self.expired_fields = 0
        self.dropped_field_ttls = 0
        self.dropped_field_ttl_keys: list[tuple[int, bytes]] = []
        self.empty = 0
        # PEL entries whose stream entry was deleted: XCLAIM cannot recreate them (RESTORE can).
        self.lost_pending = 0
        self.unsupported_count = 0
        self.unsupported: list[tuple[int, bytes, str]] = []

    @property
    def walked_expired(self) -> int:
        """Expired keys the C walker skipped (not in ``expired``)."""
        return 0 if self.batch_hook is None else self.batch_hook.expired

    @property
    def keys_filtered(self) -> int:
        """Keys the db and filter rules left out, the C walker's included."""
        return self.filtered + (0 if self.batch_hook is None else self.batch_hook.filtered)

    @property
    def keys_by_type(self) -> Counter[str]:
        """Keys sent (or to be sent) per type name."""
        out = Counter(self._by_type)
        for t, n in enumerate(self._by_type_byte):
            if n:
                out[self._kinds[t]] += n
        return out

    # ---- db mapping ------------------------------------------------------------------------

    # ---- keys --------------------------------------------------------------------------------

    def key(self, rec: KeyRecord) -> list[Entry]:
        """Entries for one key: a RESTORE (fast path), or plain commands (rewrite path)."""
        if not rec.big:
            out = self.key_fields(rec.db, rec.key, rec.type_byte, rec.value, rec.expire_ms, rec.idle,
                                  rec.freq, rec.offset, rec.end_offset, rec.key_meta)
            return [out] if type(out) is Packed else out
        # A big key: its value follows as ValueChunk records, rewritten as they come.
        db: int | None = None
        if rec.expire_ms != NO_EXPIRE and self._expired(rec.expire_ms):
            self.expired += 1
        else:
            db = self.dbmap.target(rec.db)
            if db is not None and self._filter is not None:
                admitted = self._admit(rec.key, rec.type_byte, rec.expire_ms)
                if admitted is None:
                    db = None
                else:
                    source_key = rec.key
                    rec.key, rec.expire_ms = admitted
                    out = self._rewrite_key(rec, db)
                    if self._big is not None:
                        self._big.source_key = source_key
                    return out
            if db is None:
                self.filtered += 1
        if db is None:  # its chunks are dropped
            self._big = _BigKey(key=rec.key, db=None, type_byte=rec.type_byte, expire_ms=rec.expire_ms,
                                start_offset=rec.offset, tag="")
            return []
        return self._rewrite_key(rec, db)

    def stream_big(self, rec: KeyRecord) -> StreamedRestore | None:
        """The parser's ``raw_hook``, through the pump: a big key the target can RESTORE goes
        as one RESTORE streamed from the source; None: decoded and rewritten in chunks (the target
        cannot load its type, a script, a cluster target) or dropped (``key()`` counts it)."""
        t = rec.type_byte
        version = self._footer[t]
        if not self._stream_big or version is None or self._kinds[t] == "module":
            return None
        exp = rec.expire_ms
        if exp != NO_EXPIRE and self._expired(exp):
            return None
        db = self.dbmap.target(rec.db)
        if db is None:
            return None
        key = rec.key
        if self._filter is not None:
            admitted = self._admit(key, t, exp)
            if admitted is None:
                return None
            key, exp = admitted
        return StreamedRestore(key=key, source_key=rec.key, db=db, type_byte=t, version=version,
                               expire_ms=exp, idle=rec.idle, freq=rec.freq, replace=self._replace,
                               start_offset=rec.offset, tag=self._kinds[t])

    def streamed(self, st: StreamedRestore) -> None:
        self._by_type_byte[st.type_byte] += 1

    def key_fields(
        self,
        db: int,
        key: bytes,
        t: int,
        raw: bytes,
        exp: int,
        idle: int | None,
        freq: int | None,
        offset: int,
        end_offset: int,
        meta: bytes | None,
    ) -> Packed | list[Entry]:
        """The entries of a whole (not big) key, from its ``KeyRecord`` fields: the parser's
        ``key_hook`` (positional: see ``formats.rdb.KeyHook``). A RESTORE is one ``Packed`` entry
        and no record is made; a key to rewrite, or a tiny collection that may be empty, makes
        its record."""
        if exp != NO_EXPIRE and self._expired(exp):
            self.expired += 1
            return []
        tdb = self._dbs.get(db, -2)
        if tdb == -2:
            tdb = self.dbmap.target(db)
        if tdb is None:
            self.filtered += 1
            return []
        if self._filter is not None:
            admitted = self._admit(key, t, exp)
            if admitted is None:
                self.filtered += 1
                return []
            key, exp = admitted
        version = self._footer[t]
        if version is None or (len(raw) <= _TINY and self._is_collection[t]):
            # Positional, as in the parser's hot loop: 145 ns, with keywords 662 ns (CPython 3.11).
            rec = KeyRecord(db, key, t, raw, exp, idle, freq, offset, end_offset, False, meta)
            if version is None:
                return self._rewrite_key(rec, tdb)
            if self._is_empty(rec):
                self.empty += 1  # RESTORE refuses empty collections; a loading server skips them
                return []
        self._by_type_byte[t] += 1
        # The whole RESP command in one go.
        wire = self._pack(key, exp, t, raw, version)
        if idle is not None or freq is not None:
            wire = restore_extra(wire, self._replace, idle, freq)
        return Packed(wire, len(wire), _RESTORE, key, tdb, end_offset, self._kinds[t])

    def _admit(self, key: bytes, t: int, exp: int) -> tuple[bytes, int] | None:
        """The filter rules on one key: None, it stays behind; else (its name, its expire time)."""
        flt = self._filter
        assert flt is not None
        if t < len(self._type_ok) and not self._type_ok[t]:
            return None
        if flt.key_ok is not None and not flt.key_ok(key):
            return None
        if flt.skip_ms and exp != NO_EXPIRE and exp < self._now + flt.skip_ms:
            return None
        if flt.max_ttl_ms:
            cap = self._now + flt.max_ttl_ms
            if exp == NO_EXPIRE or exp > cap:
                exp = cap
        if flt.rename is not None:
            key = flt.rename(key)
        return key, exp

    def _expired(self, exp: int) -> bool:
        """Whether a key's expire time has passed.

        The clock is read once per _CLOCK_EVERY keys with a TTL (a clock read costs as much as
        the rest of the fast path). A key that expires in between is still sent; the target drops
        it on arrival (past ABSTTL / PEXPIREAT), so only the counter lags.
        """
        self._clock_left -= 1
        if self._clock_left <= 0:
            self._clock_left = _CLOCK_EVERY
            self._now = self._now_ms()
        return exp < self._now

    def function(self, fn: Function) -> list[Entry]:
        """``FUNCTION LOAD REPLACE code``, for every database (db -1)."""
        if not at_least(self.target, redis=(7, 0), valkey=(7, 2)):
            self._unsupported(-1, b"", "functions need a Redis 7.0+ target; library not loaded")
            return []
        argv: list[Arg] = [b"FUNCTION", b"LOAD", b"REPLACE", fn.code]
        if self._filter is not None and self._filter.has_commands:
            out = self._filter.command([b"FUNCTION", b"LOAD", b"REPLACE", fn.code], b"FUNCTION", -1)
            if out == []:
                return []  # a command or group rule (SCRIPTING), or the script, leaves it behind
        return [Command(argv, -1, None, 0, fn.offset, "function")]

    def chunk(self, chunk: ValueChunk) -> list[Entry]:
        """Entries for one part of a big key announced by ``key()``."""
        c = chunk
        big = self._big
        if big is None or (big.source_key or big.key) != c.key:
            raise MigrationError(f"value chunk of key {c.key[:64]!r} without its key record")
        if c.last:
            self._big = None
        if big.db is None:
            return []
        if isinstance(c.value, ModuleValue):
            self._unsupported(big.db, c.key, "module values can only move with RESTORE")
            big.db = None
            return []
        out = rw.value_commands(
            big.key, c.value, self.caps, self._now_ms,
            part=big.parts, last=c.last, stream_entries_before=big.stream_entries,
            first_entry=big.stream_first,
        )  # fmt: skip
        if isinstance(c.value, StreamValue) and c.value.entries:
            big.stream_entries += len(c.value.entries)
            if big.stream_first is None:
                big.stream_first = c.value.entries[0][0]
        self._count(big.db, big.key, out)
        cmds = out.commands
        big.parts += 1
        if c.last and big.expire_ms != NO_EXPIRE:
            cmds.append([b"PEXPIREAT", big.key, b"%d" % big.expire_ms])
        entries = self._entries(cmds, db=big.db, key=big.key, tag=big.tag, start_offset=big.start_offset,
                                end_offset=c.end_offset, complete=c.last)
        if entries:
            big.tag = ""
        return entries

    # ---- rewrite path ------------------------------------------------------------------------

    def rewrite(self, rec: KeyRecord, value: Value, db: int | None = None) -> list[Entry]:
        """Plain commands for a key whose value is already decoded (``db``: already mapped)."""
        if db is None:
            db = self.dbmap.target(rec.db)
            if db is None:
                self.filtered += 1
                return []
        key = rec.key
        name = self._kinds[rec.type_byte]
        if isinstance(value, ModuleValue):
            self._unsupported(db, key, f"module {value.module_name!r} values can only move with RESTORE")
            return []
        out = rw.value_commands(key, value, self.caps, self._now_ms)
        self._count(db, key, out)
        if not out.commands:
            self.empty += 1  # a loading server skips empty collections too
            return []
        cmds: list[rw.Argv] = [[b"DEL", key]] if self.options.replace else []
        cmds += out.commands
        if rec.expire_ms != NO_EXPIRE:
            cmds.append([b"PEXPIREAT", key, b"%d" % rec.expire_ms])
        self._by_type[name] += 1
        self.rewritten += 1
        return self._entries(cmds, db=db, key=key, tag=name, start_offset=rec.offset,
                             end_offset=rec.end_offset, complete=True)

    def _rewrite_key(self, rec: KeyRecord, db: int) -> list[Entry]:
        name = self._kinds[rec.type_byte]
        if rec.big:
            self._by_type[name] += 1
            self.rewritten += 1
            big = _BigKey(key=rec.key, db=db, type_byte=rec.type_byte, expire_ms=rec.expire_ms,
                          start_offset=rec.offset, tag=name)
            self._big = big
            if name == "module":
                self._unsupported(db, rec.key, "module values can only move with RESTORE")
                big.db = None
                return []
            if not self.options.replace:
                return []
            big.tag = ""
            return [Command([b"DEL", rec.key], db, rec.key, 0, rec.offset, name)]
        if name == "module":
            self._unsupported(db, rec.key, "module values can only move with RESTORE")
            return []
        try:
            value = self._decode(rec.type_byte, rec.value, header=self.header, key=rec.key, offset=rec.offset)
        except UnsupportedRdbError as exc:
            self._unsupported(db, rec.key, f"cannot decode for rewrite: {exc.reason}")
            return []
        return self.rewrite(rec, value, db)

    def _is_empty(self, rec: KeyRecord) -> bool:
        try:
            value = self._decode(rec.type_byte, rec.value, header=self.header, key=rec.key, offset=rec.offset)
        except FormatError:
            return False  # sent as it is: the target's verdict names the key
        return rw.is_empty(value)

    def _count(self, db: int, key: bytes, out: rw.Outcome) -> None:
        self.expired_fields += out.expired_fields
        self.lost_pending += out.lost_pending
        if out.dropped_ttls:
            self.dropped_field_ttls += out.dropped_ttls
            if len(self.dropped_field_ttl_keys) < _UNSUPPORTED_KEEP:
                self.dropped_field_ttl_keys.append((db, key))

    def _entries(
        self,
        cmds: list[rw.Argv],
        *,
        db: int,
        key: bytes,
        tag: str,
        start_offset: int,
        end_offset: int,
        complete: bool,
    ) -> list[Entry]:
        # Only the entry that completes the key carries its end offset: a checkpoint taken in the
        # middle of a key resumes at the key's start (and DEL makes the replay idempotent).
        out: list[Entry]
        if self._script is not None:
            out = self._scripted(cmds, db, start_offset)
        else:
            out = [Command(argv, db, key, 0, start_offset) for argv in cmds]
        if out:
            first = out[0]
            assert type(first) is Command
            first.tag = tag
            if complete:
                out[-1].source_offset = end_offset
        return out

    def _scripted(self, cmds: list[rw.Argv], db: int, offset: int) -> list[Entry]:
        """What the filter's script sends for the commands that rebuild a key."""
        script = self._script
        assert script is not None
        out: list[Entry] = []
        for argv in cmds:
            plain = [bytes(a) for a in argv]
            for a, d in script.run(db, command_info(plain), plain):
                out.append(Command(cast("list[Arg]", a), d, command_key(a), 0, offset))
        return out

    def _unsupported(self, db: int, key: bytes, reason: str) -> None:
        self.unsupported_count += 1
        if len(self.unsupported) < _UNSUPPORTED_KEEP:
            self.unsupported.append((db, key, reason))
