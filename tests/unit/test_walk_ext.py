"""The C walker (``formats/rdb/_walk.c``) writes byte for byte the RESTORE commands of the
pure-Python path it stands in for.

Mode A is the reference: ``RdbParser`` with a ``key_hook`` that packs each key with
``formats.dump.restore_packer`` when the fast path would (a walkable type, no LRU/LFU or key
metadata, not a tiny collection, not expired). Mode B is the same plus a ``batch_hook`` that
calls ``walk.walk``: the keys the walker leaves go through the same ``key_hook``. Both must give
the same commands in the same order and dbs, leave the same keys to the Python path, count the
same keys per type byte and the same expired keys, and fail (if they fail) at the same offset.
"""

from __future__ import annotations

import mmap
import random
import struct
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import anycrc
import lzf
import pytest

from cachemigrate.engine.transform import _IS_COLLECTION, _TINY
from cachemigrate.errors import RdbFormatError
from cachemigrate.formats.dump import restore_packer
from cachemigrate.formats.rdb import walk as c_walk
from cachemigrate.formats.rdb.model import KeyRecord
from cachemigrate.formats.rdb.parser import DEFAULT_MAX_VALUE_BYTES, RdbParser
from support.corpus import CorpusFile, rdb_files, requires_corpus
from support.require import C_WALKER, requirement

WALK = c_walk.walk
CRC64 = c_walk.crc64
pytestmark = requirement(WALK is not None, C_WALKER)

FILES = rdb_files()
CRC = anycrc.Model("CRC64-REDIS")
NOW_MS = 1_700_000_000_000  # 2023-11-14: about half of the corpus keys with a TTL are past it
OUT_LIMIT = 1 << 20
SENT = ("hooked",)  # what both hooks hand the parser to yield


def footer_for(version: int) -> bytes:
    return c_walk.footer_table([version if t in c_walk.WALK_TYPES else None for t in range(256)])


# ---- the two modes ------------------------------------------------------------------------------


@dataclass
class Outcome:
    # ["cmd", db, bytearray] (consecutive commands of one db joined) | ("left", ...) | ("big", ...)
    items: list[object] = field(default_factory=list)
    counts: array[int] = field(default_factory=lambda: array("Q", bytes(256 * 8)))
    expired: int = 0
    error: tuple[str, int | None] | None = None
    ends: set[int] = field(default_factory=set)  # stream offsets where a key record ends
    stops: list[int] = field(default_factory=list)  # stream offsets where walk() handed back
    walked: int = 0  # keys written by the C walker
    packed: int = 0  # keys packed by the Python path

    def same_as(self, ref: Outcome) -> None:
        assert self.error == ref.error
        assert self.items == ref.items
        assert list(self.counts) == list(ref.counts)
        assert self.expired == ref.expired
        assert self.walked + self.packed == ref.packed
        missing = [s for s in self.stops if s not in ref.ends]
        assert not missing, f"walk() stopped inside records at {missing[:5]}"


def resp_commands(data: bytes) -> list[list[bytes]]:
    """Split a run of RESP arrays of bulk strings (what walk() writes)."""
    out: list[list[bytes]] = []
    p = 0
    while p < len(data):
        assert data[p : p + 1] == b"*", (p, data[p : p + 20])
        e = data.index(b"\r\n", p)
        argc = int(data[p + 1 : e])
        p = e + 2
        argv: list[bytes] = []
        for _ in range(argc):
            assert data[p : p + 1] == b"$"
            e = data.index(b"\r\n", p)
            n = int(data[p + 1 : e])
            argv.append(data[e + 2 : e + 2 + n])
            assert data[e + 2 + n : e + 4 + n] == b"\r\n"
            p = e + 4 + n
        out.append(argv)
    return out


