"""Where backup files come from: local paths, ``s3://bucket/key`` objects, and archives of them.

Openers have the ``rdb_file.Opener`` shape (path -> stream, size or None, display name) and
stream: nothing is read whole into memory or downloaded whole to disk.
- S3 objects are read from boto3's ``get_object()['Body']`` as the reader asks for bytes.
- ``.zip`` needs random access (its directory is at the end): on S3 it is read through
  ``S3RangeFile``, a seekable file over ranged GETs with one cached block; a non-seekable stream
  from a custom opener is spooled to a temporary file (the only case that copies to disk).
- ``.tar``/``.tar.gz``/``.tgz``/``.tar.bz2``/``.tar.xz`` are read in stream mode (``r|*``);
  single-file ``.gz``/``.bz2``/``.xz`` are decompressed as they are read.
Each archive member is its own source: ``archive_members`` yields them one at a time, in archive
order, named ``archive!member``. Member names pass ``confine.check_name`` (no ``../``, no absolute
name); a symlink or hardlink member pointing outside the archive is refused, one inside it is
skipped (members are never extracted, so a link has nothing to follow). A zip's members are all
checked before the first is read; a tar stream's as they come (a .tar.gz has no directory).

``BucketFiles`` is where an import's files are (a bucket's directory or S3 prefix, or the CLI's
own paths) and opens each of them through ``confine``.
"""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, cast

from cachemigrate.engine.confine import Source, Want, check_name, confine, open_confined, shown
from cachemigrate.engine.s3_objects import S3RangeFile, S3Stream, open_s3, parse_s3_url
from cachemigrate.engine.spec import S3Settings
from cachemigrate.errors import CacheMigrateError, ConfigError, FormatError

# The archive and compression modules (tarfile, zipfile, gzip, bz2, lzma, tempfile, shutil) are
# imported by the functions that read archives: most imports never open an archive.

__all__ = [
    "ArchiveKind",
    "ArchiveMemberReader",
    "BucketFiles",
    "CountingReader",
    "S3RangeFile",
    "S3Stream",
    "Source",
    "archive_kind",
    "archive_members",
    "parse_s3_url",
]

ArchiveKind = Literal["zip", "tar", "gz", "bz2", "xz"]

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_SINGLE: dict[str, ArchiveKind] = {".gz": "gz", ".bz2": "bz2", ".xz": "xz"}
_UNSUPPORTED = (".7z", ".rar", ".zst", ".zstd", ".lz4", ".br", ".z", ".lzma", ".arj", ".cab")
_SPOOL_MEMORY = 16 << 20


class BucketFiles:
    """Where an import's files are; every one of them is located and opened here.

    ``root``: a local directory (names are relative to it and confined to it: ``confine``), an
    ``s3://bucket/prefix/`` URL (names are keys under the prefix, ``check_name``: no ``..``), or ""
    (the CLI: local paths and ``s3://`` URLs as given, not confined). A file is named as given in
    every message and log line, never by the server's path. ``s3`` None: boto3's own lookup of
    the endpoint and credentials. ``.zip`` objects are opened seekable.
    """

    def __init__(self, root: str = "", s3: S3Settings | None = None) -> None:
        if root.startswith("s3://") and not root.endswith("/"):
            root += "/"
        self.root = root
        self.s3 = s3 or S3Settings()
        # The directory of a file bucket, resolved (the anchor of every containment check).
        self.directory: Path | None = None if not root or root.startswith("s3://") else Path(root).resolve()
        self._clients: list[Any] = []

    def _url(self, name: str) -> str:
        if not self.root:
            return name
        check_name(name)
        return self.root + name

    def _on_s3(self, name: str) -> bool:
        if self.root.startswith("s3://") or (not self.root and name.startswith("s3://")):
            return True
        if not self.root and "://" in name:
            raise ConfigError(f"{name}: unsupported URL scheme (use a local path or s3://bucket/key)")
        return False

    def open(self, name: str) -> Source:
        """``name`` as a stream (an ``Opener``)."""
        if self._on_s3(name):
            return open_s3(self._url(name), self.s3, self._clients, seekable=archive_kind(name) == "zip",
                           name=name)
        return open_confined(self.directory, name)

    def check_file(self, name: str) -> None:
        """Refuse ``name`` unless it is a regular file inside the bucket (S3: a key under it)."""
        if self._on_s3(name):
            self._url(name)
        else:
            confine(self.directory, name, want=Want.FILE)

    def is_dir(self, name: str) -> bool:
        """True for a directory of the bucket (never on S3); ConfigError for what is not there."""
        if self._on_s3(name):
            return False
        return confine(self.directory, name, want=Want.ANY).is_dir()

    def entries(self, name: str) -> list[str]:
        """The names in directory ``name``, sorted (bare names: ``beside`` makes them paths)."""
        real = confine(self.directory, name, want=Want.DIR)
        try:
            return sorted(os.listdir(real))
        except OSError as exc:
            raise ConfigError(f"cannot list {shown(name)}: {(exc.strerror or '').lower()}") from None

    def inside(self, folder: str, entry: str) -> str:
        """The name of ``entry`` (one bare name) of directory ``folder``."""
        check_name(entry)
        if "/" in entry or "\\" in entry:
            raise ConfigError(f"{shown(entry)!r} is a path, not a file name")
        return posixpath.join(folder, entry) if folder else entry

    def beside(self, name: str, entry: str) -> str:
        """The name of ``entry`` (one bare name) in the folder of file ``name`` (a manifest's files)."""
        return self.inside(posixpath.dirname(name), entry)

    def size(self, name: str) -> int | None:
        """The size of a local file, None on S3 (known once it is opened)."""
        if self._on_s3(name):
            return None
        try:
            return confine(self.directory, name, want=Want.FILE).stat().st_size
        except (CacheMigrateError, OSError):
            return None  # opening it says why


