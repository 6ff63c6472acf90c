"""The stream's framing scan (protocol/frames.py): the C scan and its pure-Python twin agree with
each other and with the exact request parser, on every cut of generated streams."""

from __future__ import annotations

import random

import pytest

from cachemigrate.errors import ProtocolError
from cachemigrate.protocol import frames
from cachemigrate.protocol.commands import pack_command
from cachemigrate.protocol.resp import parse_commands
from support.require import require

SPECIAL = (b"PING", b"SELECT", b"MULTI", b"EXEC")
IMPLS = [pytest.param(False, id="python"), pytest.param(True, id="c")]


def _accel(accelerated: bool) -> bool:
    if accelerated:
        require(frames.HAS_C_SCAN, "the C framing scan cachemigrate.protocol._frames (make install "
                "builds it with gcc; CACHEMIGRATE_NO_EXT unset)")
    return accelerated


def _stream(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(0, 40)):
        r = rng.random()
        if r < 0.04:
            parts.append(b"\n")  # a keepalive
        elif r < 0.06:
            parts.append(rng.choice([b"*0\r\n", b"*-1\r\n"]))
        elif r < 0.2:
            parts.append(pack_command((rng.choice([b"ping", b"SELECT", b"multi", b"Exec"]), b"1")))
        else:
            name = rng.choice([b"SET", b"set", b"HSET", b"SELECTX", b"PIN", b"execs"])
            parts.append(pack_command((name, b"k%d" % rng.randint(0, 9), b"\r\n*" * rng.randint(0, 20))))
    return b"".join(parts)


def _check(buf: bytes, special: tuple[bytes, ...] | None, accelerated: bool) -> None:
    segments, end, need = frames.scan(buf, special, accelerated=accelerated)
    commands, _, consumed = parse_commands(buf, accelerated=False, inline=False)
    assert end == consumed
    # The segments hold exactly the commands, in order, each special one parsed, runs as bytes.
    again: list[list[bytes]] = []
    for argv, start, stop, count in segments:
        part = parse_commands(buf[start:stop], accelerated=False, inline=False)
        assert part[2] == stop - start and len(part[0]) == count
        assert buf[start:start + 1] == b"*"
        if argv is None:
            assert special is not None
            assert all(bytes(c[0]).upper() not in special for c in part[0])
        else:
            assert count == 1 and part[0] == [argv]
            assert special is None or argv[0].upper() in special
        again += part[0]
    assert again == commands
    stops = [stop for *_, stop, _ in segments]
    assert stops == sorted(stops) and (not stops or stops[-1] <= end)
    if need:
        assert need > len(buf)


@pytest.mark.parametrize("accelerated", IMPLS)
def test_scan_agrees_with_the_request_parser_on_every_cut(accelerated: bool) -> None:
    accelerated = _accel(accelerated)
    rng = random.Random(15)
    for _ in range(300):
        buf = _stream(rng)
        for cut in sorted({0, len(buf), *(rng.randint(0, len(buf)) for _ in range(8))}):
            for special in (SPECIAL, None):
                _check(buf[:cut], special, accelerated)


def test_c_scan_and_python_twin_give_the_same_segments() -> None:
    _accel(True)
    rng = random.Random(9)
    for _ in range(2000):
        buf = _stream(rng)
        b = buf[: rng.randint(0, len(buf))]
        for special in (SPECIAL, None):
            assert frames.scan(b, special, accelerated=True) == frames.scan(b, special, accelerated=False)


@pytest.mark.parametrize("accelerated", IMPLS)
def test_runs_break_at_special_commands_and_keepalives(accelerated: bool) -> None:
    accelerated = _accel(accelerated)
    a, b = pack_command((b"SET", b"a", b"1")), pack_command((b"INCR", b"b"))
    sel = pack_command((b"select", b"2"))
    buf = a + b + sel + b + b"\n" + a
    segments, end, need = frames.scan(buf, SPECIAL, accelerated=accelerated)
    n1 = len(a + b)
    assert segments == [
        (None, 0, n1, 2),
        ([b"select", b"2"], n1, n1 + len(sel), 1),
        (None, n1 + len(sel), n1 + len(sel) + len(b), 1),
        (None, len(buf) - len(a), len(buf), 1),
    ]
    assert (end, need) == (len(buf), 0)


@pytest.mark.parametrize("accelerated", IMPLS)
def test_a_large_value_still_arriving_says_how_long_the_buffer_must_be(accelerated: bool) -> None:
    accelerated = _accel(accelerated)
    big = pack_command((b"SET", b"k", b"x" * 100_000))
    segments, end, need = frames.scan(big[:5000], SPECIAL, accelerated=accelerated)
    assert (segments, end, need) == ([], 0, len(big))


@pytest.mark.parametrize("accelerated", IMPLS)
@pytest.mark.parametrize("bad", [b"SET x\r\n", b"*1\r\n$-1\r\n", b"*1\r\n:3\r\n"])
def test_bytes_that_are_no_resp_array_raise_with_the_offset(accelerated: bool, bad: bytes) -> None:
    accelerated = _accel(accelerated)
    good = pack_command((b"SET", b"a", b"1"))
    with pytest.raises(ProtocolError, match=r"at byte \d+") as info:
        frames.scan(good + bad + good, SPECIAL, accelerated=accelerated)
    at = int(str(info.value).split("at byte ")[1].split(":")[0].split(",")[0])
    assert len(good) <= at < len(good + bad)  # in the bad command: offsets of the whole buffer


@pytest.mark.parametrize("accelerated", IMPLS)
def test_a_form_the_c_scan_leaves_is_parsed_as_the_server_does(accelerated: bool) -> None:
    """No CRLF after a bulk: the server skips two bytes unread (resp.py), so does the scan."""
    accelerated = _accel(accelerated)
    good = pack_command((b"SET", b"a", b"1"))
    odd = b"*2\r\n$4\r\nINCR\r\n$1\r\nkX\r\n"
    segments, end, _ = frames.scan(good + odd + good, SPECIAL, accelerated=accelerated)
    assert end == len(good + odd + good) and sum(seg[3] for seg in segments) == 3
