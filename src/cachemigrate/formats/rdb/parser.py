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
from collections.abc import Iterator
from typing import BinaryIO, Never

from cachemigrate.errors import RdbFormatError

from . import _types as T
from ._fast import run
from ._state import H, ParserState
from .model import RdbHeader, Record

_HEADER_LEN = 9
DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024
DEFAULT_CHUNK_ELEMENTS = 1000
DEFAULT_FILE_CHUNK = 8 * 1024 * 1024
_STRADDLE = 8 * 1024


class HookedParser(ParserState[H]):
    """Incremental RDB parser: feed bytes, pull records; its hooks return ``H``.

    ``key_hook``, when set, is called for each key the hot loop walks whole (every key but the
    big ones) with the fields of its ``KeyRecord``, instead of making one: ``records()`` then
    yields what the hook returns (the consumer's own object ``H``, e.g. the key's command) in
    place of the record. It may be set or cleared between records.

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
        super().__init__(verify_checksum=verify_checksum, max_value_bytes=max_value_bytes,
                         chunk_elements=chunk_elements, source=source)

    # ---- public surface ------------------------------------------------------------------

    @property
    def header(self) -> RdbHeader | None:
        return self._header

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
        acc = self._acc
        if acc is not None:  # _buf is acc: append in place
            if pos:
                del acc[:pos]
            acc += data
            return
        if type(data) is not bytes:
            data = bytes(data)
        rest = buf[pos:] if pos else buf
        if not rest:
            self._buf = data
        elif len(data) > 4 * _STRADDLE and len(rest) < _STRADDLE:
            # Do not copy a big chunk to join a small leftover: parse the record that straddles
            # them in a small joined head, then move onto the chunk itself (_move_on).
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

    def records(self) -> Iterator[Record | H]:
        """Yield every complete record buffered so far; stop when more bytes are needed."""
        if self._header is None and not self._read_header():
            return iter(())
        return run(self)

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


class RdbParser(HookedParser[Never]):
    """Incremental RDB parser: feed bytes, pull records (``Record``). ``HookedParser[H]`` is the
    same parser typed for hooks that return ``H``."""


def iter_file(
    source: str | os.PathLike[str] | BinaryIO,
    chunk_size: int = DEFAULT_FILE_CHUNK,
    *,
    verify_checksum: bool = True,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Iterator[Record]:
    """Parse an RDB file (a path or a binary file object) and check its end.

    A path is memory-mapped when it can be (the parser walks the mapping: no read copies); a
    file object is read from where it stands, ``chunk_size`` bytes at a time.
    """
    if isinstance(source, (str, os.PathLike)):
        name: object = str(source)
    else:
        name = getattr(source, "name", None)
    parser: RdbParser = RdbParser(verify_checksum=verify_checksum, max_value_bytes=max_value_bytes,
                                  chunk_elements=chunk_elements,
                                  source=name if isinstance(name, str) else None)
    if not isinstance(source, (str, os.PathLike)):
        yield from _iter_fh(parser, source, chunk_size)
        return
    with open(source, "rb") as fh:
        mapped = _map(fh)
        if mapped is None:
            yield from _iter_fh(parser, fh, chunk_size)
            return
        try:
            parser._adopt(mapped)
            yield from parser.records()
            parser.close()
        finally:
            parser._buf = b""
            with contextlib.suppress(BufferError):
                mapped.close()


def _map(fh: BinaryIO) -> mmap.mmap | None:
    try:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None  # empty file, pipe, special file...
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
        with contextlib.suppress(OSError):
            mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


def _iter_fh(parser: RdbParser, fh: BinaryIO, chunk_size: int) -> Iterator[Record]:
    while not parser.done:
        data = fh.read(chunk_size)
        if not data:
            break
        parser.feed(data)
        yield from parser.records()
    parser.close()