# ---- archives --------------------------------------------------------------------------------


def archive_kind(path: str) -> ArchiveKind | None:
    """The archive or compression format by file name; ConfigError for ones we do not read."""
    low = path.lower().rstrip("/")
    if low.endswith(".zip"):
        return "zip"
    if low.endswith(_TAR_SUFFIXES):
        return "tar"
    for suffix, kind in _SINGLE.items():
        if low.endswith(suffix):
            return kind
    if low.endswith(_UNSUPPORTED):
        raise ConfigError(
            f"{path}: unsupported archive format (read: .zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .gz)"
        )
    return None


def archive_members(fh: BinaryIO, name: str, kind: ArchiveKind) -> Generator[Source, None, None]:
    """Each regular member in archive order. A member's stream is valid until the next one.

    A damaged archive is a FormatError naming it, whether found here (headers, a zip's directory)
    or while a member's stream is read (the data cut short or failing its check): each stream is
    wrapped in an ``ArchiveMemberReader``.
    """
    import tarfile

    try:
        if kind == "zip":
            for member, size, member_name in _zip_members(fh, name):
                yield ArchiveMemberReader.wrap(member, member_name), size, member_name
        elif kind == "tar":
            with tarfile.open(fileobj=fh, mode="r|*") as tf:
                for m in tf:
                    check_member(name, m.name, symlink=m.linkname if m.issym() else None,
                                 hardlink=m.linkname if m.islnk() else None)
                    if m.isfile():
                        extracted = tf.extractfile(m)
                        if extracted is not None:
                            member_name = f"{name}!{m.name}"
                            yield ArchiveMemberReader.wrap(extracted, member_name), m.size, member_name
        else:
            import bz2
            import gzip
            import lzma

            opener: Callable[[BinaryIO], BinaryIO] = {
                "gz": lambda f: cast(BinaryIO, gzip.GzipFile(fileobj=f, mode="rb")),
                "bz2": lambda f: cast(BinaryIO, bz2.BZ2File(f)),
                "xz": lambda f: cast(BinaryIO, lzma.LZMAFile(f)),  # noqa: SIM115 - closed with fh
            }[kind]
            # Named as given (the ".gz" kept): the damage is in that file's compressed data.
            yield ArchiveMemberReader.wrap(opener(fh), name), None, name.rsplit(".", 1)[0]
    except Exception as exc:
        damage = _archive_damage(name, exc)
        if damage is None:
            raise
        raise damage from exc


