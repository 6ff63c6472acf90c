"""The parser's state: the buffered bytes, stream offsets, checksum and pending key prefix.

``HookedParser`` (and ``RdbParser``, ``parser.py``) is this state plus its public surface; the record walkers
(``_fast.py``, ``_slow.py``, ``_bigkey.py``) read and move it through this class, so none of
them imports the parser.

The buffer is ``bytes`` to the walkers, which only index and slice it. Two other buffers stand
in for it: a memory-mapped whole file (``iter_file``: an mmap indexes and slices exactly like
bytes), and the bytearray a large record accumulates into (``_start_accumulating``: fed bytes
are appended in place; the slow path copies out with ``bytes()`` what it keeps).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, cast

import anycrc

from cachemigrate.errors import RdbFormatError

from . import _types as T
from ._prims import Short, u64_from
from .model import End, KeyRecord, RdbHeader, Record

H = TypeVar("H")  # what the parser's hooks return

_CRC = anycrc.Model("CRC64-REDIS")

KeyHook = Callable[[int, bytes, int, bytes, int, int | None, int | None, int, int, bytes | None], H]
"""``hook(db, key, type_byte, raw_value, expire_ms, idle, freq, offset, end_offset, key_meta)``.

Positional, the fields of a ``KeyRecord`` one by one: the hot loop calls it once per key.
Measured with CPython 3.11 on the build machine: this call 35 ns; the same with keyword
arguments 61 ns; a ``KeyRecord`` made to pass instead 158 ns.
"""

BatchHook = Callable[[bytes, int, int, int, int, int], "tuple[H | None, int] | None"]
"""``hook(buf, pos, end, db, base, max_value_bytes) -> (result or None, new_pos) | None``."""

RawHook = Callable[[KeyRecord], bool]
"""``hook(record) -> bool``: asked for each big key whose value can be walked as bytes (not a
module value): True, its value follows as ``RawChunk`` records (the record says ``raw``)."""


class ParserState(Generic[H]):
    """What ``RdbParser`` holds while it walks; see the module docstring."""

    def __init__(
        self, *, verify_checksum: bool, max_value_bytes: int, chunk_elements: int, source: str | None
    ) -> None:
        if max_value_bytes < 1 or chunk_elements < 1:
            raise ValueError("max_value_bytes and chunk_elements must be positive")
        self.verify_checksum = verify_checksum
        self.max_value_bytes = max_value_bytes
        self.chunk_elements = chunk_elements
        self.source = source
        self._buf: bytes = b""
        self._acc: bytearray | None = None  # _buf itself while a large record accumulates
        self._base = 0  # stream offset of _buf[0]
        self._pos = 0  # index in _buf of the first byte still needed
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
        self.key_hook: KeyHook[H] | None = None
        self.batch_hook: BatchHook[H] | None = None
        self.raw_hook: RawHook | None = None

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet consumed by a yielded record."""
        return self._base + self._pos

    def _wait(self, need: int | None = None) -> None:
        """The slow path stalls until stream offset ``need`` (default: one more byte) is buffered."""
        self._need = need if need is not None else self._base + len(self._buf) + 1

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

    def _crc_upto(self, idx: int) -> None:
        start = self._crc_at - self._base
        if idx > start:
            self._crc = _CRC.calc(memoryview(self._buf)[start:idx], self._crc)
            self._crc_at = self._base + idx

    def _drop_to(self, idx: int) -> None:
        """Consume the buffer up to idx; leave the slow path's accumulate mode."""
        if self._acc is None:
            self._pos = idx
            return
        if self.verify_checksum and not self._done:
            self._crc_upto(idx)
        self._base += idx
        self._buf = bytes(self._acc[idx:])
        self._pos = 0
        self._acc = None

    def _adopt(self, whole: mmap.mmap) -> None:
        """Walk a whole memory-mapped file in place (``iter_file``); nothing else is fed."""
        assert not self._buf and self._header is None
        self._buf = cast("bytes", whole)

    def _start_accumulating(self) -> None:
        """A large record is being walked: append fed bytes in place instead of re-joining."""
        if type(self._buf) is not bytes:
            return  # a mapped whole file: nothing more will be fed
        if self._next is not None:
            self._materialize()
        self._acc = bytearray(self._buf)
        self._buf = cast("bytes", self._acc)

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
