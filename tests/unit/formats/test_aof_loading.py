"""AofFileReader without servers: db mapping through the transform, MULTI blocks, keys, offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachemigrate.engine.commands import command_key
from cachemigrate.engine.entry import Entry
from cachemigrate.engine.readers.aof_file import AofFileReader
from cachemigrate.engine.readers.base import ReaderContext, RecordTransform
from cachemigrate.engine.spec import DbMode, PipelineOptions
from cachemigrate.engine.status import LogLevel, RecordingSink
from cachemigrate.engine.transform import TargetCaps, Transformer
from cachemigrate.errors import AofFormatError, ConfigError, RdbFormatError
from cachemigrate.formats.rdb import KeyRecord, RdbHeader, RdbParser
from support.corpus import CORPUS

GENERATED = CORPUS / "generated-local"


def resp(*argv: bytes) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)


async def read(
    paths: list[Path | str], options: PipelineOptions | None = None, sink_into: list[Entry] | None = None
) -> tuple[list[list[Entry]], AofFileReader, RecordingSink]:
    opts = options or PipelineOptions()
    caps = TargetCaps(rdb_version=10, vendor="redis", version=(7, 0, 15))

    def factory(header: RdbHeader) -> RecordTransform:
        return Transformer(opts, header, caps)

    sink = RecordingSink()
    reader = AofFileReader([str(p) for p in paths], ReaderContext(opts, factory, sink))
    batches = []
    async for b in reader.batches():
        batches.append(b)
        if sink_into is not None:
            sink_into += b
    return batches, reader, sink


def flat(batches: list[list[Entry]]) -> list[tuple[bytes, int, bytes | None]]:
    return [(e.name, e.db, e.key) for b in batches for e in b]


SCRIPT = (
    resp(b"SELECT", b"0") + resp(b"SET", b"a", b"1")
    + resp(b"SELECT", b"3") + resp(b"SET", b"b", b"2")
    + resp(b"MULTI") + resp(b"INCR", b"c") + resp(b"EXEC")
    + resp(b"FLUSHALL") + resp(b"SWAPDB", b"0", b"1")
    + resp(b"FUNCTION", b"LOAD", b"#!lua name=x\nredis.register_function('f', function() return 1 end)")
)  # fmt: skip


@pytest.mark.parametrize(
    ("options", "expected", "warns"),
    [
        (PipelineOptions(), [(b"SET", 0, b"a"), (b"SET", 3, b"b"), (b"MULTI", 3, None), (b"INCR", 3, b"c"),
                             (b"EXEC", -1, None), (b"FLUSHALL", -1, None), (b"SWAPDB", -1, None),
                             (b"FUNCTION", -1, None)], 0),
        (PipelineOptions(db_mode=DbMode.FOLD),
         [(b"SET", 0, b"a"), (b"SET", 0, b"b"), (b"MULTI", 0, None), (b"INCR", 0, b"c"), (b"EXEC", -1, None),
          (b"FLUSHDB", 0, None), (b"FUNCTION", -1, None)], 1),
        (PipelineOptions(db_mode=DbMode.ONLY, db=3, target_db=5),
         [(b"SET", 5, b"b"), (b"MULTI", 5, None), (b"INCR", 5, b"c"), (b"EXEC", -1, None),
          (b"FLUSHDB", 5, None), (b"FUNCTION", -1, None)], 1),
    ],
    ids=["keep", "fold", "only-3-to-5"],
)
async def test_select_becomes_entry_db_through_the_transform_mapping(
    options: PipelineOptions, expected: list[tuple[bytes, int, bytes | None]], warns: int, tmp_path: Path
) -> None:
    path = tmp_path / "appendonly.aof"
    path.write_bytes(SCRIPT)
    batches, reader, sink = await read([path], options)
    assert flat(batches) == expected
    assert len([m for lvl, m in sink.logs if lvl is LogLevel.WARNING and "SWAPDB" in m]) == warns
    [src] = reader.sources
    assert (src.commands, src.keys, src.state, src.bytes_read) == (10, 0, "done", len(SCRIPT))
    last = batches[-1][-1]
    assert last.source_offset == len(SCRIPT) and last.size == len(SCRIPT) - SCRIPT.rindex(b"*3\r\n$8")


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        ([b"SET", b"k", b"v"], b"k"),
        ([b"set", b"k", b"v"], b"k"),
        ([b"EVAL", b"return 1", b"1", b"k1", b"k2"], b"k1"),
        ([b"EVALSHA", b"abc", b"0", b"arg"], None),
        ([b"FCALL", b"f", b"2", b"k1", b"k2"], b"k1"),
        ([b"BITOP", b"AND", b"dest", b"a", b"b"], b"dest"),
        ([b"XGROUP", b"CREATE", b"stream", b"g", b"$"], b"stream"),
        ([b"LMPOP", b"2", b"l1", b"l2", b"LEFT"], b"l1"),
        ([b"BLMPOP", b"0", b"1", b"l1", b"LEFT"], b"l1"),
        ([b"ZUNIONSTORE", b"dest", b"2", b"a", b"b"], b"dest"),
        ([b"FLUSHALL"], None),
        ([b"FUNCTION", b"LOAD", b"code"], None),
        ([b"SCRIPT", b"LOAD", b"code"], None),
        ([b"MULTI"], None),
        ([b"PING"], None),
    ],
)
def test_first_key_of_a_command(argv: list[bytes], key: bytes | None) -> None:
    assert command_key(argv) == key


async def test_a_multi_block_is_never_split_across_batches(tmp_path: Path) -> None:
    block = resp(b"MULTI") + b"".join(resp(b"RPUSH", b"l", b"%d" % i) for i in range(100)) + resp(b"EXEC")
    data = resp(b"SELECT", b"0") + b"".join(resp(b"SET", b"k%d" % i, b"v") for i in range(2040)) + block
    data += b"".join(resp(b"SET", b"z%d" % i, b"v") for i in range(3000))
    path = tmp_path / "a.aof"
    path.write_bytes(data)
    batches, _, _ = await read([path])
    assert sum(len(b) for b in batches) == 2040 + 102 + 3000
    [inside] = [b for b in batches if any(e.name == b"MULTI" for e in b)]
    names = [e.name for e in inside]
    assert names.count(b"RPUSH") == 100 and names.index(b"EXEC") == names.index(b"MULTI") + 101
    start = data.index(block)
    m = names.index(b"MULTI")
    # a checkpoint inside the block would replay it whole: only EXEC says the block is applied
    assert {e.source_offset for e in inside[m : m + 101]} == {start}
    assert inside[m + 101].source_offset == start + len(block)


async def test_offsets_run_on_across_files_and_rdb_files_are_read_too(tmp_path: Path) -> None:
    rdb = GENERATED / "redis-6.0.9-single-aof-plain" / "dump.rdb"
    aof = tmp_path / "tail.aof"
    aof.write_bytes(resp(b"SELECT", b"0") + resp(b"DEL", b"x"))
    batches, reader, _ = await read([rdb, aof])
    entries = [e for b in batches for e in b]
    restores = [e for e in entries if e.name == b"RESTORE"]
    assert len(restores) == 25 and {e.tag for e in restores} != {""}
    offsets = [e.source_offset for e in entries]
    assert offsets == sorted(offsets) and offsets[-1] == rdb.stat().st_size + aof.stat().st_size
    assert [(s.keys, s.commands, s.rdb_end) for s in reader.sources] == [
        (25, 0, rdb.stat().st_size), (0, 2, None)]
    p = reader.progress()
    assert p.bytes_read == p.bytes_total == rdb.stat().st_size + aof.stat().st_size and p.keys_read == 27


async def test_empty_and_annotation_only_files_are_fine(tmp_path: Path) -> None:
    (tmp_path / "empty.aof").write_bytes(b"")
    (tmp_path / "ts.aof").write_bytes(b"#TS:1700000000\r\n")
    batches, reader, sink = await read([tmp_path / "empty.aof", tmp_path / "ts.aof"])
    assert batches == [] and [s.state for s in reader.sources] == ["done", "done"]
    assert [m for lvl, m in sink.logs if lvl is not LogLevel.INFO] == []


async def test_a_file_that_is_neither_rdb_nor_aof_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world\n")
    with pytest.raises(AofFormatError, match=r"not an RDB or AOF file .*notes\.txt, offset 0"):
        await read([path])


async def test_an_rdb_cut_short_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "appendonly.aof"
    source = GENERATED / "redis-6.0.9-single-aof-rdbpreamble" / "appendonly.aof"
    path.write_bytes(source.read_bytes()[:5000])
    opts = PipelineOptions()
    caps = TargetCaps(rdb_version=10)
    context = ReaderContext(opts, lambda h: Transformer(opts, h, caps), RecordingSink())
    reader = AofFileReader([str(path)], context)
    got: list[Entry] = []
    with pytest.raises(RdbFormatError, match=r"appendonly\.aof") as err:
        async for batch in reader.batches():
            got += batch
    assert "offset" in str(err.value)
    assert got and all(e.name == b"RESTORE" for e in got)  # the whole keys before the cut
    assert reader.sources[0].state == "failed"


async def test_damage_keeps_the_keys_before_it_in_the_same_read(tmp_path: Path) -> None:
    """The whole file is one read: the keys of its RDB part before a bad checksum still go out."""
    data = bytearray((GENERATED / "redis-6.0.9-single-aof-rdbpreamble" / "appendonly.aof").read_bytes())
    parser = RdbParser()
    parser.feed(bytes(data))
    keys = sum(type(r) is KeyRecord for r in parser.records())
    rdb_end = len(data) - len(parser.remainder())
    data[rdb_end - 1] ^= 0xFF  # the RDB part's CRC64
    path = tmp_path / "appendonly.aof"
    path.write_bytes(bytes(data))
    got: list[Entry] = []
    with pytest.raises(RdbFormatError, match="checksum mismatch"):
        await read([path], sink_into=got)
    assert keys > 0 and len(got) == keys and all(e.name == b"RESTORE" for e in got)


async def test_multipart_folders_need_exactly_one_manifest_and_all_its_files(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    with pytest.raises(ConfigError, match=r"no \*\.manifest"):
        await read([tmp_path / "none"])
    two = tmp_path / "two"
    two.mkdir()
    (two / "a.manifest").write_bytes(b"file a seq 1 type b\n")
    (two / "b.manifest").write_bytes(b"file b seq 1 type b\n")
    with pytest.raises(ConfigError, match="several manifests"):
        await read([two])
    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "appendonly.aof.manifest").write_bytes(
        b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n")
    (missing / "appendonly.aof.1.base.rdb").write_bytes(b"")
    listed = r"appendonly\.aof\.1\.incr\.aof: no such file or directory \(listed in .*manifest\)"
    with pytest.raises(ConfigError, match=listed):
        await read([missing])


async def test_history_files_are_never_replayed(tmp_path: Path) -> None:
    d = tmp_path / "appendonlydir"
    d.mkdir()
    (d / "appendonly.aof.1.incr.aof").write_bytes(resp(b"SET", b"old", b"1"))
    (d / "appendonly.aof.2.base.aof").write_bytes(resp(b"SET", b"base", b"1"))
    (d / "appendonly.aof.2.incr.aof").write_bytes(resp(b"SET", b"new", b"1"))
    (d / "appendonly.aof.manifest").write_bytes(
        b"file appendonly.aof.1.incr.aof seq 1 type h\n"
        b"file appendonly.aof.2.base.aof seq 2 type b\n"
        b"file appendonly.aof.2.incr.aof seq 2 type i\n")
    batches, _, _ = await read([d])
    assert [k for _, _, k in flat(batches)] == [b"base", b"new"]


async def test_stop_ends_the_batches(tmp_path: Path) -> None:
    path = tmp_path / "a.aof"
    path.write_bytes(b"".join(resp(b"SET", b"k%d" % i, b"v") for i in range(10000)))
    opts = PipelineOptions()
    caps = TargetCaps(rdb_version=10)
    context = ReaderContext(opts, lambda h: Transformer(opts, h, caps), RecordingSink())
    reader = AofFileReader([str(path)], context)
    got = 0
    async for batch in reader.batches():
        got += len(batch)
        reader.stop()
    assert 0 < got < 10000
