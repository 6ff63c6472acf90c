"""The expectations redis-rdb-tools states for its dumps (tests/parser_tests.py), as our values."""

from __future__ import annotations

import math

import pytest
from rdb_testlib import merged_values, parse_bytes

from cachemigrate.formats.rdb import HashValue, KeyRecord, ListValue, SetValue, StringValue, Value, ZSetValue
from support.corpus import CORPUS, requires_corpus

DIR = CORPUS / "redis-rdb-tools"
pytestmark = requires_corpus(DIR.exists(), "redis-rdb-tools/")


def load(name: str) -> dict[tuple[int, bytes], Value]:
    recs, p = parse_bytes((DIR / name).read_bytes())
    assert p.header is not None
    return {(db, k): v for db, k, _, v in merged_values(recs, p.header)}


def one(name: str, key: bytes, db: int = 0) -> Value:
    return load(name)[(db, key)]


def test_multiple_databases_and_empty() -> None:
    assert load("empty_database.rdb") == {}
    got = load("multiple_databases.rdb")
    assert got == {(0, b"key_in_zeroth_database"): StringValue(b"zero"),
                   (2, b"key_in_second_database"): StringValue(b"second")}


def test_keys_with_expiry() -> None:
    recs, _ = parse_bytes((DIR / "keys_with_expiry.rdb").read_bytes())
    (k,) = [r for r in recs if isinstance(r, KeyRecord)]
    assert k.expire_ms % 1000 == 573 and (k.expire_ms // 1000) % 60 == 12
    assert 1671840000000 <= k.expire_ms <= 1672099200000  # 2022-12-24 .. 2022-12-27 UTC


def test_integer_keys_and_compressed_key() -> None:
    got = load("integer_keys.rdb")
    for key, text in ((125, b"Positive 8 bit integer"), (0xABAB, b"Positive 16 bit integer"),
                      (0x0AEDD325, b"Positive 32 bit integer"), (-123, b"Negative 8 bit integer"),
                      (-0x7325, b"Negative 16 bit integer"), (-0x0AEDD325, b"Negative 32 bit integer")):
        assert got[(0, b"%d" % key)] == StringValue(text)
    assert one("easily_compressible_string_key.rdb", b"a" * 200) == StringValue(
        b"Key that redis should compress easily")


def test_zipmaps_and_hash_ziplist() -> None:
    for name, key in (("zipmap_that_compresses_easily.rdb", b"zipmap_compresses_easily"),
                      ("hash_as_ziplist.rdb", b"zipmap_compresses_easily")):
        h = one(name, key)
        assert isinstance(h, HashValue)
        assert dict(h.items) == {b"a": b"aa", b"aa": b"aaaa", b"aaaaa": b"aaaaaaaaaaaaaa"}
    h = one("zipmap_that_doesnt_compress.rdb", b"zimap_doesnt_compress")
    assert isinstance(h, HashValue) and dict(h.items) == {b"MKD1G6": b"2", b"YNNXK": b"F7TI"}
    h = one("zipmap_with_big_values.rdb", b"zipmap_with_big_values")
    assert isinstance(h, HashValue)
    sizes = {f: len(v) for f, v in h.items}
    # (the corpus copy is newer than the upstream test and also holds a 20 kB value)
    assert sizes.items() >= {b"253bytes": 253, b"254bytes": 254, b"255bytes": 255, b"300bytes": 300}.items()


def test_dictionary_and_linkedlist() -> None:
    h = one("dictionary.rdb", b"force_dictionary")
    assert isinstance(h, HashValue) and len(h.items) == 1000
    d = dict(h.items)
    field = b"ZMU5WEJDG7KU89AOG5LJT6K7HMNB3DEI43M6EYTJ83VRJ6XNXQ"
    assert d[field] == b"T63SOS8DQJF0Q0VJEZ0D1IQFCYTIPSBOUIAI9SB0OV57MQR1FI"
    lst = one("linkedlist.rdb", b"force_linkedlist")
    assert isinstance(lst, ListValue) and len(lst.items) == 1000
    assert b"JYY4GIFI0ETHKP4VAJF5333082J4R1UPNPLE329YT0EYPGHSJQ" in lst.items


def test_ziplists() -> None:
    lst = one("ziplist_that_compresses_easily.rdb", b"ziplist_compresses_easily")
    assert lst == ListValue([b"a" * n for n in (6, 12, 18, 24, 30, 36)])
    lst = one("ziplist_that_doesnt_compress.rdb", b"ziplist_doesnt_compress")
    assert isinstance(lst, ListValue) and len(lst.items) == 2 and b"aj2410" in lst.items
    lst = one("ziplist_with_integers.rdb", b"ziplist_with_integers")
    assert isinstance(lst, ListValue)
    # the corpus copy is the newer dump: every ziplist integer encoding, in order
    assert lst.items == [b"%d" % i for i in range(13)] + [
        b"-2", b"13", b"25", b"-61", b"63", b"16380", b"-16000", b"65535", b"-65523", b"4194304",
        b"%d" % 0x7FFFFFFFFFFFFFFF]


@pytest.mark.parametrize("bits,base", [(16, 0x7FFE), (32, 0x7FFEFFFE), (64, 0x7FFEFFFEFFFEFFFE)])
def test_intsets(bits: int, base: int) -> None:
    s = one(f"intset_{bits}.rdb", b"intset_%d" % bits)
    assert isinstance(s, SetValue) and sorted(s.members) == sorted(b"%d" % (base - i) for i in range(3))


def test_sets_and_sorted_set() -> None:
    s = one("regular_set.rdb", b"regular_set")
    assert isinstance(s, SetValue)
    assert sorted(s.members) == sorted([b"alpha", b"beta", b"gamma", b"delta", b"phi", b"kappa"])
    z = one("sorted_set_as_ziplist.rdb", b"sorted_set_as_ziplist")
    assert isinstance(z, ZSetValue)
    scores = dict(z.items)
    for member, score in ((b"8b6ba6718a786daefa69438148361901", 1),
                          (b"cb7a24bb7528f934b841b34c3a73e0c7", 2.37),
                          (b"523af537946b79c4f8369ed39ba78605", 3.423)):
        assert math.isclose(scores[member], score)


def test_version_5_with_checksum() -> None:
    got = load("rdb_version_5_with_checksum.rdb")
    for k, v in ((b"abcd", b"efgh"), (b"foo", b"bar"), (b"bar", b"baz"), (b"abcdef", b"abcdef"),
                 (b"longerstring", b"thisisalongerstring.idontknowwhatitmeans")):
        assert got[(0, k)] == StringValue(v)
