"""What one unsigned oversized POST costs a running `cachemigrate serve`: status, time, peak RSS.

    .venv/bin/python -m benchmarks.body_limit [--cachemigrate PATH] [--size-mb 100] [--chunked]

Starts ``cachemigrate serve`` (``--cachemigrate`` picks another checkout's entry point, e.g. a
read-only /work/main/.venv/bin/cachemigrate; bytecode writing is off so that checkout stays as
it is) on a free loopback port with a scratch data directory, then streams an unsigned POST of
``--size-mb`` MiB of JSON (with Content-Length, or chunked) to create_migration_task while a
second thread waits for the answer. Reports the status, the seconds until the status line came,
how much of the body had been sent by then, and the server's VmHWM (peak RSS) before and after.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.fernet import Fernet

PROJECT = "0123456789abcdef0123456789abcdef"
CHUNK = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def body_chunks(size: int) -> Iterator[bytes]:
    """``{"task_name": "aaaa...a"}`` of exactly ``size`` bytes, in CHUNK pieces."""
    head, tail = b'{"task_name": "', b'"}'
    left = size - len(head) - len(tail)
    yield head
    while left > 0:
        n = min(CHUNK, left)
        yield b"a" * n
        left -= n
    yield tail


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("serve did not start")


def post(port: int, size: int, *, chunked: bool) -> dict[str, object]:
    sock = socket.create_connection(("127.0.0.1", port))
    framing = b"transfer-encoding: chunked\r\n" if chunked else f"content-length: {size}\r\n".encode()
    head = (
        f"POST /v2/{PROJECT}/migration-task HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        "content-type: application/json;charset=utf-8\r\n"
    ).encode() + framing + b"\r\n"
    answer: dict[str, object] = {}
    got = threading.Event()
    started = time.monotonic()

    def read() -> None:
        data = b""
        try:
            while b"\r\n" not in data:
                more = sock.recv(65536)
                if not more:
                    break
                data += more
        except OSError as exc:
            answer["read_error"] = repr(exc)
        answer["seconds"] = round(time.monotonic() - started, 3)
        answer["status_line"] = data.split(b"\r\n", 1)[0].decode("latin-1")
        got.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = 0
    try:
        sock.sendall(head)
        for piece in body_chunks(size):
            if got.is_set():
                break
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except OSError as exc:
        answer["send_error"] = type(exc).__name__
    answer["body_bytes_sent"] = sent
    got.wait(300)
    sock.close()
    return answer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cachemigrate", default=str(Path(sys.executable).parent / "cachemigrate"))
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--chunked", action="store_true")
    args = ap.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="body-limit-") as tmp:
        env = dict(os.environ)
        env.update(
            CACHEMIGRATE_DATA_DIR=str(Path(tmp) / "data"),
            CACHEMIGRATE_SECRET_KEY=Fernet.generate_key().decode(),
            PYTHONDONTWRITEBYTECODE="1",
        )
        proc = subprocess.Popen(
            [args.cachemigrate, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(port, proc)
            before = vm_kib(proc.pid, "VmHWM")
            answer = post(port, args.size_mb << 20, chunked=args.chunked)
            after = vm_kib(proc.pid, "VmHWM")
            rss = vm_kib(proc.pid, "VmRSS")
        finally:
            proc.terminate()
            proc.wait(30)
    framing = "chunked" if args.chunked else "content-length"
    print(f"{args.cachemigrate}: unsigned {args.size_mb} MiB POST ({framing})")
    for key, value in answer.items():
        print(f"  {key}: {value}")
    print(f"  server VmHWM before: {before / 1024:.0f} MiB, after: {after / 1024:.0f} MiB")
    print(f"  server VmRSS after: {rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
