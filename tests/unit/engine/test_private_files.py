"""engine/private_files.py: 0600 files and 0700 directories whatever the umask; what exists
already is left alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachemigrate.engine.private_files import create_private, private_dir, touch_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=["umask-000", "umask-022", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_private_dir_creates_0700_levels_and_keeps_existing_ones(umask: int, tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    target = tmp_path / "a" / "b" / "c"
    assert private_dir(target) == target
    assert [oct(mode(p)) for p in (tmp_path / "a", tmp_path / "a" / "b", target)] == ["0o700"] * 3
    assert mode(tmp_path) == 0o755
    private_dir(target)  # again: nothing to do
    assert mode(target) == 0o700


def test_create_private_is_0600_and_exclusive_when_asked(umask: int, tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    with os.fdopen(create_private(path), "wb") as fh:  # our temporary name: truncated, made private
        fh.write(b"new")
    assert (path.read_bytes(), mode(path)) == (b"new", 0o600)
    with pytest.raises(FileExistsError):
        create_private(path, exclusive=True)
    fresh = tmp_path / "key"
    with os.fdopen(create_private(fresh, exclusive=True), "wb") as fh:
        fh.write(b"k")
    assert mode(fresh) == 0o600


def test_touch_private_creates_once_and_never_changes_an_existing_file(umask: int, tmp_path: Path) -> None:
    path = tmp_path / "db"
    assert touch_private(path) is True
    assert (path.read_bytes(), mode(path)) == (b"", 0o600)
    path.write_bytes(b"data")
    os.chmod(path, 0o640)
    assert touch_private(path) is False
    assert (path.read_bytes(), mode(path)) == (b"data", 0o640)
