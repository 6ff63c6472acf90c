"""Packers: what we pack parses back to the same arguments; large arguments are not copied."""

from __future__ import annotations

import pytest

from cachemigrate.protocol.commands import (
    LARGE_ARG,
    command_size,
    pack_argv,
    pack_chunks,
    pack_command,
    pack_many,
    pack_restore,
)
from cachemigrate.protocol.resp import parse_commands


def test_pack_command_types() -> None:
    assert pack_command([b"SET", "k", 12, memoryview(b"v"), bytearray(b"x"), 1.5]) == (
        b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$1\r\nv\r\n$1\r\nx\r\n$3\r\n1.5\r\n"
    )
    with pytest.raises(TypeError):
        pack_command([b"SET", True])
    with pytest.raises(TypeError):
        pack_command([b"SET", object()])  # type: ignore[list-item]


def test_round_trip_many() -> None:
    cmds = [[b"SET", b"k%d" % i, b"\r\n" * i] for i in range(100)] + [[b"PING"], [b"X", b""]]
    got, sizes, consumed = parse_commands(pack_many(cmds))
    assert got == cmds and sum(sizes) == consumed
    assert [command_size(c) for c in cmds] == sizes  # type: ignore[arg-type]


def test_large_args_are_separate_chunks() -> None:
    big = b"v" * (LARGE_ARG + 1)
    view = memoryview(big)
    chunks = pack_chunks([b"SET", b"key", view, b"EX", b"10"])
    assert any(c is view for c in chunks)
    assert len(chunks) == 3
    wire = b"".join(bytes(c) for c in chunks)
    assert wire == pack_command([b"SET", b"key", big, b"EX", b"10"])
    assert pack_chunks([b"PING"]) == [b"*1\r\n$4\r\nPING\r\n"]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"replace": False},
        {"absttl": True},
        {"replace": False, "absttl": True, "idletime": 30, "freq": 5},
        {"idletime": 0},
        {"freq": 255},
    ],
)
def test_pack_restore_round_trip(kw: dict[str, object]) -> None:
    payload = b"\x00\x03abc\x0b\x00" + b"\x01" * 8
    packed = pack_restore(b"key", 1234, payload, **kw)  # type: ignore[arg-type]
    assert isinstance(packed, bytes)
    (argv,), _, consumed = parse_commands(packed)
    assert consumed == len(packed)
    expected = [b"RESTORE", b"key", b"1234", payload]
    if kw.get("replace", True):
        expected.append(b"REPLACE")
    if kw.get("absttl"):
        expected.append(b"ABSTTL")
    if kw.get("idletime") is not None:
        expected += [b"IDLETIME", b"%d" % kw["idletime"]]  # type: ignore[str-format]
    if kw.get("freq") is not None:
        expected += [b"FREQ", b"%d" % kw["freq"]]  # type: ignore[str-format]
    assert argv == expected


def test_pack_restore_large_payload_not_copied() -> None:
    payload = memoryview(b"p" * (LARGE_ARG * 2))
    packed = pack_restore(b"k", 0, payload, absttl=True)
    assert isinstance(packed, list) and packed[1] is payload
    (argv,), _, _ = parse_commands(b"".join(bytes(c) for c in packed))
    assert argv == [b"RESTORE", b"k", b"0", bytes(payload), b"REPLACE", b"ABSTTL"]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 12, 40])
def test_pack_argv_all_arities(n: int) -> None:
    argv: list[bytes | bytearray | memoryview] = [b"CMD"] + [b"a%d\r\n" % i for i in range(n - 1)]
    if n > 2:
        argv[1] = memoryview(b"view")
        argv[2] = bytearray(b"array")
    assert pack_argv(argv) == pack_command(argv)
