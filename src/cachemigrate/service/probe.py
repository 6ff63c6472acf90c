"""Check that a Redis endpoint answers and accepts its password before a task or instance uses it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


class ProbeResult(enum.Enum):
    OK = "ok"
    AUTH = "auth"
    UNREACHABLE = "unreachable"
    BAD_ADDRESS = "bad_address"


@dataclass(frozen=True, slots=True)
class Probe:
    result: ProbeResult
    detail: str = ""
    version: str = ""


def split_addrs(addrs: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` (IPv6 as ``[::1]:6379``); ValueError when malformed."""
    out: list[tuple[str, int]] = []
    for raw in addrs.split(","):
        item = raw.strip()
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not host:port: {item!r}")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not host or any(c in host for c in "/@ ?#"):
            raise ValueError(f"not host:port: {item!r}")
        out.append((host, int(port)))
    return out


async def probe(addrs: str, password: str | None, *, timeout: float = 3.0) -> Probe:
    try:
        host, port = split_addrs(addrs)[0]
    except ValueError as exc:
        return Probe(ProbeResult.BAD_ADDRESS, str(exc))
    client = aioredis.Redis(
        host=host,
        port=port,
        password=password or None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # one attempt: the caller is waiting for an answer
        single_connection_client=True,
    )
    try:
        info = await client.info("server")
        return Probe(ProbeResult.OK, version=str(info.get("redis_version", "")))
    except (rexc.AuthenticationError, rexc.AuthorizationError) as exc:
        return Probe(ProbeResult.AUTH, str(exc))
    except rexc.ResponseError as exc:
        text = str(exc)
        if "NOAUTH" in text or "WRONGPASS" in text or "invalid password" in text or "AUTH" in text:
            return Probe(ProbeResult.AUTH, text)
        return Probe(ProbeResult.UNREACHABLE, text)
    except (rexc.RedisError, OSError) as exc:
        return Probe(ProbeResult.UNREACHABLE, str(exc) or type(exc).__name__)
    finally:
        await client.aclose()
