"""formats.aof: manifest parsing like aofLoadManifestFromFile, and the streaming command splitter."""

from __future__ import annotations

import pytest

from cachemigrate.errors import AofFormatError
from cachemigrate.formats.aof import AofCommand, AofSplitter, Truncation, parse_manifest, split_args
from support.corpus import CORPUS

GENERATED = CORPUS / "generated-local"
INCR_TS = GENERATED / "redis-7.0.15-multipart-rdbpreamble" / "appendonlydir" / "appendonly.aof.2.incr.aof"
PLAIN = GENERATED / "redis-6.0.9-single-aof-plain" / "appendonly.aof"
WITH_TS = CORPUS / "redis-replicator" / "appendonly-with-ts.aof"
CR_STRIPPED = CORPUS / "redisshake" / "test" / "aof_test" / "appendonlydir" / "appendonly.aof.2.incr.aof"


def resp(*argv: bytes) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)


# ---- sdssplitargs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("file a seq 1 type b", ["file", "a", "seq", "1", "type", "b"]),
        ("  spaced\t words  ", ["spaced", "words"]),
        ('file "with space" x', ["file", "with space", "x"]),
        ('"esc\\n\\t\\x41\\"q"', ["esc\n\tA\"q"]),
        ("'single \\'quoted\\' \\n'", ["single 'quoted' \\n"]),
        ('ab"cd ef"', ["abcd ef"]),  # a quote may start mid-word
        ('""', [""]),
        ('"unbalanced', None),
        ("'unbalanced", None),
        ('"closing"x', None),  # a closing quote must be followed by a space
        ("", []),
    ],
)
def test_split_args_like_sdssplitargs(line: str, expected: list[str] | None) -> None:
    assert split_args(line) == expected


# ---- manifest ----------------------------------------------------------------------------------


def test_manifest_of_every_corpus_set() -> None:
    for path in CORPUS.rglob("*.manifest"):
        m = parse_manifest(path.read_bytes(), source=str(path))
        assert m.base is not None and m.base.seq == 2 and m.base.type == "b"
        assert [f.name for f in m.incrs] == ["appendonly.aof.2.incr.aof"]
        assert m.replay == (m.base, *m.incrs)


def test_manifest_comments_quotes_unknown_keys_and_history() -> None:
    data = (
        b"# written by a future server\n"
        b'file "appendonly.aof.3.base.rdb" seq 3 type b future-key future-value\n'
        b"file appendonly.aof.1.incr.aof seq 1 type h\n"
        b"FILE 'odd name.aof' SEQ 4 TYPE i\r\n"
        b"file appendonly.aof.5.incr.aof seq 5 type i\n"
    )
    m = parse_manifest(data)
    assert m.base is not None and m.base.name == "appendonly.aof.3.base.rdb"
    assert [f.name for f in m.history] == ["appendonly.aof.1.incr.aof"]
    assert [(f.name, f.seq) for f in m.replay] == [
        ("appendonly.aof.3.base.rdb", 3), ("odd name.aof", 4), ("appendonly.aof.5.incr.aof", 5)]
    assert all(f.type != "h" for f in m.replay)  # history is never replayed


@pytest.mark.parametrize(
    ("data", "reason", "offset"),
    [
        (b"", "empty AOF manifest", 0),
        (b"file a seq 1 type b\n\nfile c seq 2 type i\n", "empty line", 20),
        (b"file a seq 1 type b\nfile b seq 1\n", "expected 'file <name>", 20),
        (b"file a seq 1 type b extra\n", "expected 'file <name>", 0),
        (b"file a seq 1 type b\nfile b seq 2 type b\n", "duplicate base", 20),
        (b"file a seq 2 type i\nfile b seq 2 type i\n", "non-monotonic", 20),
        (b"file a seq 1 type x\n", "unknown AOF file type", 0),
        (b"file ../a seq 1 type b\n", "can't be a path", 0),
        (b"file a seq 0 type b\n", "all required", 0),
        (b'file "a seq 1 type b\n', "expected 'file <name>", 0),
    ],
)
def test_bad_manifests_name_the_line(data: bytes, reason: str, offset: int) -> None:
    with pytest.raises(AofFormatError) as err:
        parse_manifest(data, source="dir/appendonly.aof.manifest")
    assert reason in str(err.value)
    assert (err.value.source, err.value.offset) == ("dir/appendonly.aof.manifest", offset)


# ---- splitter ----------------------------------------------------------------------------------


def split(
    data: bytes, step: int, accelerated: bool | None = None
) -> tuple[list[AofCommand], Truncation | None]:
    sp = AofSplitter(source="x.aof", accelerated=accelerated)
    out: list[AofCommand] = []
    for i in range(0, len(data), step):
        sp.feed(data[i : i + step])
        out += sp.commands()
    return out, sp.close()


@pytest.mark.parametrize("accelerated", [True, False], ids=["hiredis", "python"])
@pytest.mark.parametrize(("path", "count"), [(PLAIN, 80), (WITH_TS, 65), (INCR_TS, 20)],
                         ids=["plain", "with-ts", "incr-ts"])
