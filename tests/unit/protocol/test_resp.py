"""The reply reader and the request parser, with and without the hiredis accelerator."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cachemigrate.errors import ProtocolError
from cachemigrate.protocol.commands import pack_command
from cachemigrate.protocol.resp import (
    HAS_HIREDIS,
    NEED_DATA,
    CommandStream,
    ErrorReply,
    PyReplyReader,
    parse_commands,
    reply_reader,
)

MODES = [pytest.param(False, id="python")] + (
    [pytest.param(True, id="hiredis")] if HAS_HIREDIS else []
)

# (wire bytes, expected replies). Errors compare by class and message.
GOLDEN: list[tuple[bytes, list[Any]]] = [
    (b"+OK\r\n", [b"OK"]),
    (b"-ERR unknown command\r\n", [ErrorReply("ERR unknown command")]),
    (b":42\r\n:-7\r\n", [42, -7]),
    (b"$5\r\nhello\r\n$0\r\n\r\n$-1\r\n", [b"hello", b"", None]),
    (b"$4\r\na\r\nb\r\n", [b"a\r\nb"]),
    (b"*3\r\n:1\r\n$1\r\nx\r\n-BUSYKEY Target key name already exists.\r\n",
     [[1, b"x", ErrorReply("BUSYKEY Target key name already exists.")]]),
    (b"*-1\r\n*0\r\n", [None, []]),
    (b"*2\r\n*1\r\n+a\r\n*0\r\n", [[[b"a"], []]]),
    # RESP3
    (b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", [{b"a": 1, b"b": 2}]),
    (b"~2\r\n:1\r\n:2\r\n", [[1, 2]]),
    (b"_\r\n#t\r\n#f\r\n", [None, True, False]),
    (b",1.5\r\n", [1.5]),
    (b"(12345678901234567890\r\n", [b"12345678901234567890"]),
    (b"=7\r\ntxt:abc\r\n", [b"abc"]),
]


def _norm(v: Any) -> Any:
    if isinstance(v, ErrorReply):
        return ("error", v.message)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def _drain(reader: Any) -> list[Any]:
    out = []
    while (r := reader.gets()) is not NEED_DATA:
        out.append(r)
    return out


@pytest.mark.parametrize("accelerated", MODES)
@pytest.mark.parametrize(("wire", "expected"), GOLDEN)
def test_golden_whole(accelerated: bool, wire: bytes, expected: list[Any]) -> None:
    reader = reply_reader(accelerated=accelerated)
    reader.feed(wire)
    assert _norm(_drain(reader)) == _norm(expected)


@pytest.mark.parametrize("accelerated", MODES)
def test_golden_split_at_every_byte(accelerated: bool) -> None:
    wire = b"".join(w for w, _ in GOLDEN)
    expected = [x for _, e in GOLDEN for x in e]
    for cut in range(1, len(wire)):
        reader = reply_reader(accelerated=accelerated)
        reader.feed(wire[:cut])
        got = _drain(reader)
        reader.feed(wire[cut:])
        got += _drain(reader)
        assert _norm(got) == _norm(expected), cut


@pytest.mark.parametrize("accelerated", MODES)
def test_byte_by_byte_and_offset_feed(accelerated: bool) -> None:
    reader = reply_reader(accelerated=accelerated)
    got = []
    for b in b"*2\r\n$3\r\nfoo\r\n:9\r\n+OK\r\n":
        reader.feed(bytes([b]))
        got += _drain(reader)
    assert got == [[b"foo", 9], b"OK"]
    reader.feed(b"xx+PONG\r\nyy", 2, 7)
    assert _drain(reader) == [b"PONG"]


@pytest.mark.parametrize("accelerated", MODES)
def test_protocol_error_raises(accelerated: bool) -> None:
    reader = reply_reader(accelerated=accelerated)
    reader.feed(b"?what\r\n")
    with pytest.raises(ProtocolError):
        reader.gets()


def test_errors_are_values_not_raised() -> None:
    reader = PyReplyReader()
    reader.feed(b"-WRONGTYPE bad\r\n")
    r = reader.gets()
    assert isinstance(r, ErrorReply) and r.message == "WRONGTYPE bad"
    assert not NEED_DATA and repr(NEED_DATA) == "NEED_DATA"


# ---- request parser ----------------------------------------------------------------------------


def _stream(n: int, seed: int = 7) -> tuple[bytes, list[list[bytes]]]:
    rng = random.Random(seed)
    cmds = []
    for i in range(n):
        value = rng.randbytes(rng.choice((0, 1, 9, 10, 99, 100, 1000, 20000)))
        cmds.append([b"SET", b"key:%d" % i, value] if i % 3 else [b"HSET", b"h", b"f\r\n", value, b"g", b""])
    return b"".join(pack_command(c) for c in cmds), cmds


@pytest.mark.parametrize("accelerated", MODES)
def test_parse_commands_sizes_add_up(accelerated: bool) -> None:
    wire, cmds = _stream(500)
    got, sizes, consumed = parse_commands(wire, accelerated=accelerated)
    assert got == cmds
    assert consumed == len(wire) == sum(sizes)
    assert sizes == [len(pack_command(c)) for c in cmds]


@pytest.mark.parametrize("accelerated", MODES)
def test_parse_commands_inline_and_keepalives(accelerated: bool) -> None:
    wire = b"\n\nPING\r\n*1\r\n$4\r\nPING\r\n\nSET a  b\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n\n"
    got, sizes, consumed = parse_commands(wire, accelerated=accelerated)
    assert got == [[b"PING"], [b"PING"], [b"SET", b"a", b"b"], [b"GET", b"a"]]
    assert sizes == [8, 14, 10, 20]
    assert consumed == len(wire)  # the trailing keepalive counts too


@pytest.mark.parametrize("accelerated", MODES)
def test_parse_commands_leaves_incomplete_tail(accelerated: bool) -> None:
    wire, cmds = _stream(50)
    for cut in (1, 5, len(wire) // 2, len(wire) - 1):
        got, sizes, consumed = parse_commands(wire[:cut], accelerated=accelerated)
        assert got == cmds[: len(got)]
        assert consumed == sum(sizes) <= cut
        rest, _, used = parse_commands(wire[consumed:], accelerated=accelerated)
        assert got + rest == cmds and consumed + used == len(wire)


@pytest.mark.parametrize("accelerated", MODES)
def test_empty_arrays_are_skipped(accelerated: bool) -> None:
    wire = b"*0\r\n*1\r\n$4\r\nPING\r\n*-1\r\n"
    got, sizes, consumed = parse_commands(wire, accelerated=accelerated)
    assert got == [[b"PING"]] and sizes == [18] and consumed == len(wire)


@pytest.mark.parametrize("accelerated", MODES)
def test_non_canonical_lengths_are_exact(accelerated: bool) -> None:
    wire = b"*02\r\n$03\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n"
    got, sizes, consumed = parse_commands(wire, accelerated=accelerated)
    assert got == [[b"GET", b"k"], [b"PING"]]
    assert sizes == [22, 14] and consumed == len(wire)


@pytest.mark.parametrize("accelerated", MODES)
def test_malformed_request_raises(accelerated: bool) -> None:
    with pytest.raises(ProtocolError):
        parse_commands(b"*1\r\n:1\r\n", accelerated=accelerated)


@pytest.mark.parametrize("accelerated", MODES)
def test_command_stream_random_splits(accelerated: bool) -> None:
    wire, cmds = _stream(300, seed=3)
    rng = random.Random(1)
    stream = CommandStream(accelerated=accelerated)
    got: list[list[bytes]] = []
    total = pos = 0
    while pos < len(wire):
        step = rng.randint(1, 30000)
        stream.feed(wire[pos : pos + step])
        pos += step
        c, s, consumed = stream.pop()
        assert sum(s) <= consumed
        got += c
        total += consumed
    assert got == cmds and total == len(wire) and stream.pending == 0


@pytest.mark.parametrize("accelerated", MODES)
def test_command_stream_big_value_in_small_pieces(accelerated: bool) -> None:
    big = [b"SET", b"big", b"v" * 3_000_000]
    wire = pack_command(big) + pack_command([b"PING"])
    stream = CommandStream(accelerated=accelerated)
    got: list[list[bytes]] = []
    total = 0
    for i in range(0, len(wire), 4096):
        stream.feed(wire[i : i + 4096])
        c, _, consumed = stream.pop()
        got += c
        total += consumed
    assert got == [big, [b"PING"]] and total == len(wire) and stream.pending == 0


@pytest.mark.parametrize("accelerated", [False, True])
def test_negative_argument_length_is_a_protocol_error(accelerated: bool) -> None:
    # It used to move the parser backwards (an AOF's "SET ''"): a request never has nil arguments.
    with pytest.raises(ProtocolError, match="bad bulk length -7"):
        parse_commands(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nSET\r\n$-7\r\nzz\r\n", accelerated=accelerated)


def test_a_replication_stream_takes_no_inline_commands() -> None:
    stream = CommandStream(inline=False)
    stream.feed(b"\n*1\r\n$4\r\nPING\r\n")  # keepalives and arrays are what a master sends
    assert stream.pop()[0] == [[b"PING"]]
    stream.feed(b":garbage\r\n")
    with pytest.raises(ProtocolError, match="not a RESP array"):
        stream.pop()
    inline = CommandStream()
    inline.feed(b"PING\r\n")
    assert inline.pop()[0] == [[b"PING"]]  # an AOF / client request may still use them
