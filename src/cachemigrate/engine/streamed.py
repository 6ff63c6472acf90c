"""A big key's RESTORE whose payload is streamed from the source: bounded memory, no rewrite.

The parser hands a big value on as its bytes (``RawChunk`` records, ``formats/rdb/_raw.py``);
its length is only known at its end, and RESP wants a bulk string's length before its bytes. So
the bytes go to a spool (an unlinked temporary file, 0600) as they arrive while the payload's
CRC-64 is chained over them (``formats.dump``, the one CRC of the Python side); at the value's
end the command is written out as ``Piece`` entries read back from the spool:
``RESTORE key ttl $<1 + span + 10>`` + the type byte, the value's bytes, then the 2-byte RDB
version, the CRC and the command's other arguments. Memory holds one piece at a time.

A payload above the target's ``proto-max-bulk-len`` cannot be sent as one argument: the spooled
value is then read again as an RDB of that one key (``replay``) and rewritten in chunks of plain
commands, as the big keys of a target that cannot RESTORE them are.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from cachemigrate.engine.entry import Piece
from cachemigrate.formats.dump import FOOTER_SIZE, crc64, payload_crc_start, payload_footer
from cachemigrate.formats.rdb.model import RdbHeader
from cachemigrate.protocol.commands import LARGE_ARG, restore_frame

PIECE_BYTES = 1 << 20  # bytes of value per piece (the last one takes up to twice that)
assert PIECE_BYTES > LARGE_ARG  # every piece of a multi-piece command is a large one (writer)


@dataclass(slots=True, kw_only=True)
class StreamedRestore:
    """One big key on its way: what its RESTORE needs, the spool of its value's bytes."""

    key: bytes  # the name it gets in the target
    source_key: bytes  # its name in the source (the RawChunk records carry it)
    db: int  # target db
    type_byte: int
    version: int  # DUMP footer version
    expire_ms: int  # -1: none
    idle: int | None
    freq: int | None
    replace: bool
    start_offset: int
    tag: str
    size: int = 0  # value bytes spooled so far
    _crc: int = 0
    _spool: BinaryIO | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._crc = payload_crc_start(self.type_byte)
        # Open across the key's records, closed by pieces()/replay()/close(): no with-block.
        self._spool = tempfile.TemporaryFile(prefix="cachemigrate-bigkey-")  # noqa: SIM115

    @property
    def payload_len(self) -> int:
        return 1 + self.size + FOOTER_SIZE

    def add(self, data: bytes) -> None:
        assert self._spool is not None
        self._spool.write(data)
        self._crc = crc64(data, self._crc)
        self.size += len(data)

    def pieces(self, end_offset: int) -> Iterator[Piece]:
        """The command, piece by piece (one ``Piece`` when the value fits in one)."""
        spool = self._spool
        assert spool is not None
        spool.flush()
        spool.seek(0)
        head, tail = restore_frame(self.key, self.expire_ms, self.payload_len, replace=self.replace,
                                   idletime=self.idle, freq=self.freq)
        head += bytes((self.type_byte,))
        footer = payload_footer(self._crc, self.version) + tail
        charge = len(head) + self.size + len(footer)
        left = self.size
        first = True
        try:
            while True:
                n = left if left < 2 * PIECE_BYTES else PIECE_BYTES
                data = spool.read(n)
                if len(data) != n:
                    raise OSError(f"big-key spool gave {len(data)} bytes of {n}")
                left -= n
                wire = b"".join((head, data, footer)) if first and not left else \
                    b"".join((head, data)) if first else b"".join((data, footer)) if not left else data
                yield Piece(wire, len(wire), charge if first else 0, 0 if left else 1, self.key, self.db,
                            self.start_offset if left else end_offset, "" if left else self.tag)
                first = False
                if not left:
                    return
        finally:
            self.close()

    def replay(self, header: RdbHeader) -> Iterator[bytes]:
        """An RDB holding this one key (its source name, no expire: the caller has the record),
        read back from the spool a piece at a time: for the rewrite when the payload is too big."""
        spool = self._spool
        assert spool is not None
        spool.flush()
        spool.seek(0)
        magic = b"VALKEY%03d" % header.version if header.is_valkey else b"REDIS%04d" % header.version
        yield magic + bytes((self.type_byte,)) + _rdb_string(self.source_key)
        try:
            while data := spool.read(PIECE_BYTES):
                yield data
        finally:
            self.close()
        yield b"\xff" + bytes(8)  # EOF, checksum 0: not checked

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def _rdb_string(data: bytes) -> bytes:
    n = len(data)
    if n < 1 << 6:
        return bytes((n,)) + data
    if n < 1 << 14:
        return bytes((0x40 | n >> 8, n & 0xFF)) + data
    if n < 1 << 32:
        return b"\x80" + n.to_bytes(4, "big") + data
    return b"\x81" + n.to_bytes(8, "big") + data