def test_corpus_files_split_exactly_at_any_chunking(path: object, count: int, accelerated: bool) -> None:
    data = path.read_bytes()  # type: ignore[attr-defined]
    whole, trunc = split(data, len(data), accelerated)
    assert trunc is None and len(whole) == count
    for c in whole:  # every command re-encodes to exactly its bytes at its offset
        assert data[c.offset : c.end] == resp(*c.argv)
    for step in ((1,) if len(data) < 16384 else ()) + (7, 4096):  # byte by byte is quadratic
        got, trunc = split(data, step, accelerated)
        assert trunc is None
        assert [(c.argv, c.offset, c.size) for c in got] == [(c.argv, c.offset, c.size) for c in whole]


def test_annotations_are_skipped_and_hash_inside_values_is_data() -> None:
    first = resp(b"SET", b"k", b"a\n#TS:1\r\n")
    data = b"#TS:1700000000\r\n" + first + b"#TS:1700000001\n" + resp(b"DEL", b"k")
    for accelerated in (True, False):
        for step in (1, 5, len(data)):
            cmds, trunc = split(data, step, accelerated)
            assert trunc is None
            assert [(c.argv, c.offset) for c in cmds] == [
                ([b"SET", b"k", b"a\n#TS:1\r\n"], 16), ([b"DEL", b"k"], 16 + len(first) + 15)]


def test_base_offset_shifts_every_offset() -> None:
    sp = AofSplitter(base_offset=1000)
    sp.feed(resp(b"PING") + resp(b"SET", b"a", b"b"))
    second = 1000 + len(resp(b"PING"))
    assert [(c.offset, c.end) for c in sp.commands()] == [(1000, second), (second, second + 27)]
    assert sp.offset == second + 27 and sp.close() is None


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5, 10, 13, 20, 28])
def test_a_partial_last_command_is_a_truncation(cut: int) -> None:
    head = resp(b"SELECT", b"0")
    data = head + resp(b"SET", b"key", b"value")[:cut]
    cmds, trunc = split(data, 7)
    assert [c.argv for c in cmds] == [[b"SELECT", b"0"]]
    assert trunc == Truncation(len(head), cut)


def test_trailing_annotation_without_newline_is_not_a_truncation() -> None:
    cmds, trunc = split(resp(b"PING") + b"#TS:17000", 4)
    assert len(cmds) == 1 and trunc is None


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (b"PING\r\n", "expected '*'"),  # inline command
        (b"\n", "expected '*'"),  # bare newline
        (b"*1\r\n%4\r\nPING\r\n", "expected '$' for argument 1"),
        (b"*x\r\n$4\r\nPING\r\n", "bad length line"),
        (b"*1\r\n$x\r\nPING\r\n", "argument 1: bad length line"),
        (b"*0\r\n", "bad argument count"),
        (b"*1\n$4\nPING\n*1\n$4\nPING\n", "bad length line"),  # CRs stripped
    ],
)
def test_damage_is_an_error_at_the_command_after_the_good_ones(damage: bytes, reason: str) -> None:
    good = resp(b"SET", b"a", b"1") + resp(b"SET", b"b", b"2")
    data = good + damage + resp(b"SET", b"c", b"3")
    for accelerated in (True, False):
        sp = AofSplitter(source="x.aof", accelerated=accelerated)
        sp.feed(data)
        assert [c.argv[1] for c in sp.commands()] == [b"a", b"b"]  # kept: before the damage
        with pytest.raises(AofFormatError) as err:
            sp.commands()
        assert reason in str(err.value)
        assert (err.value.source, err.value.offset) == ("x.aof", len(good))


def test_damage_in_the_first_command_raises_at_once() -> None:
    sp = AofSplitter(source="y.aof", base_offset=50)
    sp.feed(b"GARBAGE")
    with pytest.raises(AofFormatError, match=r"y\.aof, offset 50"):
        sp.commands()


def test_damage_at_the_end_of_the_file_is_not_a_truncation() -> None:
    with pytest.raises(AofFormatError, match="expected '\\$' for argument 2"):
        split(resp(b"PING") + b"*2\r\n$4\r\nPING\r\n%3", 3)


def test_the_two_bytes_after_an_argument_are_skipped_like_the_server_does() -> None:
    cmds, trunc = split(b"*1\r\n$4\r\nPINGxx" + resp(b"SET", b"a", b"1"), 4)
    assert [c.argv for c in cmds] == [[b"PING"], [b"SET", b"a", b"1"]] and trunc is None


def test_redisshake_incr_with_stripped_crs_fails_at_offset_0_without_buffering_it_all() -> None:
    data = CR_STRIPPED.read_bytes()
    sp = AofSplitter(source=str(CR_STRIPPED))
    sp.feed(data[:4096])
    with pytest.raises(AofFormatError) as err:
        sp.commands()
    assert err.value.offset == 0 and "bad length line" in str(err.value)
