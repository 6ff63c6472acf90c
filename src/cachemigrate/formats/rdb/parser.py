"""The streaming, sans-IO RDB parser.

``feed()`` bytes in any split, iterate ``records()`` until it stops, feed more, repeat; ``close()``
at the end. The hot path walks complete records in one ``bytes`` buffer with integer offsets
and never decodes values; a record cut by the end of the buffer is handed to a resumable slow
path (``_slow.py``) that walks it element group by element group, so no record is rescanned from
its start on every feed and a value over ``max_value_bytes`` turns into ``ValueChunk`` records.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

import anycrc

from cachemigrate.errors import RdbFormatError

from . import _types as T
from ._opcodes import read_opcode_record, skip_key_meta
from ._prims import (
    I32,
    SHORT,
    Malformed,
    Short,
    i64_from,
    read_len,
    read_string,
    skip_string,
    u32be_from,
    u64_from,
)
from ._skip import BLOB_TYPES, VALKEY_BLOB_TYPES, skip_value
from .model import End, KeyRecord, RdbHeader, Record, SelectDb

_CRC = anycrc.Model("CRC64-REDIS")
_HEADER_LEN = 9
DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024
DEFAULT_CHUNK_ELEMENTS = 1000
DEFAULT_FILE_CHUNK = 8 * 1024 * 1024
_ONE_STRING = frozenset(t for t, prefix in BLOB_TYPES.items() if not prefix)
_ONE_STRING_VALKEY = frozenset(t for t, prefix in VALKEY_BLOB_TYPES.items() if not prefix)
_PREFIX_OPS = frozenset({T.OP_EXPIRETIME_MS, T.OP_EXPIRETIME, T.OP_IDLE, T.OP_FREQ})


class RdbParser:
    """Incremental RDB parser: feed bytes, pull records."""

    def __init__(
        self,
        *,
        verify_checksum: bool = True,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        source: str | None = None,
    ) -> None:
        if max_value_bytes < 1 or chunk_elements < 1:
            raise ValueError("max_value_bytes and chunk_elements must be positive")
        self.verify_checksum = verify_checksum
        self.max_value_bytes = max_value_bytes
        self.chunk_elements = chunk_elements
        self.source = source
        self._buf: bytes = b""
        self._base = 0  # stream offset of _buf[0]
        self._pos = 0  # index in _buf of the first byte still needed
        self._accumulate = False  # slow path holds a large record: append in place
        self._need = 0  # stream offset that must be buffered before the slow path can go on
        self._header: RdbHeader | None = None
        self._table: T.TypeTable | None = None
        self._db = 0
        self._done = False
        self._crc = 0
        self._crc_at = 0  # stream offset up to which _crc is computed
        self._slow: Iterator[Record | None] | None = None
        # expire/idle/freq/key_meta read before another opcode: they apply to the next key
        self._pend: tuple[int, int | None, int | None, bytes | None] | None = None

    # ---- public surface ------------------------------------------------------------------

    @property
    def header(self) -> RdbHeader | None:
        return self._header

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet consumed by a yielded record."""
        return self._base + self._pos

    @property
    def done(self) -> bool:
        return self._done

    @property
    def db(self) -> int:
        return self._db

    def remainder(self) -> bytes:
        """Bytes fed after the RDB's checksum (an AOF's RESP tail); empty before the end."""
        return bytes(self._buf[self._pos :]) if self._done else b""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        pos = self._pos
        buf = self._buf
        if pos:
            if self.verify_checksum and not self._done:
                self._crc_upto(pos)
            self._base += pos
            self._pos = 0
            if self._accumulate:
                del buf[:pos]  # type: ignore[attr-defined]
                buf += data
                self._buf = buf
            else:
                self._buf = buf[pos:] + data
        elif self._accumulate:
            buf += data
            self._buf = buf
        else:
            self._buf = buf + data
        if not self._accumulate and type(self._buf) is not bytes:
            self._buf = bytes(self._buf)

    def close(self) -> None:
        """Check the stream ended exactly after a complete RDB (bytes after the CRC are allowed)."""
        if self._header is None:
            raise self._error("stream ended inside the RDB header", 0)
        if not self._done:
            what = "inside a record" if self._base + len(self._buf) > self.offset else "before the EOF opcode"
            raise self._error(f"RDB stream ended {what}", self.offset)

    def records(self) -> Iterator[Record]:
        """Yield every complete record buffered so far; stop when more bytes are needed."""
        if self._header is None and not self._read_header():
            return
        while not self._done:
            if self._slow is not None:
                if self._base + len(self._buf) < self._need:
                    return
                for rec in self._slow:
                    if rec is None:
                        return
                    yield rec
                self._slow = None
                continue
            yield from self._fast()
            if self._slow is None:
                return

    # ---- internals -----------------------------------------------------------------------

    def _error(self, msg: str, offset: int, key: bytes | None = None, type_byte: int | None = None,
               cls: type[RdbFormatError] = RdbFormatError) -> RdbFormatError:
        return cls(msg, offset=offset, source=self.source, key=key, type_byte=type_byte)

    def _read_header(self) -> bool:
        if len(self._buf) < _HEADER_LEN:
            if not (b"REDIS".startswith(self._buf[:5]) or b"VALKEY".startswith(self._buf[:6])):
                raise self._error(f"not an RDB file: bad magic {bytes(self._buf[:9])!r}", 0)
            return False
        try:
            self._header = T.parse_header(self._buf[:_HEADER_LEN])
        except RdbFormatError as exc:
            raise exc.located(source=self.source) from None
        self._table = T.type_table(self._header)
        self._pos = _HEADER_LEN
        return True

    def _crc_upto(self, idx: int) -> None:
        start = self._crc_at - self._base
        if idx > start:
            self._crc = _CRC.calc(memoryview(self._buf)[start:idx], self._crc)
            self._crc_at = self._base + idx

    def _drop_to(self, idx: int) -> None:
        """Consume the buffer up to idx; leave the slow path's accumulate mode."""
        if not self._accumulate:
            self._pos = idx
            return
        if self.verify_checksum and not self._done:
            self._crc_upto(idx)
        self._base += idx
        self._buf = bytes(self._buf[idx:])
        self._pos = 0
        self._accumulate = False

    def _start_accumulating(self) -> None:
        """A large record is being walked: append fed bytes in place instead of re-joining."""
        self._buf = bytearray(self._buf)  # type: ignore[assignment]
        self._accumulate = True

    def _end(self, buf: bytes, i: int) -> End:
        """The EOF opcode at index i; raises Short until the 8-byte checksum is buffered."""
        assert self._header is not None
        checksum: int | None = None
        end = i + 1
        if self._header.version >= 5:
            if i + 9 > len(buf):
                raise Short
            checksum = u64_from(buf, i + 1)[0]
            end = i + 9
        if self.verify_checksum and checksum:
            self._crc_upto(i + 1)
            if self._crc != checksum:
                raise self._error(
                    f"checksum mismatch: stored {checksum:#018x}, computed {self._crc:#018x}",
                    self._base + i + 1,
                )
        self._done = True
        self._pos = end
        return End(checksum, self._base + i)

    def _fail(self, exc: Exception, start: int, key: bytes | None, t: int | None) -> RdbFormatError:
        if isinstance(exc, RdbFormatError):
            cls = type(exc)
            return self._error(exc.reason, exc.offset if exc.offset is not None else start,
                               exc.key or key, exc.type_byte if exc.type_byte is not None else t, cls)
        return self._error(str(exc), start, key, t)

    def _fast(self) -> Iterator[Record]:  # noqa: C901 - the hot loop is inlined on purpose
        """The hot path over complete records; hands an incomplete or big one to the slow path."""
        from ._slow import slow_record

        table = self._table
        assert table is not None and self._header is not None
        types = table.types
        valkey = table.valkey
        one_string = _ONE_STRING_VALKEY if valkey else _ONE_STRING
        key_meta_op = T.OP_KEY_META_OR_SLOT_IMPORT if table.key_meta else -1
        maxv = self.max_value_bytes
        buf = self._buf
        base = self._base
        pos = self._pos
        blen = len(buf)
        db = self._db
        pend = self._pend
        start = pos
        t = -1
        key: bytes | None = None
        try:
            while pos < blen:
                start = pos
                key = None
                t = buf[pos]
                if t in types or t in _PREFIX_OPS or t == key_meta_op:
                    if pend is None:
                        expire = -1
                        idle: int | None = None
                        freq: int | None = None
                        meta: bytes | None = None
                    else:
                        expire, idle, freq, meta = pend  # cleared once the key is out
                    while t not in types:
                        if t == T.OP_EXPIRETIME_MS:
                            expire = i64_from(buf, pos + 1)[0]
                            pos += 9
                        elif t == T.OP_EXPIRETIME:
                            expire = I32.unpack_from(buf, pos + 1)[0] * 1000
                            pos += 5
                        elif t == T.OP_IDLE:
                            idle, pos = read_len(buf, pos + 1)
                        elif t == T.OP_FREQ:
                            freq = buf[pos + 1]
                            pos += 2
                        elif t == key_meta_op:
                            p = skip_key_meta(buf, pos + 1)
                            meta = buf[pos + 1 : p]
                            pos = p
                        else:
                            break
                        t = buf[pos]
                    if t not in types:
                        # Another opcode (KeyDB puts an AUX here): like Redis, keep the expire
                        # and LRU/LFU for the next key.
                        pend = self._pend = (expire, idle, freq, meta)
                        self._pos = pos
                        continue
                    p = pos + 1
                    b = buf[p]
                    if b < 0x40:
                        kend = p + 1 + b
                        key = buf[p + 1 : kend]
                    else:
                        key, kend = read_string(buf, p)
                    if t in one_string:
                        b = buf[kend]
                        if b < 0x40:
                            vend = kend + 1 + b
                        elif b < 0x80:
                            vend = kend + 2 + (((b & 0x3F) << 8) | buf[kend + 1])
                        elif b == 0x80:
                            vend = kend + 5 + u32be_from(buf, kend + 1)[0]
                        elif b == 0xC3 and buf[kend + 1] < 0x40 and buf[kend + 2] < 0x80:
                            # LZF with 6-bit compressed length and 6/14-bit raw length
                            b = buf[kend + 2]
                            vend = kend + (3 if b < 0x40 else 4) + buf[kend + 1]
                        elif b == 0xC3 and buf[kend + 1] < 0x80 and buf[kend + 3] < 0x80:
                            b = buf[kend + 3]
                            vend = (kend + (4 if b < 0x40 else 5)
                                    + (((buf[kend + 1] & 0x3F) << 8) | buf[kend + 2]))
                        else:
                            vend = skip_string(buf, kend)
                    else:
                        vend = skip_value(buf, kend, t, valkey)
                    if vend > blen:
                        raise Short
                    if vend - kend > maxv:
                        break  # big value: the slow path chunks it
                    pos = vend
                    self._pos = vend
                    if pend is not None:
                        pend = self._pend = None
                    rec = KeyRecord(db, key, t, buf[kend:vend], expire, idle, freq, base + start, base + vend)
                    if meta is not None:
                        rec.key_meta = meta
                    yield rec
                    if self._buf is not buf:  # fed while suspended
                        buf, base, pos, blen = self._buf, self._base, self._pos, len(self._buf)
                elif t == T.OP_EOF:
                    yield self._end(buf, pos)
                    return
                else:
                    orec, pos = read_opcode_record(buf, pos, t, table)
                    if pos > blen:
                        raise Short
                    self._pos = pos
                    if orec is not None:
                        orec.offset = base + start
                        if type(orec) is SelectDb:
                            self._db = db = orec.db
                        yield orec
                        if self._buf is not buf:
                            buf, base, pos, blen = self._buf, self._base, self._pos, len(self._buf)
            else:
                self._pos = pos
                return
        except SHORT:
            pass
        except (Malformed, RdbFormatError) as exc:
            raise self._fail(exc, base + start, key, t) from None
        except (ValueError, OverflowError, MemoryError) as exc:
            raise self._error(f"malformed record: {exc}", base + start, key, t) from None
        self._pos = start
        self._slow = slow_record(self, base + start)


def iter_file(
    source: str | os.PathLike[str] | BinaryIO,
    chunk_size: int = DEFAULT_FILE_CHUNK,
    **parser_options: object,
) -> Iterator[Record]:
    """Parse an RDB file (a path or a binary file object) chunk by chunk; checks the end."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            yield from _iter_fh(fh, chunk_size, str(source), parser_options)
    else:
        yield from _iter_fh(source, chunk_size, getattr(source, "name", None), parser_options)


def _iter_fh(fh: BinaryIO, chunk_size: int, name: object, options: dict[str, object]) -> Iterator[Record]:
    options.setdefault("source", name if isinstance(name, str) else None)
    parser = RdbParser(**options)  # type: ignore[arg-type]
    while not parser.done:
        data = fh.read(chunk_size)
        if not data:
            break
        parser.feed(data)
        yield from parser.records()
    parser.close()
