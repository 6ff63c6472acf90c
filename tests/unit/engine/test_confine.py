"""engine/confine.py and BucketFiles: every file an import opens stays in its bucket (real files,
real symlinks in a temporary directory); refusals name the file as given, never the server's path."""

from __future__ import annotations

import io
import os
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from cachemigrate.engine.confine import NAME_MAX, Want, check_name, confine, open_confined
from cachemigrate.engine.readers.aof_file import plan
from cachemigrate.engine.sources import BucketFiles, archive_members
from cachemigrate.errors import ConfigError


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A bucket with a file, a folder and links; beside it, a file of someone else's."""
    bucket, outside = tmp_path / "bucket", tmp_path / "elsewhere"
    (bucket / "sub").mkdir(parents=True)
    outside.mkdir()
    (bucket / "dump.rdb").write_bytes(b"REDIS0009")
    (bucket / "sub" / "x.rdb").write_bytes(b"REDIS0009")
    (outside / "secret.rdb").write_bytes(b"root:x:0:0:secret")
    (bucket / "inside.rdb").symlink_to(bucket / "sub" / "x.rdb")
    (bucket / "leak.rdb").symlink_to(outside / "secret.rdb")
    (bucket / "dangling.rdb").symlink_to(outside / "not-there.rdb")
    (bucket / "up").symlink_to("..")
    (bucket / "loop-a.rdb").symlink_to(bucket / "loop-b.rdb")
    (bucket / "loop-b.rdb").symlink_to(bucket / "loop-a.rdb")
    (bucket / "folder.rdb").mkdir()
    os.mkfifo(bucket / "pipe.rdb")
    return bucket.resolve(), outside


def refusal(root: Path | None, name: str, **kw: Want) -> str:
    with pytest.raises(ConfigError) as exc:
        confine(root, name, **kw)
    return str(exc.value)


def test_names_inside_the_bucket_are_confined_to_their_real_paths(layout: tuple[Path, Path]) -> None:
    bucket, _ = layout
    assert confine(bucket, "dump.rdb") == bucket / "dump.rdb"
    assert confine(bucket, "./sub//x.rdb") == bucket / "sub" / "x.rdb"
    assert confine(bucket, "inside.rdb") == bucket / "sub" / "x.rdb"  # a symlink inside is fine
    assert confine(bucket, "sub", want=Want.DIR) == bucket / "sub"
    fh, size, name = open_confined(bucket, "inside.rdb")
    with fh:
        assert (fh.read(), size, name) == (b"REDIS0009", 9, "inside.rdb")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("leak.rdb", "cannot open leak.rdb: outside the bucket"),
        ("dangling.rdb", "cannot open dangling.rdb: outside the bucket"),  # same answer: no oracle
        ("up/elsewhere/secret.rdb", "outside the bucket"),
        ("../elsewhere/secret.rdb", "is outside the bucket"),
        ("sub/../../elsewhere/secret.rdb", "is outside the bucket"),
        ("/etc/passwd", "must be a path relative to the bucket"),
        ("\\etc\\passwd", "must be a path relative to the bucket"),
        ("a\x00b.rdb", "is not a file name"),
        ("", "is not a file name"),
        ("loop-a.rdb", "cannot open loop-a.rdb: a symlink loop"),
        ("x" * (NAME_MAX + 1) + ".rdb", f"longer than {NAME_MAX} bytes"),
        ("é" * 128 + ".rdb", f"longer than {NAME_MAX} bytes"),  # bytes, not characters
        ("missing.rdb", "cannot open missing.rdb: not found in the bucket"),
        ("dump.rdb/x.rdb", "cannot open dump.rdb/x.rdb: not a directory"),
        ("folder.rdb", "cannot open folder.rdb: a directory, not a file"),
        ("pipe.rdb", "cannot open pipe.rdb: not a regular file"),
    ],
)
def test_refusals_name_the_file_as_given(layout: tuple[Path, Path], name: str, words: str) -> None:
    bucket, outside = layout
    message = refusal(bucket, name)
    assert words in message
    assert str(bucket) not in message and str(outside) not in message and "root:x" not in message
    with pytest.raises(ConfigError) as opened:
        open_confined(bucket, name)
    assert str(opened.value) == message  # opening is refused by the same check, in the same words


def test_the_operators_own_paths_are_checked_but_not_confined(layout: tuple[Path, Path]) -> None:
    bucket, outside = layout
    assert confine(None, str(bucket / "leak.rdb")) == bucket / "leak.rdb"
    fh, _, name = open_confined(None, str(outside / "secret.rdb"))
    fh.close()
    assert name == str(outside / "secret.rdb")
    assert "a symlink loop" in refusal(None, str(bucket / "loop-a.rdb"))
    assert "no such file or directory" in refusal(None, str(bucket / "missing.rdb"))
    assert "a directory, not a file" in refusal(None, str(bucket / "folder.rdb"))


def test_check_name_is_the_rule_for_keys_and_members() -> None:
    check_name("nightly/dump.rdb")
    check_name("a..b/c.rdb")  # ".." only as a whole part
    for bad in ("../x", "a/../../x", "/x", "a\\..\\x", "x" * 256):
        with pytest.raises(ConfigError):
            check_name(bad)


