"""The replication command stream as entries: db folding, MULTI groups, filters, offsets."""

from __future__ import annotations

from cachemigrate.engine.commands import CommandMapper, command_key
from cachemigrate.engine.spec import DbMode, PipelineOptions


def _feed(m: CommandMapper, cmds: list[list[bytes]], start: int = 100, step: int = 10):  # type: ignore[no-untyped-def]
    m.reset(db=0, offset=start)
    out = []
    for i, argv in enumerate(cmds, 1):
        out += m.map(argv, start + i * step)
    return out


def test_select_is_folded_and_replication_commands_dropped() -> None:
    m = CommandMapper(PipelineOptions())
    out = _feed(m, [[b"SELECT", b"3"], [b"SET", b"k", b"v"], [b"PING"], [b"REPLCONF", b"GETACK", b"*"],
                    [b"select", b"0"], [b"DEL", b"a", b"b"]])
    assert [(e.argv[0], e.db, e.key, e.source_offset) for e in out] == [
        (b"SET", 3, b"k", 120), (b"DEL", 0, b"a", 160)]
    assert m.db_at(105) == 0 and m.db_at(119) == 3 and m.db_at(150) == 0


def test_multi_group_is_whole_and_only_exec_moves_the_offset() -> None:
    m = CommandMapper(PipelineOptions())
    out = _feed(m, [[b"SELECT", b"2"], [b"MULTI"], [b"SET", b"a", b"1"], [b"INCR", b"b"], [b"EXEC"]])
    assert [e.argv[0] for e in out] == [b"MULTI", b"SET", b"INCR", b"EXEC"]
    assert [e.source_offset for e in out] == [110, 110, 110, 150]
    assert {e.db for e in out} == {2}
    assert out[0].key is None and out[1].key == b"a"


def test_open_group_is_held_back() -> None:
    m = CommandMapper(PipelineOptions())
    assert _feed(m, [[b"MULTI"], [b"SET", b"a", b"1"]]) == []
    assert m.in_multi
    m.reset(db=0, offset=0)
    assert not m.in_multi


def test_only_mode_filters_other_dbs_and_maps_flushall() -> None:
    m = CommandMapper(PipelineOptions(db_mode=DbMode.ONLY, db=1, target_db=5))
    out = _feed(m, [[b"SET", b"x", b"0"], [b"SELECT", b"1"], [b"SET", b"y", b"1"], [b"FLUSHALL"],
                    [b"MULTI"], [b"SELECT", b"0"], [b"SET", b"z", b"2"], [b"EXEC"]])
    assert [(e.argv[0], e.db) for e in out] == [(b"SET", 5), (b"FLUSHDB", 5)]
    assert m.dropped == 2


def test_fold_mode_and_keyless_commands() -> None:
    m = CommandMapper(PipelineOptions(db_mode=DbMode.FOLD))
    out = _feed(m, [[b"SELECT", b"7"], [b"SET", b"k", b"v"], [b"FLUSHALL", b"ASYNC"],
                    [b"FUNCTION", b"LOAD", b"x"], [b"FLUSHDB"], [b"SWAPDB", b"0", b"1"]])
    assert [(e.argv, e.db, e.key) for e in out] == [
        ([b"SET", b"k", b"v"], 0, b"k"), ([b"FLUSHDB", b"ASYNC"], 0, None),
        ([b"FUNCTION", b"LOAD", b"x"], -1, None), ([b"FLUSHDB"], 0, None)]
    assert m.dropped == 1  # SWAPDB: two source dbs that are one target db


def test_keep_mode_sends_flushall_and_swapdb_as_they_are() -> None:
    m = CommandMapper(PipelineOptions())
    out = _feed(m, [[b"SELECT", b"2"], [b"FLUSHALL"], [b"SWAPDB", b"0", b"1"], [b"PUBLISH", b"ch", b"m"]])
    assert [(e.argv[0], e.db, e.key) for e in out] == [
        (b"FLUSHALL", -1, None), (b"SWAPDB", -1, None), (b"PUBLISH", -1, None)]


def test_command_key() -> None:
    assert command_key([b"eval", b"s", b"2", b"k1", b"k2", b"a"]) == b"k1"
    assert command_key([b"EVALSHA", b"s", b"0", b"a"]) is None
    assert command_key([b"set", b"k", b"v"]) == b"k"
    assert command_key([b"MULTI"]) is None
    assert command_key([b"BGREWRITEAOF"]) is None


def test_forget_before_keeps_the_db_in_force() -> None:
    m = CommandMapper(PipelineOptions())
    _feed(m, [[b"SELECT", b"1"], [b"SET", b"a", b"1"], [b"SELECT", b"2"], [b"SET", b"b", b"1"]])
    m.forget_before(125)
    assert m.db_changes[0] == (110, 1)
    assert m.db_at(125) == 1 and m.db_at(135) == 2
