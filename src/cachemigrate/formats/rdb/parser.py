"""The streaming, sans-IO RDB parser.

``feed()`` bytes in any split, iterate ``records()`` until it stops, feed more, repeat; ``close()``
at the end. The hot path walks complete records in one ``bytes`` buffer with integer offsets
and never decodes values; a record cut by the end of the buffer is handed to a resumable slow
path (``_slow.py``) that walks it element group by element group, so no record is rescanned from
its start on every feed and a value over ``max_value_bytes`` turns into ``ValueChunk`` records.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

import anycrc

from cachemigrate.errors import RdbFormatError

from . import _types as T
from ._fast import run
from ._prims import (
    Short,
    u64_from,
)
from .model import End, RdbHeader, Record

_CRC = anycrc.Model("CRC64-REDIS")
_HEADER_LEN = 9
DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024
DEFAULT_CHUNK_ELEMENTS = 1000
DEFAULT_FILE_CHUNK = 8 * 1024 * 1024
_STRADDLE = 8 * 1024
_PREFIX_OPS = frozenset({T.OP_EXPIRETIME_MS, T.OP_EXPIRETIME, T.OP_IDLE, T.OP_FREQ})


KeyHook = Callable[
    [int, bytes, int, bytes, int, "int | None", "int | None", int, int, "bytes | None"], object
]
"""``hook(db, key, type_byte, raw_value, expire_ms, idle, freq, offset, end_offset, key_meta)``."""

BatchHook = Callable[[bytes, int, int, int, int, int], "tuple[object, int] | None"]
"""``hook(buf, pos, end, db, base, max_value_bytes) -> (result or None, new_pos) | None``."""


class RdbParser:
    """Incremental RDB parser: feed bytes, pull records.

    ``key_hook``, when set, is called for each key the hot loop walks whole (every key but the
    big ones) with the fields of its ``KeyRecord``, instead of making one: ``records()`` then
    yields what the hook returns (the consumer's own object, e.g. the key's command) in place
    of the record. It may be set or cleared between records.

    ``batch_hook``, when set, is offered the buffer at each record boundary (with no pending
    expire/LRU prefix): it may take a run of whole key records at once (the C walker, see
    ``walk.py``) and return what to yield (None: nothing) and where the parser goes on, or None
    to leave the record to the Python loop. It must not take a value over ``max_value_bytes``.
    """

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
        self._next: bytes | None = None  # a fed chunk whose first bytes are joined in _buf
        self._next_off = 0  # where that chunk starts in _buf
        # expire/idle/freq/key_meta read before another opcode: they apply to the next key
        self._pend: tuple[int, int | None, int | None, bytes | None] | None = None
        self.key_hook: KeyHook | None = None
        self.batch_hook: BatchHook | None = None

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
        if self._next is not None:
            self._materialize()
        return bytes(self._buf[self._pos :]) if self._done else b""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._next is not None:
            self._materialize()
        pos = self._pos
        buf = self._buf
        if pos:
            if self.verify_checksum and not self._done:
                self._crc_upto(pos)
            self._base += pos
            self._pos = 0
        if self._accumulate:
            if pos:
                del buf[:pos]  # type: ignore[attr-defined]
            buf += data
            self._buf = buf
            return
        if type(data) is not bytes:
            data = bytes(data)
        rest = buf[pos:] if pos else buf
        if not rest:
            self._buf = data
        elif len(data) > 4 * _STRADDLE and len(rest) < _STRADDLE:
            # Do not copy a big chunk to join a small leftover: parse the record that straddles
            # them in a small joined head, then move onto the chunk itself (_switch).
            self._buf = rest + data[:_STRADDLE]
            self._next = data
            self._next_off = len(rest)
        else:
            self._buf = rest + data

    def close(self) -> None:
        """Check the stream ended exactly after a complete RDB (bytes after the CRC are allowed)."""
        if self._header is None:
            raise self._error("stream ended inside the RDB header", 0)
        if not self._done:
            what = "inside a record" if self._buffered_end() > self.offset else "before the EOF opcode"
            raise self._error(f"RDB stream ended {what}", self.offset)

    def records(self) -> Iterator[Record]:
        """Yield every complete record buffered so far; stop when more bytes are needed."""
        if self._header is None and not self._read_header():
            return iter(())
        return run(self)

    # ---- internals -----------------------------------------------------------------------

    def _buffered_end(self) -> int:
        if self._next is not None:
            return self._base + self._next_off + len(self._next)
        return self._base + len(self._buf)

    def _move_on(self) -> None:
        """The small joined head is used up: continue on the fed chunk itself, or join them."""
        if self._pos >= self._next_off:
            off = self._next_off
            if self.verify_checksum and not self._done:
                self._crc_upto(off)
            assert self._next is not None
            self._base += off
            self._pos -= off
            self._buf = self._next
            self._next = None
        else:
            self._materialize()

    def _materialize(self) -> None:
        assert self._next is not None
        self._buf = self._buf[: self._next_off] + self._next
        self._next = None

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

    def _adopt(self, whole: mmap.mmap) -> None:
        """Walk a whole memory-mapped file in place (``iter_file``); nothing else is fed."""
        assert not self._buf and self._header is None
        self._buf = whole  # type: ignore[assignment]  # indexes and slices like bytes

    def _start_accumulating(self) -> None:
        """A large record is being walked: append fed bytes in place instead of re-joining."""
        if type(self._buf) is not bytes:
            return  # a mapped whole file: nothing more will be fed
        if self._next is not None:
            self._materialize()
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


def iter_file(
    source: str | os.PathLike[str] | BinaryIO,
    chunk_size: int = DEFAULT_FILE_CHUNK,
    **parser_options: object,
) -> Iterator[Record]:
    """Parse an RDB file (a path or a binary file object) and check its end.

    A path is memory-mapped when it can be (the parser walks the mapping: no read copies); a
    file object is read from where it stands, ``chunk_size`` bytes at a time.
    """
    if isinstance(source, (str, os.PathLike)):
        parser_options.setdefault("source", str(source))
        with open(source, "rb") as fh:
            mapped = _map(fh)
            if mapped is None:
                yield from _iter_fh(fh, chunk_size, parser_options)
                return
            parser = RdbParser(**parser_options)  # type: ignore[arg-type]
            try:
                parser._adopt(mapped)
                yield from parser.records()
                parser.close()
            finally:
                parser._buf = b""
                with contextlib.suppress(BufferError):
                    mapped.close()
    else:
        name = getattr(source, "name", None)
        parser_options.setdefault("source", name if isinstance(name, str) else None)
        yield from _iter_fh(source, chunk_size, parser_options)


def _map(fh: BinaryIO) -> mmap.mmap | None:
    try:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None  # empty file, pipe, special file...
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
        with contextlib.suppress(OSError):
            mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


def _iter_fh(fh: BinaryIO, chunk_size: int, options: dict[str, object]) -> Iterator[Record]:
    parser = RdbParser(**options)  # type: ignore[arg-type]
    while not parser.done:
        data = fh.read(chunk_size)
        if not data:
            break
        parser.feed(data)
        yield from parser.records()
    parser.close()
