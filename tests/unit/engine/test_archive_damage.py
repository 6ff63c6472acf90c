"""A damaged archive is a FormatError naming it, also when the damage shows while a member is read.

The decompressors raise EOFError, zlib/lzma errors or OSError without errno from inside ``read``,
after ``archive_members`` handed the stream out: those must not reach the CLI (typer turns an
EOFError into a bare "Aborted.") or the service (an "internal error") as they are.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import tarfile
import zipfile
from collections.abc import Callable
from typing import BinaryIO, cast

import pytest

from cachemigrate.engine.sources import ArchiveKind, archive_members
from cachemigrate.errors import FormatError

DATA = bytes(range(256)) * 4000 + b"".join(b"%d," % i for i in range(50000))


def _tar_gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("b/dump.rdb")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("b/dump.rdb", data)
    return buf.getvalue()


def _read_all(blob: bytes, name: str, kind: ArchiveKind) -> None:
    for fh, _, _ in archive_members(cast(BinaryIO, io.BytesIO(blob)), name, kind):
        while fh.read(1 << 16):
            pass


def _flip(blob: bytes) -> bytes:
    bad = bytearray(blob)
    for i in range(len(bad) // 2, len(bad) // 2 + 64):
        bad[i] ^= 0x5A
    return bytes(bad)


MAKERS: dict[str, tuple[ArchiveKind, Callable[[bytes], bytes]]] = {
    "d.rdb.gz": ("gz", gzip.compress), "d.rdb.bz2": ("bz2", bz2.compress), "d.rdb.xz": ("xz", lzma.compress),
    "d.tar.gz": ("tar", _tar_gz), "d.zip": ("zip", _zip),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_whole_archive_reads(name: str) -> None:
    kind, make = MAKERS[name]
    got = b""
    for fh, _, _ in archive_members(cast(BinaryIO, io.BytesIO(make(DATA))), name, kind):
        got += fh.read()
    assert got == DATA


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_archive_is_a_format_error_naming_it(name: str, cut: float) -> None:
    kind, make = MAKERS[name]
    blob = make(DATA)
    with pytest.raises(FormatError) as info:
        _read_all(blob[: int(len(blob) * cut)], name, kind)
    assert str(info.value).startswith(name) and "truncated" in str(info.value)


@pytest.mark.parametrize("name", ["d.rdb.gz", "d.rdb.bz2", "d.rdb.xz", "d.zip"])
def test_corrupt_archive_is_a_format_error_naming_it(name: str) -> None:
    kind, make = MAKERS[name]
    with pytest.raises(FormatError) as info:
        _read_all(_flip(make(DATA)), name, kind)
    said = str(info.value)
    assert said.startswith(name) and ("corrupt" in said or "truncated" in said), said


def test_a_disk_error_under_the_archive_stays_an_os_error() -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: object) -> int:
            raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError) as info:
        _read_all_from(cast(BinaryIO, io.BufferedReader(Failing())))
    assert info.value.errno == errno.EIO and not isinstance(info.value, FormatError)


def _read_all_from(fh: BinaryIO) -> None:
    for member, _, _ in archive_members(fh, "d.rdb.gz", "gz"):
        member.read()
