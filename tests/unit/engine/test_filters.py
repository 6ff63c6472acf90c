"""The filter rules as data (validation, round trip), on commands (multi-key, rename, groups),
the key specs, and the C walker's key filter against the pure-Python path."""

from __future__ import annotations

from typing import Any

import pytest

from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.engine.filters import Filter
from cachemigrate.engine.keyspecs import command_info
from cachemigrate.engine.status import LogLevel, RecordingSink
from cachemigrate.errors import ConfigError
from cachemigrate.formats.rdb import walk as c_walk
from support.require import C_WALKER, requirement

FULL: dict[str, Any] = {
    "allow_key": ["a"], "allow_key_prefix": ["user:"], "allow_key_suffix": [":x"],
    "allow_key_regex": ["^o[0-9]"], "block_key": ["user:root"], "block_key_prefix": ["temp:"],
    "block_key_suffix": [":tmp"], "block_key_regex": ["secret"], "allow_db": [0, 1], "block_db": [1],
    "db_map": {"1": 0}, "allow_type": ["string", "hash"], "block_type": ["stream"],
    "allow_command": ["SET", "XGROUP-CREATE"], "block_command": ["DEL"],
    "allow_command_group": ["STRING", "HASH"], "block_command_group": ["SCRIPTING"],
    "skip_expiring_within": 1.5, "max_ttl": 3600, "rename_prefix": {"user:": "u:"},
    "function": "shake.call(DB, ARGV)",
}  # fmt: skip


def test_round_trip() -> None:
    rules = FilterRules.from_mapping(FULL)
    assert FilterRules.from_mapping(rules.to_mapping()) == rules
    assert rules.skip_expiring_within_ms == 1500 and rules.db_map == ((1, 0),)


@pytest.mark.parametrize(("data", "says"), [
    ({"allow_keys": ["a"]}, "filter.allow_keys: unknown rule"),
    ({"allow_key_prefix": "user:"}, "allow_key_prefix: must be a list"),
    ({"allow_key_prefix": [""]}, "non-empty string"),
    ({"block_type": ["hsh"]}, "block_type[0]: unknown type 'hsh'"),
    ({"block_command_group": ["NOPE"]}, "unknown command group 'NOPE'"),
    ({"block_key_regex": ["(x"]}, "block_key_regex[0]: not a regular expression"),
    ({"allow_db": [True]}, "allow_db[0]: must be a db number"),
    ({"db_map": {"x": 1}}, "db_map.x: must be a db number"),
    ({"db_map": [1, 0]}, "db_map: must be a table"),
    ({"max_ttl": 0}, "max_ttl: must be a number of seconds"),
    ({"rename_prefix": {"a": 1}}, "rename_prefix.a: the new prefix must be a string"),
    ({"function": "if x then"}, "filter.function, line 1:"),
    ([1], "must be a table of rules"),
])  # fmt: skip
def test_bad_rules_name_what_is_wrong(data: Any, says: str) -> None:
    with pytest.raises(ConfigError) as exc:
        FilterRules.from_mapping(data)
    assert says in str(exc.value)


def _filter(**rules: Any) -> tuple[Filter, RecordingSink]:
    sink = RecordingSink()
    return Filter(FilterRules.from_mapping(rules), sink), sink


def test_multi_key_commands_pass_whole_or_are_dropped_with_a_log_line() -> None:
    f, sink = _filter(block_key_prefix=["temp:"], rename_prefix={"user:": "u:"})
    assert f.command([b"MSET", b"user:1", b"a", b"b", b"c"], b"MSET", 0) == [
        ([b"MSET", b"u:1", b"a", b"b", b"c"], 0)]
    assert f.command([b"SET", b"k", b"v"], b"SET", 3) is None  # unchanged: goes as it is
    assert f.command([b"DEL", b"temp:1", b"temp:2"], b"DEL", 0) == []
    assert not sink.logs  # none of its keys passes: dropped without a word
    assert f.command([b"RENAME", b"user:1", b"temp:1"], b"RENAME", 0) == []
    assert f.mixed == 1
    (level, line), = sink.logs
    assert level is LogLevel.WARNING and "RENAME dropped" in line
    assert "passed: user:1" in line and "filtered: temp:1" in line
    # the keys of EVAL, not its script or arguments
    assert f.command([b"EVAL", b"s", b"1", b"user:9", b"temp:x"], b"EVAL", 0) == [
        ([b"EVAL", b"s", b"1", b"u:9", b"temp:x"], 0)]