def test_s3_keys_stay_under_the_prefix() -> None:
    files = BucketFiles("s3://dumps/tenant-a")
    assert files.root == "s3://dumps/tenant-a/"
    files.check_file("nightly/dump.rdb")
    assert not files.is_dir("nightly")
    for bad in ("../tenant-b/dump.rdb", "nightly/../../tenant-b/dump.rdb", "/tenant-b/dump.rdb"):
        with pytest.raises(ConfigError, match=r"outside the bucket|relative to the bucket"):
            files.check_file(bad)
        with pytest.raises(ConfigError):
            files.open(bad)  # refused before any request is made


def write_manifest(folder: Path, *entries: str) -> None:
    lines = [f"file {e} seq {i + 1} type {'b' if i == 0 else 'i'}\n" for i, e in enumerate(entries)]
    (folder / "appendonly.aof.manifest").write_text("".join(lines))


def test_manifest_entries_and_directory_members_are_confined(layout: tuple[Path, Path]) -> None:
    bucket, outside = layout
    files = BucketFiles(str(bucket))
    good = bucket / "good"
    good.mkdir()
    (good / "appendonly.aof.1.base.rdb").write_bytes(b"REDIS0009")
    (good / "appendonly.aof.1.incr.aof").write_bytes(b"*1\r\n$4\r\nPING\r\n")
    write_manifest(good, "appendonly.aof.1.base.rdb", "appendonly.aof.1.incr.aof")
    assert [u.path for u in plan(files, ["good"])] == [
        "good/appendonly.aof.1.base.rdb", "good/appendonly.aof.1.incr.aof",
    ]
    last = plan(files, ["good/appendonly.aof.manifest"])[-1]
    assert last.path == "good/appendonly.aof.1.incr.aof" and last.last_of_set
    evil = bucket / "evil"
    evil.mkdir()
    (evil / "appendonly.aof.1.base.rdb").symlink_to(outside / "secret.rdb")
    write_manifest(evil, "appendonly.aof.1.base.rdb")
    with pytest.raises(ConfigError) as exc:
        plan(files, ["evil"])
    assert str(exc.value) == ("cannot open evil/appendonly.aof.1.base.rdb: outside the bucket "
                              "(listed in evil/appendonly.aof.manifest)")
    (bucket / "linked").symlink_to(outside)  # a directory symlinked out: its manifest is refused
    write_manifest(outside, "secret.rdb")
    with pytest.raises(ConfigError, match="cannot open linked: outside the bucket"):
        plan(files, ["linked"])


def tar_of(*members: tarfile.TarInfo, data: bytes = b"REDIS0009") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for m in members:
            if m.isfile():
                m.size = len(data)
                tf.addfile(m, io.BytesIO(data))
            else:
                tf.addfile(m)
    buf.seek(0)
    return buf


def link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (tarfile.TarInfo("../x.rdb"), "file '../x.rdb' is outside the archive b.tar.gz"),
        (tarfile.TarInfo("a/../../x.rdb"), "is outside the archive"),
        (tarfile.TarInfo("/etc/x.rdb"), "must be a path relative to the archive"),
        (link("a/l.rdb", "../../x.rdb", tarfile.SYMTYPE), "b.tar.gz!a/l.rdb: a link to outside the archive"),
        (link("l.rdb", "/etc/passwd", tarfile.SYMTYPE), "a link to outside the archive"),
        (link("h.rdb", "../x.rdb", tarfile.LNKTYPE), "a link to outside the archive"),
    ],
)
def test_tar_members_named_or_linked_outside_are_refused(member: tarfile.TarInfo, words: str) -> None:
    members = archive_members(tar_of(member), "b.tar.gz", "tar")
    with pytest.raises(ConfigError, match=re.escape(words)):
        next(members)


def test_links_inside_an_archive_are_skipped_not_read() -> None:
    members = [tarfile.TarInfo("d/dump.rdb"), link("d/l.rdb", "dump.rdb", tarfile.SYMTYPE),
               link("h.rdb", "d/dump.rdb", tarfile.LNKTYPE)]
    names = [name for _, _, name in archive_members(tar_of(*members), "b.tar.gz", "tar")]
    assert names == ["b.tar.gz!d/dump.rdb"]


def zip_of(entries: list[tuple[str, bytes, bool]]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, is_link in entries:
            info = zipfile.ZipInfo(name)
            if is_link:
                info.external_attr = (0o120777 << 16)
            zf.writestr(info, data)
    buf.seek(0)
    return buf


def test_zip_members_are_all_checked_before_the_first_is_read() -> None:
    ok = [("dump.rdb", b"REDIS0009", False), ("l.rdb", b"dump.rdb", True)]
    assert [n for _, _, n in archive_members(zip_of(ok), "b.zip", "zip")] == ["b.zip!dump.rdb"]
    for bad, words in (
        ([("dump.rdb", b"REDIS0009", False), ("../x.rdb", b"REDIS0009", False)], "outside the archive"),
        ([("dump.rdb", b"REDIS0009", False), ("l.rdb", b"../../etc/passwd", True)], "a link to outside"),
    ):
        members = archive_members(zip_of(bad), "b.zip", "zip")
        with pytest.raises(ConfigError, match=words):
            next(members)  # the good first member is never handed out