class Mode:
    """Drives one parse; ``walk`` True is mode B."""

    def __init__(self, *, now_ms: int, replace: bool, walk: bool, out_limit: int = OUT_LIMIT,
                 footer: bytes | None = None, check_wire: bool = True) -> None:
        """``check_wire``: split each walk() output into its commands (one per key, only the last
        may go past ``out_limit``); the byte comparison with mode A checks the rest."""
        self.now = now_ms
        self.check_wire = check_wire
        self.replace = replace
        self.walk = walk
        self.out_limit = out_limit
        self.pack = restore_packer(replace)
        self.footer = footer
        self.parser: RdbParser | None = None
        self.o = Outcome()

    def _versions(self) -> bytes:
        if self.footer is None:
            assert self.parser is not None and self.parser.header is not None
            self.footer = footer_for(self.parser.header.version)
        return self.footer

    def _cmd(self, db: int, data: bytes) -> None:
        items = self.o.items
        last = items[-1] if items else None
        if isinstance(last, list) and last[1] == db:
            last[2] += data
        else:
            items.append(["cmd", db, bytearray(data)])

    def key_hook(self, db: int, key: bytes, t: int, raw: bytes, exp: int, idle: int | None,
                 freq: int | None, offset: int, end: int, meta: bytes | None) -> object:
        o = self.o
        o.ends.add(end)
        if exp != -1 and exp < self.now:
            o.expired += 1
            return SENT
        version = self._versions()[t]
        key, raw = bytes(key), bytes(raw)
        if (not version or idle is not None or freq is not None or meta is not None
                or (len(raw) <= _TINY and _IS_COLLECTION["redis"][t])):
            o.items.append(("left", db, key, t, raw, exp, idle, freq, meta))
            return SENT
        o.counts[t] += 1
        o.packed += 1
        self._cmd(db, self.pack(key, exp, t, raw, version))
        return SENT

    def batch_hook(self, buf: bytes, pos: int, end: int, db: int, base: int,
                   max_value: int) -> tuple[object, int] | None:
        assert WALK is not None
        o = self.o
        before = sum(o.counts)
        out, npos, keys, expired = WALK(buf, pos, end, self._versions(), self.now, self.replace,
                                        max_value, self.out_limit, o.counts)
        assert pos <= npos <= end
        if npos == pos:
            assert (out, keys, expired) == (b"", 0, 0)
            return None
        o.stops.append(base + npos)
        o.expired += expired
        o.walked += keys
        assert sum(o.counts) - before == keys
        if self.check_wire:
            cmds = resp_commands(out)
            assert len(cmds) == keys
            # Only the last command may go past the output limit.
            assert not cmds or len(out) - _wire_len(cmds[-1]) < self.out_limit
        assert bool(out) == bool(keys)
        if out:
            self._cmd(db, out)
        return SENT, npos

    def record(self, rec: object) -> None:
        if rec is SENT or not isinstance(rec, KeyRecord):
            return  # opcodes, value chunks, the end
        if rec.big:
            self.o.ends.add(rec.end_offset)
            if rec.expire_ms != -1 and rec.expire_ms < self.now:
                self.o.expired += 1
            else:
                self.o.items.append(("big", rec.db, bytes(rec.key), rec.type_byte, rec.expire_ms))
            return
        self.key_hook(rec.db, rec.key, rec.type_byte, rec.value, rec.expire_ms, rec.idle, rec.freq,
                      rec.offset, rec.end_offset, rec.key_meta)

    def run(self, data: bytes, pieces: Sequence[int] | None = None,
            max_value: int = DEFAULT_MAX_VALUE_BYTES) -> Outcome:
        p = self.parser = RdbParser(max_value_bytes=max_value)
        p.key_hook = self.key_hook
        if self.walk:
            p.batch_hook = self.batch_hook
        try:
            for piece in split(data, pieces):
                p.feed(piece)
                for rec in p.records():
                    self.record(rec)
            p.close()
        except RdbFormatError as exc:
            self.o.error = (type(exc).__name__, exc.offset)
        return self.o


def _wire_len(argv: list[bytes]) -> int:
    return len(b"*%d\r\n" % len(argv)) + sum(len(b"$%d\r\n" % len(a)) + len(a) + 2 for a in argv)


def split(data: bytes, pieces: Sequence[int] | None) -> Iterator[bytes]:
    if pieces is None:
        yield data
        return
    pos = 0
    for n in pieces:
        if pos >= len(data):
            return
        yield data[pos : pos + n]
        pos += n
    if pos < len(data):
        yield data[pos:]


def random_pieces(seed: int, total: int) -> list[int]:
    rng = random.Random(seed)
    sizes: list[int] = []
    left = total
    while left > 0:
        n = rng.choice((1, rng.randint(1, 16), rng.randint(1, 700), rng.randint(1, 64 << 10)))
        sizes.append(n)
        left -= n
    return sizes


def both(data: bytes, *, now_ms: int = NOW_MS, replace: bool = True, pieces: Sequence[int] | None = None,
         out_limit: int = OUT_LIMIT, max_value: int = DEFAULT_MAX_VALUE_BYTES,
         footer: bytes | None = None, check_wire: bool = True) -> tuple[Outcome, Outcome]:
    """Mode A fed whole, mode B fed in ``pieces``; B checked against A."""
    a = Mode(now_ms=now_ms, replace=replace, walk=False, footer=footer).run(data, max_value=max_value)
    b = Mode(now_ms=now_ms, replace=replace, walk=True, out_limit=out_limit, footer=footer,
             check_wire=check_wire).run(data, pieces, max_value=max_value)
    b.same_as(a)
    return a, b


# ---- 1 and 2: the shared corpus --------------------------------------------------------------------