def test_command_and_group_rules() -> None:
    f, _ = _filter(block_command_group=["SCRIPTING"], block_command=["XGROUP-DESTROY", "FLUSHDB"],
                   block_type=["hash"])
    assert f.command([b"EVALSHA", b"abc", b"0"], b"EVALSHA", 0) == []
    assert f.command([b"SCRIPT", b"LOAD", b"return 1"], b"SCRIPT", -1) == []
    assert f.command([b"XGROUP", b"DESTROY", b"s", b"g"], b"XGROUP", 0) == []
    assert f.command([b"XGROUP", b"CREATE", b"s", b"g", b"$"], b"XGROUP", 0) is None
    assert f.command([b"FLUSHDB"], b"FLUSHDB", 0) == []
    assert f.command([b"HSET", b"h", b"f", b"v"], b"HSET", 0) == []  # a hash command: type hash
    assert f.command([b"DEL", b"h"], b"DEL", 0) is None  # generic: judged by its keys
    f, _ = _filter(allow_command=["XGROUP"])  # a container names all its subcommands
    assert f.command([b"XGROUP", b"CREATE", b"s", b"g", b"$"], b"XGROUP", 0) is None
    assert f.command([b"SET", b"k", b"v"], b"SET", 0) == []


def test_longest_prefix_renames_first() -> None:
    f, _ = _filter(rename_prefix={"old:": "new:", "old:deep:": "moved:"})
    assert f.rename is not None
    assert f.rename(b"old:deep:1") == b"moved:1" and f.rename(b"old:1") == b"new:1"
    assert f.rename(b"other") == b"other"


def test_sources_of_is_the_rename_backwards() -> None:
    f = Filter(FilterRules.from_mapping({"rename_prefix": {"a:": "x:", "a:b:": "y:", "x:": "z:"}}))
    for name in (b"x:1", b"y:1", b"z:1", b"a:1", b"other", b"x:b:1"):
        sources = f.sources_of(name)
        assert all(f.rename is not None and f.rename(s) == name for s in sources), (name, sources)
    assert f.sources_of(b"x:1") == [b"a:1"]  # a source key named x:1 became z:1
    assert f.sources_of(b"y:1") == [b"y:1", b"a:b:1"]
    assert f.sources_of(b"z:1") == [b"z:1", b"x:1"]
    assert f.sources_of(b"a:1") == []  # every a: key was renamed
    assert f.sources_of(b"other") == [b"other"]
    assert Filter(FilterRules.from_mapping({"block_key": ["k"]})).sources_of(b"k") == [b"k"]


def test_key_specs() -> None:
    assert command_info([b"set", b"k", b"v"]).key_indexes == (1,)
    assert command_info([b"MSET", b"a", b"1", b"b", b"2"]).key_indexes == (1, 3)
    zunion = [b"ZUNIONSTORE", b"d", b"2", b"a", b"b", b"WEIGHTS", b"1", b"2"]
    assert command_info(zunion).key_indexes == (1, 3, 4)
    info = command_info([b"XREADGROUP", b"GROUP", b"g", b"c", b"STREAMS", b"s1", b"s2", b"0", b"0"])
    assert info.key_indexes == (5, 6) and info.group == "STREAM"
    info = command_info([b"XGROUP", b"CREATE", b"s", b"g", b"$"])
    assert info.name == "XGROUP-CREATE" and info.key_indexes == (2,)
    assert command_info([b"PUBLISH", b"ch", b"m"]).key_indexes == ()
    assert command_info([b"HEXPIRE", b"h", b"10", b"FIELDS", b"1", b"f"]).group == "HASH"
    assert command_info([b"NOTACOMMAND", b"k"]).key_indexes == (1,)  # the usual place


@requirement(c_walk.walk is not None, C_WALKER)
def test_walker_key_filter_errors_propagate() -> None:
    from array import array

    # One string key record: type 0, key "k1", value "v".
    buf = b"\x00\x02k1\x01v"
    footer = bytes([10]) + bytes(255)
    counts = array("Q", bytes(256 * 8))
    walk = c_walk.walk
    assert walk is not None
    out = walk(buf, 0, len(buf), footer, 0, True, 1 << 20, 1 << 20, counts, lambda k: b"renamed:" + k)
    assert len(out) == 5 and out[2] == 1 and b"renamed:k1" in out[0]
    out = walk(buf, 0, len(buf), footer, 0, True, 1 << 20, 1 << 20, counts, lambda k: None)
    assert out[2] == 0 and out[4] == 1 and out[1] == len(buf)

    def boom(k: bytes) -> bytes:
        raise RuntimeError("from the filter")

    with pytest.raises(RuntimeError, match="from the filter"):
        walk(buf, 0, len(buf), footer, 0, True, 1 << 20, 1 << 20, counts, boom)
    with pytest.raises(TypeError, match="bytes or None"):
        walk(buf, 0, len(buf), footer, 0, True, 1 << 20, 1 << 20, counts, lambda k: 1)


