"""Packers: what we pack parses back to the same arguments; large arguments are not copied."""

from __future__ import annotations

import pytest

from cachemigrate.protocol.commands import (
    LARGE_ARG,
    key_commands_packer,
    pack_argv,
    pack_chunks,
    pack_command,
    restore_extra,
    restore_templates,
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
    got, sizes, consumed = parse_commands(b"".join(pack_command(c) for c in cmds))
    assert got == cmds and sum(sizes) == consumed
    assert [len(pack_argv(c)) for c in cmds] == sizes


def test_large_args_are_separate_chunks() -> None:
    big = b"v" * (LARGE_ARG + 1)
    view = memoryview(big)
    chunks = pack_chunks([b"SET", b"key", view, b"EX", b"10"])
    assert any(c is view for c in chunks)
    assert len(chunks) == 3
    wire = b"".join(bytes(c) for c in chunks)
    assert wire == pack_command([b"SET", b"key", big, b"EX", b"10"])
    assert pack_chunks([b"PING"]) == [b"*1\r\n$4\r\nPING\r\n"]


@pytest.mark.parametrize("replace", [True, False])
@pytest.mark.parametrize("ttl", [None, 0, 1_700_000_000_123])
def test_restore_templates_and_extras_parse_back(replace: bool, ttl: int | None) -> None:
    persist, expiring = restore_templates(replace)
    key, type_byte, value, footer = b"k%\r\n", b"\x11", b"%b\r\n" * 3, b"\x0b\x00" + b"\x01" * 8
    n = len(value) + 11
    if ttl is None:
        packed = persist % (len(key), key, n, type_byte, value, footer)
    else:
        packed = expiring % (len(key), key, len(b"%d" % ttl), b"%d" % ttl, n, type_byte, value, footer)
    cmd = [b"RESTORE", key, b"0" if ttl is None else b"%d" % ttl, type_byte + value + footer,
           *([b"REPLACE"] if replace else []), b"ABSTTL"]
    assert packed == pack_command(cmd)
    assert restore_extra(packed, replace, 30, None) == pack_command([*cmd, b"IDLETIME", b"30"])
    assert restore_extra(packed, replace, 0, 5) == pack_command([*cmd, b"IDLETIME", b"0"])
    assert restore_extra(packed, replace, None, 255) == pack_command([*cmd, b"FREQ", b"255"])
    assert restore_extra(packed, replace, None, None) is packed


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 12, 40])
def test_pack_argv_all_arities(n: int) -> None:
    argv: list[bytes | bytearray | memoryview] = [b"CMD"] + [b"a%d\r\n" % i for i in range(n - 1)]
    if n > 2:
        argv[1] = memoryview(b"view")
        argv[2] = bytearray(b"array")
    assert pack_argv(argv) == pack_command(argv)


def test_key_commands_packer_round_trips() -> None:
    keys = [b"a", b"", b"\x00\r\n*2\r\n", b"k" * 70_000]
    wire = key_commands_packer((b"TYPE", b"PTTL", b"DUMP"))(keys)
    commands, _, consumed = parse_commands(wire)
    assert consumed == len(wire)
    names = (b"TYPE", b"PTTL", b"DUMP")
    assert [list(map(bytes, c)) for c in commands] == [[n, k] for k in keys for n in names]
    assert key_commands_packer((b"EXISTS",))([]) == b""