def check_member(
    archive: str, member: str, *, symlink: str | None = None, hardlink: str | None = None
) -> None:
    """Refuse a member named outside the archive, or a link member whose target is outside it.

    ``symlink``: the target relative to the member's folder (or absolute); ``hardlink``: the
    target relative to the archive's top.
    """
    where = f"the archive {archive}"
    check_name(member, where=where)
    if symlink is not None:
        target = symlink if symlink.startswith("/") else posixpath.join(posixpath.dirname(member), symlink)
    elif hardlink is not None:
        target = hardlink
    else:
        return
    top = posixpath.normpath(target) if target else ""
    if not top or top == ".." or top.startswith(("../", "/")):
        raise ConfigError(f"{archive}!{shown(member)}: a link to outside {where}")


def _archive_damage(where: str, exc: BaseException) -> FormatError | None:
    """The FormatError for an exception that says an archive's bytes are bad, else None.

    Decompressors and archive readers report damage in their own ways: EOFError (gzip, bz2, lzma
    cut short), tarfile.ReadError "unexpected end of data", zlib.error, lzma.LZMAError,
    zipfile.BadZipFile (bad directory, bad CRC), and OSError without an errno (gzip.BadGzipFile,
    bz2's "Invalid data stream"). An OSError with an errno is the disk's, and our own errors (an S3
    read under the archive) keep their meaning: both are left alone (None).
    """
    import sys
    import tarfile
    import zipfile
    import zlib

    if isinstance(exc, CacheMigrateError):
        return None
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or (isinstance(exc, tarfile.ReadError) and "unexpected end" in detail):
        return FormatError(f"{where}: the archive is truncated ({detail})")
    if isinstance(exc, zipfile.BadZipFile) and "not a zip file" in detail:
        return FormatError(f"{where}: not a zip file, or a truncated one (no zip directory at its end)")
    if isinstance(exc, OSError) and exc.errno is not None:
        return None
    lzma = sys.modules.get("lzma")  # imported only when an .xz was opened
    if isinstance(exc, (OSError, tarfile.TarError, zipfile.BadZipFile, zlib.error)) or (
        lzma is not None and isinstance(exc, lzma.LZMAError)
    ):
        return FormatError(f"{where}: the archive is corrupt ({detail})")
    return None


class ArchiveMemberReader:
    """A member's stream whose read errors from damaged data are FormatErrors naming the archive.

    They happen in the reader's ``read`` calls, long after ``archive_members`` handed the stream
    out (outside its ``try``): unwrapped, an EOFError reached typer, which printed "Aborted.".
    ``read`` passes the bytes through as they are (no copy).
    """

    __slots__ = ("_raw", "name")

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self._raw = raw
        self.name = name

    @classmethod
    def wrap(cls, raw: IO[bytes], name: str) -> BinaryIO:
        return cast(BinaryIO, cls(raw, name))

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read(size)
        except Exception as exc:
            damage = _archive_damage(self.name, exc)
            if damage is None:
                raise
            raise damage from exc

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> ArchiveMemberReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _zip_members(fh: BinaryIO, name: str) -> Iterator[Source]:
    import shutil
    import stat
    import tempfile
    import zipfile

    spool: BinaryIO | None = None
    if not fh.seekable():
        spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY))  # noqa: SIM115
        shutil.copyfileobj(fh, spool, 1 << 20)
        spool.seek(0)
        fh = spool
    try:
        with zipfile.ZipFile(fh) as zf:
            links = set()
            for info in zf.infolist():  # every member is checked before the first is read
                if stat.S_ISLNK(info.external_attr >> 16):  # a symlink: its target is its content
                    with zf.open(info) as link:
                        target = link.read(4096).decode("utf-8", "surrogateescape")
                    check_member(name, info.filename, symlink=target)
                    links.add(info.filename)
                else:
                    check_member(name, info.filename)
            for info in zf.infolist():
                if info.is_dir() or info.filename in links:
                    continue
                with zf.open(info) as member:
                    yield cast(BinaryIO, member), info.file_size, f"{name}!{info.filename}"
    finally:
        if spool is not None:
            spool.close()


class CountingReader(io.RawIOBase):
    """Counts the bytes read through it (compressed bytes of an archive, for progress)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        try:
            return bool(self.raw.seekable())
        except AttributeError:
            return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.raw.read(len(view))
        n = len(data)
        view[:n] = data
        self.count += n
        return n

    def tell_count(self) -> int:
        return self.count

    def close(self) -> None:
        self.raw.close()
        super().close()