@requirement(c_walk.walk is not None, C_WALKER)
@pytest.mark.parametrize("rules", [
    {"block_key_prefix": ["user:"], "rename_prefix": {"ca": "CA:", "cache:": "c:"}},
    {"allow_key": ["7", "cache:1"], "allow_key_suffix": ["9"], "block_key_suffix": ["19"]},
    {"block_key": ["user:3", "12"], "allow_key_prefix": ["user:", "1"], "rename_prefix": {"user:": ""}},
    {"block_key_regex": ["[02468]$"], "rename_prefix": {"user:": "u:"}},  # a call per key
])  # fmt: skip
def test_walker_rules_in_c_agree_with_the_rules_in_python(rules: dict[str, Any]) -> None:
    """The walker's view of the rules (a tuple asked in C, or the call per key) keeps and names
    the keys exactly as ``Filter.key_ok`` and ``Filter.rename`` do."""
    from array import array

    walk = c_walk.walk
    assert walk is not None
    names = [b"user:%d" % i for i in range(30)] + [b"cache:%d" % i for i in range(30)]
    names += [b"%d" % i for i in range(30)]  # integer-encoded keys: their decimal text
    buf = b""
    for n in names:
        if n.isdigit():
            buf += b"\x00\xc0" + bytes([int(n)]) + b"\x01v"
        else:
            buf += b"\x00" + bytes([len(n)]) + n + b"\x01v"
    f, _ = _filter(**rules)
    spec = f.walker_rules()
    assert spec is not None and (callable(spec) is bool(rules.get("block_key_regex")))
    counts = array("Q", bytes(256 * 8))
    out, pos, keys, _expired, filtered = walk(buf, 0, len(buf), bytes([10]) + bytes(255), 0, True,
                                             1 << 20, 1 << 20, counts, spec)
    assert f.key_ok is not None
    want = [(f.rename(n) if f.rename else n) for n in names if f.key_ok(n)]
    parts = out.split(b"\r\n")
    got = [parts[i + 2] for i, part in enumerate(parts) if part == b"RESTORE"]
    assert got == want and keys == len(want) and filtered == len(names) - len(want) and pos == len(buf)


@requirement(c_walk.walk is not None, C_WALKER)
def test_walker_skips_what_the_rules_leave_out_whatever_its_size() -> None:
    """A type left out (``LEFT_OUT`` in the footer table) and a key left out by name are skipped
    in C by their span, even a tiny collection or a big value: the walk does not stop at them
    (kept, those still go to the Python side)."""
    from array import array

    walk = c_walk.walk
    assert walk is not None
    tiny_list = b"\x01\x02t1\x01\x01a"  # a list of one element: a collection that may be empty
    big = b"\x00\x02b1\x40\x64" + b"x" * 100  # a string of 100 bytes (over max_value below)
    buf = tiny_list + big + b"".join(b"\x00\x02s%d\x01v" % i for i in range(5))
    counts = array("Q", bytes(256 * 8))

    def run(footer: list[int | None], rules: tuple[object, ...], max_value: int = 50) -> tuple[int, int, int]:
        _out, pos, keys, _expired, filtered = walk(
            buf, 0, len(buf), c_walk.footer_table(footer + [None] * 254), 0, True, max_value, 1 << 20,
            counts, rules)
        return pos, keys, filtered

    assert run([10, 10], (None, (b"t", b"b"), (), None, (), (), ())) == (len(buf), 5, 2)
    assert run([10, c_walk.LEFT_OUT], c_walk.NO_NAME_RULES, 1 << 20) == (len(buf), 6, 1)
    assert run([10, 10], c_walk.NO_NAME_RULES) == (0, 0, 0)  # kept: the tiny list stops the walk
    assert run([10, c_walk.LEFT_OUT], c_walk.NO_NAME_RULES) == (len(tiny_list), 0, 1)  # then the big one
