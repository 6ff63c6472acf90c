"""Files that hold data at rest (backups; the service's database and dev key): created 0600, in
directories created 0700, whatever the process umask says.

The modes are set explicitly (``fchmod``/``chmod`` after creating): a mode given to ``open`` or
``mkdir`` is only an upper bound the umask cuts from. Directories and files that exist already
are left as they are: they are the operator's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "create_private", "private_dir", "touch_private"]

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """``mkdir -p path``: each directory it creates is 0700."""
    missing: list[Path] = []
    at = path
    while not at.exists():
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by someone else: theirs
            continue
        os.chmod(directory, DIR_MODE)
    return path


def create_private(path: Path, *, exclusive: bool = False) -> int:
    """A descriptor of ``path`` open for writing, created (or truncated) as a 0600 file.

    ``exclusive``: FileExistsError when it exists. Otherwise the file is taken as ours (a
    temporary name we write to) and set 0600 even if it existed.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def touch_private(path: Path) -> bool:
    """Create ``path`` empty as a 0600 file unless it exists (then untouched); True if created."""
    with contextlib.suppress(FileExistsError):
        os.close(create_private(path, exclusive=True))
        return True
    return False
