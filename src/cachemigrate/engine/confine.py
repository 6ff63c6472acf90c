"""The one check every file an import opens passes: it stays inside its bucket.

A bucket's files are named relative to its root directory, and every file an import opens is
checked here: the names given in the request, the files an AOF manifest lists, the manifest found
in a directory. Archive members, which are never files on disk, take the lexical half.

- ``check_name``: not empty, no NUL, not absolute, no ``..`` part, no part over ``NAME_MAX``
  bytes (the file system would refuse it with ENAMETOOLONG). Also the rule for S3 keys under a
  bucket's prefix and for archive member names.
- ``confine``: ``check_name``, then every symlink resolved (``Path.resolve(strict=True)``) and the
  result still ``is_relative_to(root)``, and of the kind asked for (a regular file, a directory).
  Containment is decided before existence: whether a symlink's target outside the bucket exists
  is not the tenant's to learn.
- ``open_confined``: ``confine``, then open without following a last symlink (``O_NOFOLLOW``) and
  check that the file opened is the one checked (device and inode): a symlink swapped in
  between is refused, not followed.

Every refusal is a ConfigError that names only the name as given (bucket-relative): the tenant
never sees the server's directories. ``root=None`` is the CLI: the operator's own paths, opened
as given with the same readable errors, not confined.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cachemigrate.errors import ConfigError

__all__ = ["NAME_MAX", "Opener", "Source", "Want", "check_name", "confine", "open_confined", "shown"]

NAME_MAX = 255  # bytes in one part of a path (Linux NAME_MAX)
_SHOWN = 120  # characters of a name echoed in a message

# (stream, size or None, display name); an opener maps a path to one.
Source = tuple[BinaryIO, int | None, str]
Opener = Callable[[str], Source]


class Want(enum.Enum):
    FILE = "a regular file"
    DIR = "a directory"
    ANY = "a file or a directory"


def shown(name: str) -> str:
    """``name`` as messages show it: cut short when it is very long (a 300-byte name part)."""
    return name if len(name) <= _SHOWN else f"{name[:_SHOWN]}..."


def check_name(name: str, *, where: str = "the bucket") -> None:
    """The lexical rules for a name relative to ``where`` (a bucket, an S3 prefix, an archive)."""
    if not name or "\x00" in name:
        raise ConfigError(f"{shown(name)!r} is not a file name")
    if name.startswith(("/", "\\")):
        raise ConfigError(f"file {shown(name)!r} must be a path relative to {where}")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise ConfigError(f"file {shown(name)!r} is outside {where}")
    if any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts):
        raise ConfigError(f"file {shown(name)!r}: a part of the name is longer than {NAME_MAX} bytes")


def _refused(name: str, why: str) -> ConfigError:
    return ConfigError(f"cannot open {shown(name)}: {why}")


def _os_reason(exc: OSError, *, confined: bool) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not found in the bucket" if confined else "no such file or directory"
    if exc.errno == errno.ELOOP:
        return "a symlink loop"
    if exc.errno == errno.ENAMETOOLONG:
        return f"a part of the name is longer than {NAME_MAX} bytes"
    return (exc.strerror or type(exc).__name__).lower()  # strerror never carries the path


def _resolve(root: Path, name: str) -> Path:
    """``root / name`` with every symlink resolved; ConfigError when it leaves ``root``."""
    path = root / name
    try:
        # Lexically resolved first (no existence needed): outside is outside, target there or not.
        if not path.resolve().is_relative_to(root):
            raise _refused(name, "outside the bucket")
        real = path.resolve(strict=True)
    except RuntimeError:  # Python 3.11's Path.resolve: "Symlink loop from ..."
        raise _refused(name, "a symlink loop") from None
    except OSError as exc:
        raise _refused(name, _os_reason(exc, confined=True)) from None
    if not real.is_relative_to(root):  # changed between the two resolves
        raise _refused(name, "outside the bucket")
    return real


def _kind(name: str, st: os.stat_result, want: Want) -> None:
    if want is Want.FILE and stat.S_ISDIR(st.st_mode):
        raise _refused(name, "a directory, not a file")
    if want is Want.FILE and not stat.S_ISREG(st.st_mode):
        raise _refused(name, "not a regular file")
    if want is Want.DIR and not stat.S_ISDIR(st.st_mode):
        raise _refused(name, "not a directory")
    if want is Want.ANY and not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise _refused(name, "not a regular file")


def _confine(root: Path, name: str, want: Want) -> tuple[Path, os.stat_result]:
    check_name(name)
    real = _resolve(root, name)
    try:
        st = real.stat()
    except OSError as exc:
        raise _refused(name, _os_reason(exc, confined=True)) from None
    _kind(name, st, want)
    return real, st


def confine(root: Path | None, name: str, *, want: Want = Want.FILE) -> Path:
    """The real path of ``name`` inside ``root`` (a resolved directory); see the module docstring.

    ``root`` None: ``name`` is the operator's own path, checked for existence and kind only.
    """
    if root is not None:
        return _confine(root, name, want)[0]
    path = Path(name)
    try:
        st = path.stat()
    except (OSError, ValueError) as exc:
        why = _os_reason(exc, confined=False) if isinstance(exc, OSError) else "not a file name"
        raise _refused(name, why) from None
    if want is not Want.ANY:  # the operator may name a device or a FIFO where a folder could be
        _kind(name, st, want)
    return path


def open_confined(root: Path | None, name: str) -> Source:
    """Open the regular file ``name`` of ``root`` (None: as given) for reading, named ``name``."""
    if root is None:
        try:
            fh = open(name, "rb")  # noqa: SIM115 - closed by the reader
        except (OSError, ValueError) as exc:
            why = _os_reason(exc, confined=False) if isinstance(exc, OSError) else "not a file name"
            raise _refused(name, why) from None
        return fh, os.fstat(fh.fileno()).st_size, name
    real, checked = _confine(root, name, Want.FILE)
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # NONBLOCK: a FIFO swapped in
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise _refused(name, _os_reason(exc, confined=True)) from None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (checked.st_dev, checked.st_ino) or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _refused(name, "it changed while it was opened")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), st.st_size, name
