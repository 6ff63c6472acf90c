"""Hostile RDB files: the oracle `make fuzz` (scripts/fuzz_rdb.py) runs on every input, and the
inputs it found that broke it (tests/data/rdb-fuzz/, each a regression test).

For any bytes: the Python parser fed whole and the parser with the C walker fed in pieces agree
(test_walk_ext.both: the same commands, counts and error at the same offset), and parsing plus
decoding every value either works or raises a CacheMigrateError (what the CLI prints as one
line); nothing else (an IndexError, a crash, a hang) may come out.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest
from test_walk_ext import NOW_MS, Mode, both, random_pieces

from cachemigrate.errors import CacheMigrateError
from cachemigrate.formats.rdb import walk as c_walk
from cachemigrate.formats.rdb.decode import decode_value
from cachemigrate.formats.rdb.model import KeyRecord
from cachemigrate.formats.rdb.parser import RdbParser
from support.corpus import rdb_files, requires_corpus

FOUND = Path(__file__).resolve().parents[1] / "data" / "rdb-fuzz"
SMALL_VALUES = 512  # values over this are big keys (chunked): that path is fuzzed too


def check(data: bytes) -> None:
    """The oracle: see the module docstring. Raises (AssertionError or any non-CacheMigrateError)
    when the input shows a defect."""
    seed = zlib.crc32(data)
    if c_walk.walk is not None:
        both(data, pieces=random_pieces(seed, len(data)), check_wire=True)
        # With big keys the same split for both: a big key's head is yielded before its value is
        # read, so what came out before an error depends on the split (the error does not).
        pieces = random_pieces(seed + 1, len(data))
        a = Mode(now_ms=NOW_MS, replace=True, walk=False).run(data, pieces, max_value=SMALL_VALUES)
        Mode(now_ms=NOW_MS, replace=True, walk=True, check_wire=False).run(
            data, pieces, max_value=SMALL_VALUES).same_as(a)
        whole = Mode(now_ms=NOW_MS, replace=True, walk=False).run(data, max_value=SMALL_VALUES)
        assert whole.error == a.error, (whole.error, a.error)
    parser = RdbParser(max_value_bytes=SMALL_VALUES, chunk_elements=7)
    try:
        for piece in (data[: len(data) // 2], data[len(data) // 2 :]):
            parser.feed(piece)
            for rec in parser.records():
                if isinstance(rec, KeyRecord) and not rec.big and parser.header is not None:
                    decode_value(rec.type_byte, rec.value, header=parser.header, key=rec.key,
                                 offset=rec.offset)
        parser.close()
    except CacheMigrateError:
        pass


def regressions() -> list[Path]:
    return sorted(p for p in FOUND.iterdir() if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize("path", regressions(), ids=lambda p: p.name)
def test_input_the_fuzzer_found(path: Path) -> None:
    check(path.read_bytes())


SEEDS = [f for f in rdb_files() if f.full.stat().st_size <= 16384][:40]


@requires_corpus(SEEDS)
def test_damaged_corpus_files() -> None:
    """A fixed sample of what the fuzzer does, in every run of the suite: flipped bytes,
    truncations and spliced runs of the corpus' small RDB files."""
    rng = random.Random(13)
    for f in SEEDS:
        data = f.full.read_bytes()
        for _ in range(6):
            b = bytearray(data)
            how = rng.randrange(3)
            if how == 0:
                for _ in range(rng.randint(1, 4)):
                    b[rng.randrange(9, len(b)) if len(b) > 9 else 0] = rng.randrange(256)
            elif how == 1:
                del b[rng.randrange(len(b)):]
            else:
                at = rng.randrange(len(b))
                b[at:at] = b[rng.randrange(len(b)):][: rng.randint(1, 64)]
            check(bytes(b))
