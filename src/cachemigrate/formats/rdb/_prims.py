"""RDB primitives over ``bytes`` + integer offsets: lengths, strings, doubles, skips.

Every reader takes ``(buf, pos)`` and returns ``(value, new_pos)``. Running off the end of
``buf`` raises ``IndexError``/``struct.error`` or ``Short``: in a stream that means "feed me
more", in a complete value it means the value is malformed. Callers decide which.
"""

from __future__ import annotations

import struct

import lzf

U8 = struct.Struct("<B")
I8 = struct.Struct("<b")
I16 = struct.Struct("<h")
I32 = struct.Struct("<i")
U32 = struct.Struct("<I")
U32BE = struct.Struct(">I")
U64BE = struct.Struct(">Q")
I64 = struct.Struct("<q")
U64 = struct.Struct("<Q")
F32 = struct.Struct("<f")
F64 = struct.Struct("<d")
STREAM_ID = struct.Struct(">QQ")

u32be_from = U32BE.unpack_from
u64be_from = U64BE.unpack_from
i64_from = I64.unpack_from
u64_from = U64.unpack_from
f64_from = F64.unpack_from

ENC_INT8, ENC_INT16, ENC_INT32, ENC_LZF = 0, 1, 2, 3


class Short(Exception):
    """The buffer ends inside the item being read."""


class Malformed(Exception):
    """Bytes that cannot be what they claim (an internal signal, wrapped at the boundary)."""


SHORT = (IndexError, struct.error, Short)


def read_len(buf: bytes, pos: int) -> tuple[int, int]:
    """A length; a special-encoding marker (11xxxxxx) is malformed here."""
    b = buf[pos]
    kind = b >> 6
    if kind == 0:
        return b, pos + 1
    if kind == 1:
        return ((b & 0x3F) << 8) | buf[pos + 1], pos + 2
    if b == 0x80:
        return u32be_from(buf, pos + 1)[0], pos + 5
    if b == 0x81:
        return u64be_from(buf, pos + 1)[0], pos + 9
    raise Malformed(f"expected a length, found encoding byte 0x{b:02x}")


def read_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    """A string, with integer encodings rendered as decimal text and LZF decompressed."""
    b = buf[pos]
    kind = b >> 6
    if kind == 0:
        end = pos + 1 + b
        pos += 1
    elif kind == 1:
        end = pos + 2 + (((b & 0x3F) << 8) | buf[pos + 1])
        pos += 2
    elif kind == 2:
        n, pos = read_len(buf, pos)
        end = pos + n
    else:
        enc = b & 0x3F
        if enc == ENC_INT8:
            return b"%d" % I8.unpack_from(buf, pos + 1)[0], pos + 2
        if enc == ENC_INT16:
            return b"%d" % I16.unpack_from(buf, pos + 1)[0], pos + 3
        if enc == ENC_INT32:
            return b"%d" % I32.unpack_from(buf, pos + 1)[0], pos + 5
        if enc == ENC_LZF:
            clen, pos = read_len(buf, pos + 1)
            ulen, pos = read_len(buf, pos)
            end = pos + clen
            if end > len(buf):
                raise Short
            return lzf_decompress(buf[pos:end], ulen), end
        raise Malformed(f"unknown string encoding {enc}")
    if end > len(buf):
        raise Short
    return buf[pos:end], end


def lzf_decompress(data: bytes, ulen: int) -> bytes:
    if ulen == 0:
        return b""
    if ulen > 300 * len(data) + 64:  # LZF cannot expand that much: a corrupt length, not a bomb
        raise Malformed(f"LZF claims {ulen} bytes from {len(data)} compressed bytes")
    try:
        out = lzf.decompress(data, ulen + 1)
    except ValueError as exc:
        raise Malformed(f"LZF data does not decompress: {exc}") from None
    if out is None or len(out) != ulen:
        raise Malformed(f"LZF data decompresses to {0 if out is None else len(out)} bytes, not {ulen}")
    return bytes(out)


def skip_string(buf: bytes, pos: int) -> int:
    b = buf[pos]
    kind = b >> 6
    if kind == 0:
        end = pos + 1 + b
    elif kind == 1:
        end = pos + 2 + (((b & 0x3F) << 8) | buf[pos + 1])
    elif kind == 2:
        n, p = read_len(buf, pos)
        end = p + n
    else:
        enc = b & 0x3F
        if enc == ENC_INT8:
            end = pos + 2
        elif enc == ENC_INT16:
            end = pos + 3
        elif enc == ENC_INT32:
            end = pos + 5
        elif enc == ENC_LZF:
            clen, p = read_len(buf, pos + 1)
            _, p = read_len(buf, p)
            end = p + clen
        else:
            raise Malformed(f"unknown string encoding {enc}")
    if end > len(buf):
        raise Short
    return end


def string_raw_len(buf: bytes, pos: int) -> tuple[int, int, bool]:
    """For a string header at pos: (payload_start, payload_len, is_lzf_or_int)."""
    b = buf[pos]
    if b >> 6 == 3:
        return pos, 0, True
    n, p = read_len(buf, pos)
    return p, n, False


def read_double_ascii(buf: bytes, pos: int) -> tuple[float, int]:
    """ZSET (type 3) score: 1-byte length then ASCII; 253/254/255 = nan/+inf/-inf."""
    n = buf[pos]
    if n == 253:
        return float("nan"), pos + 1
    if n == 254:
        return float("inf"), pos + 1
    if n == 255:
        return float("-inf"), pos + 1
    end = pos + 1 + n
    if end > len(buf):
        raise Short
    try:
        return float(buf[pos + 1 : end]), end
    except ValueError:
        raise Malformed(f"bad ASCII score {buf[pos + 1 : end]!r}") from None


def need(buf: bytes, end: int) -> None:
    if end > len(buf):
        raise Short


def skip_module_ops(buf: bytes, pos: int) -> int:
    """Skip a module opcode sequence up to and including its EOF (formats.md §3.8)."""
    while True:
        op, pos = read_len(buf, pos)
        if op == 0:
            return pos
        if op in (1, 2):
            _, pos = read_len(buf, pos)
        elif op == 3:
            pos += 4
        elif op == 4:
            pos += 8
        elif op == 5:
            pos = skip_string(buf, pos)
        else:
            raise Malformed(f"unknown module opcode {op}")
        if pos > len(buf):
            raise Short


_MODULE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def module_name(module_id: int) -> str:
    """The 9-character name in the top 54 bits of a module id (the low 10 bits are encver)."""
    bits = module_id >> 10
    return "".join(_MODULE_CHARS[(bits >> (6 * (8 - i))) & 63] for i in range(9))