def _ids(f: CorpusFile) -> str:
    return f.path


@requires_corpus(FILES)
@pytest.mark.parametrize("f", FILES, ids=_ids)
def test_corpus_file_walked_equals_python_path(f: CorpusFile) -> None:
    data = f.full.read_bytes()
    runs = [(NOW_MS, True, DEFAULT_MAX_VALUE_BYTES), (0, False, DEFAULT_MAX_VALUE_BYTES),
            (NOW_MS, True, 300)]  # values over 300 bytes: big keys
    if len(data) < 1 << 20:  # the one bigger file (3.7 MB) gets the three runs above
        runs += [(NOW_MS, False, DEFAULT_MAX_VALUE_BYTES), (0, True, DEFAULT_MAX_VALUE_BYTES)]
    for now_ms, replace, max_value in runs:
        both(data, now_ms=now_ms, replace=replace, max_value=max_value, check_wire=False)


@requires_corpus(FILES)
def test_corpus_keys_mostly_go_through_the_walker() -> None:
    """Not a vacuous equality: fed whole, the C walker writes nearly every packed key."""
    walked = packed = 0
    for f in FILES:
        b = Mode(now_ms=NOW_MS, replace=True, walk=True, check_wire=False).run(f.full.read_bytes())
        walked += b.walked
        packed += b.walked + b.packed
    assert packed > 50_000 and walked > 0.95 * packed, (walked, packed)


@requires_corpus(FILES)
@pytest.mark.parametrize("f", FILES, ids=_ids)
def test_corpus_file_in_random_pieces_and_small_outputs(f: CorpusFile) -> None:
    data = f.full.read_bytes()
    ref = Mode(now_ms=NOW_MS, replace=True, walk=False).run(data)
    big = len(data) > 400 << 10
    runs: list[tuple[list[int] | None, int]] = [(None, 1024)]
    seeds = (zlib.crc32(f.path.encode()),) if big else (1, 2, 3)  # big files: one split
    for i, seed in enumerate(seeds):
        runs.append((random_pieces(seed, len(data)), (1024, 64 << 10)[i % 2]))
    for pieces, out_limit in runs:
        b = Mode(now_ms=NOW_MS, replace=True, walk=True, out_limit=out_limit).run(data, pieces)
        b.same_as(ref)


@requires_corpus(FILES)
def test_corpus_whole_mapped_file() -> None:
    """The parser walks a mapped file in place (iter_file): walk() takes the mmap as its buffer."""
    f = max((x for x in FILES if x.redis7_loads), key=lambda x: x.full.stat().st_size)
    data = f.full.read_bytes()
    ref = Mode(now_ms=NOW_MS, replace=False, walk=False).run(data)
    m = Mode(now_ms=NOW_MS, replace=False, walk=True, check_wire=False)
    p = m.parser = RdbParser()
    p.key_hook, p.batch_hook = m.key_hook, m.batch_hook
    with f.full.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        p._adopt(mapped)
        for rec in p.records():
            m.record(rec)
        p.close()
        p._buf = b""
    m.o.same_as(ref)
    assert m.o.walked


# ---- 3: hand-built RDBs --------------------------------------------------------------------------


