"""`cachemigrate import` / `inspect` as a user runs them: exit codes and one readable error line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support.compare import compare_servers
from support.corpus import CORPUS
from support.servers import RedisServer, server_binary

CLI = str(Path(sys.executable).parent / "cachemigrate")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("source_kind", "target_kind"), [
    ("redis7", "redis7"), ("valkey8", "redis7"), ("redis7", "valkey8"), ("valkey8", "valkey8"),
])
def test_import_then_every_key_matches(
    redis_factory: Callable[..., RedisServer], source_kind: str, target_kind: str
) -> None:
    source_redis = redis_factory("source", binary=server_binary(source_kind))  # its own RDB file
    target_redis = redis_factory("target", binary=server_binary(target_kind))
    c = source_redis.client()
    c.set(b"bin\x00key", b"\xff\x00value")
    c.zadd("z", {"a": 0.1, "b": float("inf")})
    c.hset("h", mapping={"f": "v"})
    c.pexpireat("h", 1893456000000)
    c.xadd("s", {"f": "v"}, id="5-1")
    source_redis.client(db=2).rpush("l", *range(300))
    rdb = source_redis.save()
    res = _run("import", str(rdb), "--target", target_redis.url, "-q")
    assert res.returncode == 0, res.stderr
    report = compare_servers([source_redis.client()], [target_redis.client()])
    assert report.ok and report.compared == 5, report.summary()


def test_corrupt_file_fails_with_one_line_naming_file_and_offset(target_redis: RedisServer) -> None:
    path = CORPUS / "librdb" / "invalid_chksum_v8.rdb"
    res = _run("import", str(path), "--target", target_redis.url, "-q")
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "checksum mismatch" in lines[0] and str(path) in lines[0] and "offset 201" in lines[0]


def test_missing_file_and_unreachable_target_are_one_line(target_redis: RedisServer, tmp_path: Path) -> None:
    res = _run("import", str(tmp_path / "nope.rdb"), "--target", target_redis.url, "-q")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "nope.rdb" in res.stderr
    rdb = CORPUS / "redis" / "encodings.rdb"
    res = _run("import", str(rdb), "--target", "redis://127.0.0.1:1", "-q")
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert "cannot connect to redis://127.0.0.1:1: " in res.stderr
    res = _run("import", str(rdb), "--target", "http://x", "-q")
    assert res.returncode == 1 and "redis://" in res.stderr


def test_inspect_prints_version_types_and_biggest_keys() -> None:
    res = _run("inspect", str(CORPUS / "redis" / "encodings.rdb"), "--json")
    assert res.returncode == 0, res.stderr
    assert '"rdb_version": 4' in res.stdout and '"keys_per_type"' in res.stdout
    assert '"biggest_keys"' in res.stdout


def _damaged_archives(rdb: Path, tmp: Path) -> dict[str, Path]:
    """Archives of ``rdb`` cut short or with bytes flipped in the middle of the compressed data."""
    import bz2
    import gzip
    import lzma
    import tarfile
    import zipfile

    data = rdb.read_bytes()
    whole: dict[str, bytes] = {
        "dump.rdb.gz": gzip.compress(data), "dump.rdb.bz2": bz2.compress(data),
        "dump.rdb.xz": lzma.compress(data),
    }
    with tarfile.open(tmp / "t.tar.gz", "w:gz") as tf:
        tf.add(rdb, "backup/dump.rdb")
    whole["dump.tar.gz"] = (tmp / "t.tar.gz").read_bytes()
    with zipfile.ZipFile(tmp / "t.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(rdb, "backup/dump.rdb")
    whole["dump.zip"] = (tmp / "t.zip").read_bytes()
    out: dict[str, Path] = {}
    for name, blob in whole.items():
        cut = tmp / f"cut-{name}"
        cut.write_bytes(blob[: len(blob) * 3 // 5])
        out[f"truncated {name}"] = cut
        # Damage the gzip stream's own check finds (tarfile's stream mode does not check the CRC:
        # a damaged .tar.gz is left to the RDB's checks) and a zip member's CRC.
        if name in ("dump.rdb.gz", "dump.zip"):
            bad = bytearray(blob)
            for i in range(len(bad) // 2, len(bad) // 2 + 64):
                bad[i] ^= 0x5A
            path = tmp / f"bad-{name}"
            path.write_bytes(bytes(bad))
            out[f"corrupt {name}"] = path
    return out


def test_truncated_or_corrupt_archive_fails_with_one_line_naming_it(
    source_redis: RedisServer, target_redis: RedisServer, tmp_path: Path
) -> None:
    c = source_redis.client()
    for i in range(0, 4000, 500):
        c.mset({f"key:{j}": f"{j:x}" * (j % 97 + 1) for j in range(i, i + 500)})
    c.rpush("list", *range(2000))
    rdb = source_redis.save()
    failures = []
    for case, path in _damaged_archives(rdb, tmp_path).items():
        res = _run("import", str(path), "--target", target_redis.url, "-q")
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        said = lines[-1].replace(str(path), "") if lines else ""  # (tmp_path's name has both words)
        ok = (res.returncode == 1 and len(lines) == 1 and str(path) in lines[0]
              and ("truncated" in said or "corrupt" in said))
        if not ok:
            failures.append(f"{case}: exit {res.returncode}, stderr {res.stderr[-400:]!r}")
        elif case.startswith("truncated") and not case.endswith(".zip"):
            # a cut .zip has lost its central directory: "corrupt" is all that can be said of it
            assert "truncated" in said, lines[0]
    assert not failures, "\n".join(failures)
