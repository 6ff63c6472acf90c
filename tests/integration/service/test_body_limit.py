"""The request body limit (service/api/body_limit.py) on a live service, over raw sockets: the
client decides exactly what it sends, so a server that waited for (or read) the whole body would
hang here and the socket timeout would fail the test."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveService, make_settings

LIMIT = 64 << 10
PROJECT = "0123456789abcdef0123456789abcdef"
PATH = f"/v2/{PROJECT}/migration-task"


def head(live: LiveService, framing: str) -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nhost: 127.0.0.1:{live.port}\r\n"
        f"content-type: application/json;charset=utf-8\r\n{framing}\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, f"connection closed before a response: {data!r}"
        data += more
    raw_head, rest = data.split(b"\r\n\r\n", 1)
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(rest) < int(headers.get("content-length", "0")):
        more = sock.recv(65536)
        if not more:
            break
        rest += more
    return int(lines[0].split()[1]), headers, rest


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def live(service_factory: Callable[..., LiveService], tmp_path: Path) -> LiveService:
    return service_factory(make_settings(tmp_path, max_body_bytes=LIMIT))


def assert_too_large(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413, body
    assert headers["connection"] == "close"
    assert headers["content-type"].startswith("application/json")
    doc: dict[str, Any] = json.loads(body)
    assert doc["error_code"] == "APIG.0201"
    assert str(LIMIT) in doc["error_msg"]
    assert doc["request_id"] == headers["x-request-id"]


def test_content_length_over_the_limit_is_413_before_any_byte_of_the_body(live: LiveService) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(head(live, "content-length: 104857600"))  # 100 MiB announced, none sent
        status, headers, body = read_response(sock)
        assert_too_large(status, headers, body)
        assert sock.recv(1) == b""  # and the server closed the connection


def test_a_chunked_body_is_cut_off_when_it_passes_the_limit(live: LiveService) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(head(live, "transfer-encoding: chunked"))
        piece = b"a" * (16 << 10)
        for _ in range(LIMIT // len(piece) + 1):  # one piece past the limit; never the last chunk
            sock.sendall(chunk(piece))
        status, headers, body = read_response(sock)
        assert_too_large(status, headers, body)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_of_exactly_the_limit_goes_on_to_authentication(live: LiveService, framing: str) -> None:
    payload = json.dumps({"task_name": "a" * (LIMIT - 20)}).encode()
    payload += b" " * (LIMIT - len(payload))
    assert len(payload) == LIMIT
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        if framing == "chunked":
            sock.sendall(head(live, "transfer-encoding: chunked"))
            sock.sendall(chunk(payload[: LIMIT // 2]) + chunk(payload[LIMIT // 2 :]) + b"0\r\n\r\n")
        else:
            sock.sendall(head(live, f"content-length: {LIMIT}") + payload)
        status, _, body = read_response(sock)
    assert status == 401, body  # unsigned: the limit let it through, authentication refused it
    assert json.loads(body)["error_code"] == "APIG.0301"


def test_the_limit_is_in_the_openapi_document(live: LiveService) -> None:
    import httpx

    doc = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    create = doc["paths"]["/v2/{project_id}/migration-task"]["post"]
    assert "413" in create["responses"]
    assert "max_body_bytes" in doc["info"]["description"]