def enc_len(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n < 1 << 32:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def s(data: bytes) -> bytes:
    return enc_len(len(data)) + data


def int_key(v: int, width: int) -> bytes:
    fmt = {1: "<b", 2: "<h", 4: "<i"}[width]
    return bytes([0xC0 | {1: 0, 2: 1, 4: 2}[width]]) + struct.pack(fmt, v)


def rec(t: int, key: bytes, value: bytes, *, ms: int | None = None, sec: int | None = None,
        idle: int | None = None, freq: int | None = None) -> bytes:
    """One key record; ``key`` is already encoded (``s(b"k")``, ``int_key(..)``)."""
    head = b""
    if ms is not None:
        head += b"\xfc" + struct.pack("<q", ms)
    if sec is not None:
        head += b"\xfd" + struct.pack("<i", sec)
    if idle is not None:
        head += b"\xf8" + enc_len(idle)
    if freq is not None:
        head += b"\xf9" + bytes([freq])
    return head + bytes([t]) + key + value


def rdb(*records: bytes, version: int = 11, db: int = 0) -> bytes:
    data = b"REDIS%04d" % version + b"\xfe" + enc_len(db) + b"".join(records) + b"\xff"
    return data + CRC.calc(data).to_bytes(8, "little")


def lst(*items: bytes) -> bytes:
    return enc_len(len(items)) + b"".join(map(s, items))


def zset3(*items: tuple[bytes, bytes | int]) -> bytes:
    out = enc_len(len(items))
    for member, score in items:
        out += s(member) + (bytes([score]) if isinstance(score, int) else bytes([len(score)]) + score)
    return out


def zset2(*items: tuple[bytes, float]) -> bytes:
    return enc_len(len(items)) + b"".join(s(m) + struct.pack("<d", sc) for m, sc in items)


def qlist2(*nodes: tuple[int, bytes]) -> bytes:
    return enc_len(len(nodes)) + b"".join(enc_len(c) + s(blob) for c, blob in nodes)


def stream(t: int, nodes: int = 1, groups: int = 1, pel: int = 2) -> bytes:
    """A stream value of type 15, 19 or 21 (formats.md 3.7): listpack nodes, then the metadata,
    consumer groups with their PEL and consumers. The listpacks are opaque here."""
    v2, v3 = t >= 19, t >= 21
    out = enc_len(nodes)
    for i in range(nodes):
        out += s(struct.pack(">QQ", 1_700_000_000_000 + i, 0)) + s(LISTPACK)
    out += enc_len(3 * nodes) + enc_len(1_700_000_000_000 + nodes) + enc_len(5)
    if v2:
        out += enc_len(1_700_000_000_000) + enc_len(0) + enc_len(0) + enc_len(0) + enc_len(3 * nodes)
    out += enc_len(groups)
    for g in range(groups):
        out += s(b"group-%d" % g) + enc_len(1_700_000_000_000) + enc_len(1)
        if v2:
            out += enc_len(2)
        out += enc_len(pel)
        for i in range(pel):
            out += struct.pack(">QQ", 1_700_000_000_000, i) + struct.pack("<q", NOW_MS) + enc_len(1 + i)
        out += enc_len(1)  # one consumer owning the whole PEL
        out += s(b"consumer") + struct.pack("<q", NOW_MS) + (struct.pack("<q", NOW_MS) if v3 else b"")
        out += enc_len(pel) + b"".join(struct.pack(">QQ", 1_700_000_000_000, i) for i in range(pel))
    return out


LONG = [b"member-%03d" % i for i in range(6)]  # collections above the 16-byte "may be empty" bound
LISTPACK = bytes.fromhex("1b00000004008561626364658561626364658561626364658561626364650aff")


def sample_records() -> list[bytes]:
    """One of each walkable shape (values above the tiny bound), with the prefixes walk() takes."""
    return [
        rec(0, s(b"str"), s(b"hello world")),
        rec(0, s(b"int-value"), b"\xc1" + struct.pack("<h", -300)),
        rec(0, int_key(-7, 1), s(b"v")),
        rec(1, s(b"list"), lst(*LONG)),
        rec(2, s(b"set"), lst(*LONG[:3])),
        rec(3, s(b"zset"), zset3((b"a" * 10, b"1.5"), (b"b" * 10, 253), (b"c", 254), (b"d", 255))),
        rec(4, s(b"hash"), b"\x03" + b"".join(map(s, (b"f1", b"v1", b"f2", b"v2", b"f3", b"value3")))),
        rec(5, s(b"zset2"), zset2((b"x" * 9, 1.25), (b"y", float("inf")))),
        rec(14, s(b"qlist"), lst(LISTPACK)),
        rec(18, s(b"qlist2"), qlist2((2, LISTPACK), (1, b"plain node value"))),
        rec(16, s(b"lp-hash"), s(LISTPACK)),
        rec(11, int_key(1234, 2), s(b"\x02\x00\x00\x00\x04\x00\x00\x00\x01\x00\x02\x00\x03\x00\x04\x00")),
        *(rec(t, s(b"blob-%d" % t), s(LISTPACK)) for t in (9, 10, 12, 13, 17, 20)),
        rec(15, s(b"stream"), stream(15)),
        rec(19, s(b"stream2"), stream(19, nodes=2, groups=2), ms=NOW_MS + 1),
        rec(21, s(b"stream3"), stream(21, groups=1, pel=3)),
        rec(21, s(b"stream-empty"), stream(21, nodes=0, groups=0)),  # not a collection: walked
        rec(0, s(b"with-ms"), s(b"x"), ms=NOW_MS + 5000),
        rec(0, s(b"with-sec"), s(b"y"), sec=NOW_MS // 1000 + 100),
        rec(2, int_key(-(2**31), 4), lst(*LONG), ms=NOW_MS - 1),  # expired
        rec(0, s(b"k" * 100), s(b"14-bit key")),
        rec(0, b"\x80" + (70).to_bytes(4, "big") + b"K" * 70, s(b"32-bit length form")),
    ]


def commands(o: Outcome) -> list[list[bytes]]:
    return [c for item in o.items if isinstance(item, list) for c in resp_commands(bytes(item[2]))]


def test_integer_encoded_keys_become_their_decimal_text() -> None:
    cases = [(-128, 1), (0, 1), (127, 1), (-1, 1), (-32768, 2), (32767, 2), (-2, 2), (300, 2),
             (-(2**31), 4), (2**31 - 1, 4), (-5, 4), (0, 4)]
    data = rdb(*(rec(0, int_key(v, w), s(b"value-%d" % i)) for i, (v, w) in enumerate(cases)))
    a, b = both(data)
    assert b.walked == len(cases) and b.packed == 0
    assert [c[1] for c in commands(a)] == [b"%d" % v for v, _ in cases]
    for replace in (True, False):
        both(data, replace=replace, pieces=[3] * (len(data) // 3 + 1), out_limit=1)


def test_key_length_forms() -> None:
    k64 = b"\x81" + (70).to_bytes(8, "big") + b"L" * 70  # 64-bit length form: the Python side
    k32_short = b"\x80" + (5).to_bytes(4, "big") + b"short"  # not the shortest form: still read
    lzf_key = b"Z" * 200
    comp = lzf.compress(lzf_key)
    assert comp is not None
    klzf = b"\xc3" + enc_len(len(comp)) + enc_len(len(lzf_key)) + comp  # LZF key: the Python side
    data = rdb(
        rec(0, s(b"k" * 64), s(b"14-bit, smallest")),
        rec(0, s(b"k" * 16383), s(b"14-bit, largest")),
        rec(0, s(b"k" * 16384), s(b"32-bit")),
        rec(0, k32_short, s(b"32-bit short")),
        rec(0, k64, s(b"64-bit")),
        rec(0, klzf, s(b"lzf key")),
        rec(0, s(b""), s(b"empty key")),
    )
    a, b = both(data)
    assert b.walked == 5 and b.packed == 2
    assert [c[1] for c in commands(a)] == [b"k" * 64, b"k" * 16383, b"k" * 16384, b"short", b"L" * 70,
                                           lzf_key, b""]


def test_expire_prefixes_and_expired_keys() -> None:
    data = rdb(
        rec(0, s(b"ms-future"), s(b"a"), ms=NOW_MS + 1),
        rec(0, s(b"ms-now"), s(b"a"), ms=NOW_MS),  # not before now: kept
        rec(0, s(b"ms-past"), s(b"a"), ms=NOW_MS - 1),
        rec(0, s(b"ms-minus-one"), s(b"a"), ms=-1),  # -1 is "no expire"
        rec(0, s(b"ms-negative"), s(b"a"), ms=-2),
        rec(0, s(b"sec-future"), s(b"a"), sec=NOW_MS // 1000 + 1),
        rec(0, s(b"sec-past"), s(b"a"), sec=NOW_MS // 1000 - 1),
        rec(0, s(b"sec-negative"), s(b"a"), sec=-10),
        rec(1, s(b"list-past"), lst(*LONG), ms=1),
        rec(0, s(b"ms-max"), s(b"a"), ms=2**63 - 1),
        rec(0, s(b"ms-min"), s(b"a"), ms=-(2**63)),
    )
    a, b = both(data)
    assert a.expired == 6 and b.expired == 6 and b.walked == 5 and b.packed == 0
    ttls = {c[1]: c[2] for c in commands(a)}
    assert ttls == {b"ms-future": b"%d" % (NOW_MS + 1), b"ms-now": b"%d" % NOW_MS, b"ms-minus-one": b"0",
                    b"sec-future": b"%d" % ((NOW_MS // 1000 + 1) * 1000), b"ms-max": b"%d" % (2**63 - 1)}
    a0, b0 = both(data, now_ms=0)
    assert a0.expired == b0.expired == 3  # the negative ones
    assert b0.walked == 8
    # Direct: the expired ones are skipped and counted, not written.
    counts = array("Q", bytes(2048))
    _, npos, keys, expired = WALK(data, 11, len(data) - 9, footer_for(11), NOW_MS, True, 1 << 20, 1 << 20,
                                  counts)
    assert (npos, keys, expired) == (len(data) - 9, 5, 6) and counts[0] == 5 and sum(counts) == 5


def test_lru_lfu_prefixes_and_other_opcodes_are_left_to_python() -> None:
    idle = rec(0, s(b"idle"), s(b"v"), idle=100)
    freq = rec(0, s(b"freq"), s(b"v"), freq=5)
    exp_idle = rec(0, s(b"exp-idle"), s(b"v"), ms=NOW_MS + 10, idle=3)
    plain = rec(0, s(b"plain"), s(b"v"))
    aux = b"\xfa" + s(b"aux-key") + s(b"aux-value")
    module_like = b"\x07" + s(b"module") + b"\x00"  # type 7 (module): not walked
    for lead, left in ((idle, b"idle"), (freq, b"freq"), (exp_idle, b"exp-idle")):
        data = rdb(plain, lead, plain)
        _, b = both(data)
        assert b.walked == 2 and [i[2] for i in b.items if isinstance(i, tuple)] == [left]
        start = 11 + len(plain)
        out, npos, keys, expired = WALK(data, start, len(data) - 9, footer_for(11), NOW_MS, True, 1 << 20,
                                        1 << 20, array("Q", bytes(2048)))
        assert (out, npos, keys, expired) == (b"", start, 0, 0)
    for op in (aux, module_like, b"\xfe\x01", b"\xff"):
        data = b"REDIS0011\xfe\x00" + plain + op
        out, npos, keys, _ = WALK(data, 11, len(data), footer_for(11), NOW_MS, True, 1 << 20, 1 << 20,
                                  array("Q", bytes(2048)))
        assert npos == 11 + len(plain) and keys == 1
    both(rdb(plain, aux, plain, b"\xfe\x03", plain))


def test_types_the_footer_leaves_out() -> None:
    records = sample_records()
    data = rdb(*records)
    every = Mode(now_ms=0, replace=True, walk=False, footer=bytes(256)).run(data)
    types = {i[3] for i in every.items if isinstance(i, tuple)}
    assert types >= c_walk.WALK_TYPES, f"sample_records() lacks types {c_walk.WALK_TYPES - types}"
    full = footer_for(11)
    for t in sorted(c_walk.WALK_TYPES):
        footer = bytearray(full)
        footer[t] = 0
        _, b = both(bytes(data), footer=bytes(footer))
        left = [i for i in b.items if isinstance(i, tuple)]
        assert left and all(i[3] == t for i in left)
        assert b.walked + len(left) + b.expired == len(sample_records())


def test_zset_with_inf_nan_scores_and_quicklists() -> None:
    data = rdb(
        rec(3, s(b"z-inf"), zset3((b"m" * 20, 254), (b"n", 255), (b"o", 253), (b"p", b"-0.5"))),
        rec(3, s(b"z-ascii"), zset3((b"member-one", b"3.14159"), (b"member-two", b"1e300"))),
        rec(5, s(b"z2-nan"), zset2((b"m" * 10, float("nan")), (b"n", float("-inf")))),
        rec(18, s(b"ql2"), qlist2((2, LISTPACK), (2, LISTPACK), (1, b"x" * 70))),
        rec(18, s(b"ql2-one"), qlist2((1, b"a plain node, long enough"))),
        rec(14, s(b"ql"), lst(LISTPACK, LISTPACK)),
    )
    _, b = both(data)
    assert b.walked == 6
    assert [c[1] for c in commands(b)] == [b"z-inf", b"z-ascii", b"z2-nan", b"ql2", b"ql2-one", b"ql"]


def test_tiny_collections_are_left_and_the_bound_is_16_bytes() -> None:
    v16 = lst(b"a" * 14)  # 1 + 1 + 14 = 16 bytes
    v17 = lst(b"a" * 15)
    assert (len(v16), len(v17)) == (16, 17)
    data = rdb(rec(1, s(b"empty"), b"\x00"), rec(1, s(b"l16"), v16), rec(1, s(b"l17"), v17),
               rec(0, s(b"short-string"), s(b"")), rec(11, s(b"blob16"), s(b"i" * 15)),
               rec(11, s(b"blob17"), s(b"i" * 16)))
    a, b = both(data)
    assert [i[2] for i in a.items if isinstance(i, tuple)] == [b"empty", b"l16", b"blob16"]
    assert [c[1] for c in commands(b)] == [b"l17", b"short-string", b"blob17"] and b.walked == 3


def test_value_at_max_value_and_one_byte_over() -> None:
    value = lst(*(b"x" * 50 for _ in range(40)))
    before, big, after = rec(0, s(b"before"), s(b"b")), rec(1, s(b"big"), value), rec(0, s(b"after"), s(b"a"))
    data = rdb(before, big, after)
    start = 11 + len(before)
    stop = start + len(big)
    footer = footer_for(11)
    counts = array("Q", bytes(2048))
    _, npos, keys, _ = WALK(data, start, stop, footer, NOW_MS, True, len(value), 1 << 20, counts)
    assert (npos, keys, counts[1]) == (stop, 1, 1)  # exactly max_value: taken
    over = WALK(data, start, stop, footer, NOW_MS, True, len(value) - 1, 1 << 20, counts)
    assert over == (b"", start, 0, 0)
    a, b = both(data, max_value=len(value))
    assert b.walked == 3 and not [i for i in a.items if isinstance(i, tuple)]
    a, b = both(data, max_value=len(value) - 1)  # one byte over: a big key for the Python side
    assert b.walked == 2 and [i[:3] for i in a.items if isinstance(i, tuple)] == [("big", 0, b"big")]
    both(data, max_value=len(value) - 1, pieces=[7] * 400, out_limit=1)


LZF_RAW = bytes(range(256)) * 4


def _lzf(raw: bytes, long_form_raw_len: bool = False) -> bytes:
    comp = lzf.compress(raw)
    assert comp is not None
    rlen = b"\x80" + len(raw).to_bytes(4, "big") if long_form_raw_len else enc_len(len(raw))
    return b"\xc3" + enc_len(len(comp)) + rlen + comp


def test_lzf_values_are_walked_whole() -> None:
    small = _lzf(b"ab" * 40)  # 6-bit compressed length
    assert small[1] < 0x40 and _lzf(LZF_RAW)[1] >= 0x40  # and a 14-bit one
    records = [rec(0, s(b"lzf-6"), small), rec(0, s(b"lzf-14"), _lzf(LZF_RAW)),
               rec(0, s(b"lzf-long-form"), _lzf(b"ab" * 40, long_form_raw_len=True)),
               rec(0, s(b"after"), s(b"x" * 4000)), rec(0, s(b"last"), s(b"y"))]
    data = rdb(*records)
    out, npos, keys, _ = WALK(data, 11, len(data) - 9, footer_for(11), NOW_MS, False, 1 << 20, 1 << 20,
                              array("Q", bytes(2048)))
    cmds = resp_commands(out)
    assert (npos, keys) == (len(data) - 9, 5)
    assert [c[1] for c in cmds] == [b"lzf-6", b"lzf-14", b"lzf-long-form", b"after", b"last"]
    values = [r[len(s(c[1])) + 1 :] for r, c in zip(records[:3], cmds[:3], strict=True)]
    assert [c[3][1:-10] for c in cmds[:3]] == values
    both(rdb(*records[:2], *records[3:]))


def test_lzf_value_with_a_long_form_raw_length_python_agrees() -> None:
    data = rdb(rec(0, s(b"lzf-long-form"), _lzf(b"ab" * 40, long_form_raw_len=True)),
               rec(0, s(b"after"), s(b"x" * 4000)), rec(0, s(b"last"), s(b"y")))
    both(data)


def test_every_cut_position() -> None:
    """walk() on a buffer cut anywhere: it stops at the start of the cut record, writes exactly the
    whole records before it and reads nothing past ``end``."""
    records = sample_records()
    data = rdb(*records)
    footer = footer_for(11)
    a = Mode(now_ms=NOW_MS, replace=True, walk=False).run(data)
    # Each record alone through mode A: its expected command (b"" when expired).
    per_record = []
    for r in records:
        one = Mode(now_ms=NOW_MS, replace=True, walk=False).run(rdb(r))
        assert one.error is None and not [i for i in one.items if isinstance(i, tuple)]
        per_record.append(bytes(one.items[0][2]) if one.items else b"")
    bounds = [11]
    for r in records:
        bounds.append(bounds[-1] + len(r))
    assert set(bounds[1:]) <= a.ends
    rng = random.Random(5)
    for cut in range(11, bounds[-1] + 2):
        whole = [i for i, e in enumerate(bounds[1:]) if e <= cut]
        want_pos = bounds[len(whole)]
        want = b"".join(per_record[i] for i in whole)
        junk = bytes(rng.randrange(256) for _ in range(32))
        for buf in (data, data[:cut], data[:cut] + junk, bytearray(data[:cut])):
            counts = array("Q", bytes(2048))
            out, npos, keys, expired = WALK(buf, 11, cut, footer, NOW_MS, True, 1 << 20, 1 << 20, counts)
            assert (out, npos) == (want, want_pos), cut
            assert keys == sum(1 for i in whole if per_record[i]) == sum(counts)
            assert expired == len(whole) - keys
    # Through the parser, cut in two anywhere: B equals A.
    for cut in range(1, len(data)):
        both(data, pieces=[cut], out_limit=200)


def test_output_limit_cuts_runs_between_commands() -> None:
    data = rdb(*sample_records())
    ref = Mode(now_ms=NOW_MS, replace=False, walk=False).run(data)
    for out_limit in (1, 10, 100, 300, 1000, 30000):
        b = Mode(now_ms=NOW_MS, replace=False, walk=True, out_limit=out_limit).run(data)
        b.same_as(ref)
        assert len(b.stops) >= (3 if out_limit <= 300 else 1)


def test_bad_arguments_raise() -> None:
    data = rdb(rec(0, s(b"k"), s(b"v")))
    counts = array("Q", bytes(2048))
    footer = footer_for(11)
    for args in ((data, 0, len(data) + 1, footer), (data, 5, 4, footer), (data, -1, 4, footer),
                 (data, 0, 4, footer[:255])):
        with pytest.raises(ValueError):
            WALK(*args, NOW_MS, True, 100, 100, counts)
    with pytest.raises(ValueError):
        WALK(data, 11, len(data), footer, NOW_MS, True, 100, 100, array("Q", bytes(2040)))
    with pytest.raises(TypeError):
        WALK(data, 11, len(data), footer, NOW_MS, True, 100, 100, bytes(2048))  # not writable


def _mutate(rng: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        i = rng.randrange(len(b))
        op = rng.randrange(6)
        if op == 0:
            b[i] = rng.randrange(256)
        elif op == 1:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            b[i] = rng.choice((0x00, 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xFC, 0xFD,
                               0xF8, 0xFF, 253, 254))
        elif op == 3:
            del b[i : i + rng.randint(1, 8)]
        elif op == 4:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            j = rng.randrange(len(b))
            b[i:i] = b[j : j + rng.randint(1, 40)]
    return bytes(b)


def test_random_damage_never_crashes_and_agrees_with_python() -> None:
    body = b"".join([*sample_records(), rec(0, s(b"idle"), s(b"v"), idle=1)])
    rng = random.Random(2024)
    footer = footer_for(11)
    finished = 0
    for _ in range(1500):
        mutated = _mutate(rng, body)
        data = b"REDIS0011\xfe\x00" + mutated + b"\xff"
        data += CRC.calc(data).to_bytes(8, "little")
        # Straight into walk(): bounds, no read past end, its commands are well formed.
        end = rng.randint(11, len(data))
        args = (footer, NOW_MS, rng.random() < 0.5, rng.choice((64, 1 << 20)), rng.choice((1, 500, 1 << 20)))
        counts = array("Q", bytes(2048))
        out, npos, keys, _ = got = WALK(data, 11, end, *args, counts)
        assert 11 <= npos <= end
        assert WALK(data[:end], 11, end, *args, array("Q", bytes(2048))) == got
        cmds = resp_commands(out)
        assert len(cmds) == keys == sum(counts)
        for argv in cmds:
            payload = argv[3]
            assert CRC.calc(payload[:-8]) == int.from_bytes(payload[-8:], "little")
            assert payload[-10:-8] == b"\x0b\x00"
        # Through the parser: whenever Python reads the damaged file, so does B, the same way.
        a = Mode(now_ms=NOW_MS, replace=True, walk=False).run(data)
        b = Mode(now_ms=NOW_MS, replace=True, walk=True, out_limit=rng.choice((1, 1 << 20))).run(data)
        b.same_as(a)
        finished += a.error is None
    assert finished > 150


def test_random_bytes_straight_into_walk() -> None:
    """Unstructured buffers (biased to type bytes and length forms): no crash, bounds kept, and the
    same answer whatever lies past ``end``."""
    rng = random.Random(77)
    footer = bytes(1 if t in c_walk.WALK_TYPES else 0 for t in range(256))
    alphabet = [*range(32), 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xFC, 0xFD, 0xFF]
    for _ in range(3000):
        n = rng.randint(0, 120)
        buf = bytes(rng.choice(alphabet) if rng.random() < 0.6 else rng.randrange(256) for _ in range(n))
        end = rng.randint(0, n)
        pos = rng.randint(0, end)
        args = (footer, rng.choice((0, NOW_MS, 2**62)), rng.random() < 0.5, rng.randint(0, 64),
                rng.choice((0, 1, 64, 1 << 20)))
        res = WALK(buf, pos, end, *args, array("Q", bytes(2048)))
        assert pos <= res[1] <= end
        assert WALK(buf[:end] + b"\x05\x05\x05", pos, end, *args, array("Q", bytes(2048))) == res
        assert len(resp_commands(res[0])) == res[2]


# ---- 4: the CRC ------------------------------------------------------------------------------------


def test_crc64_equals_anycrc() -> None:
    assert CRC64 is not None
    rng = random.Random(64)
    assert CRC64(b"") == 0 and CRC64(b"123456789") == CRC.calc(b"123456789") == 0xE9C6D914C4B8D9CA
    for n in [*range(0, 40), 63, 64, 65, 1000, 4096, 100_003]:
        data = rng.randbytes(n)
        assert CRC64(data) == CRC.calc(data)
        for off in (1, 3, 7):  # unaligned starts
            view = memoryview(data)[off:]
            assert CRC64(view) == CRC.calc(view)
        cut = rng.randint(0, n)
        assert CRC64(data[cut:], CRC64(data[:cut])) == CRC.calc(data)
        seed = rng.getrandbits(64)
        assert CRC64(data, seed) == CRC.calc(data, seed)
