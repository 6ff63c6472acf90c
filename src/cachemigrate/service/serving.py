"""The listeners of `cachemigrate serve`: the tenant-facing API (HTTPS when a certificate is
configured) and, when ``metrics_port`` is set, the operator's /metrics on a listener of its own
(loopback by default). Both run in one event loop and stop together."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI

from cachemigrate.errors import ConfigError
from cachemigrate.service.api.deps import Services
from cachemigrate.service.metrics import metrics_app
from cachemigrate.service.settings import Settings

# On SIGTERM, how long open connections get to finish. Without a bound an idle HTTPS keep-alive
# client (the SDK's session) holds the exit for asyncio's 30 s TLS-shutdown timeout.
CONNECTION_GRACE_SECONDS = 5


def check_tls(settings: Settings) -> None:
    """ConfigError (one readable line) unless the TLS settings make a usable server context."""
    certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
    if certfile is None:
        if keyfile is not None:
            raise ConfigError(
                "ssl_keyfile (CACHEMIGRATE_SSL_KEYFILE) needs ssl_certfile (CACHEMIGRATE_SSL_CERTFILE)"
            )
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile, settings.ssl_keyfile_password)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"TLS certificate {certfile} (key {keyfile or certfile}): {why}") from None


def servers(app: FastAPI, settings: Settings, *, log_level: str = "info") -> list[uvicorn.Server]:
    """The API server, then the metrics server when ``metrics_port`` is set."""
    check_tls(settings)
    metrics = None
    if settings.metrics_port is not None:
        if (settings.metrics_host, settings.metrics_port) == (settings.host, settings.port):
            raise ConfigError("metrics_port must differ from port: /metrics is not for tenants")
        services: Services = app.state.services
        # Made before the API's Config: this one leaves logging alone (log_config None) but for
        # dropping the access log's handlers, which the API's Config below sets up afresh.
        metrics = uvicorn.Config(
            metrics_app(services.registry),
            host=settings.metrics_host,
            port=settings.metrics_port,
            loop="asyncio",
            lifespan="off",
            log_config=None,
            log_level=None,
            access_log=False,
        )
    api = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # The engine's connections need the stock asyncio loop (not uvloop).
        loop="asyncio",
        log_level=log_level,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
        ssl_keyfile_password=settings.ssl_keyfile_password,
        timeout_graceful_shutdown=CONNECTION_GRACE_SECONDS,
    )
    return [uvicorn.Server(api)] + ([] if metrics is None else [uvicorn.Server(metrics)])


async def serve(listeners: Sequence[uvicorn.Server]) -> None:
    """Run every server until one of them ends (a signal, a failed start), then stop the others."""
    tasks = [asyncio.create_task(server.serve()) for server in listeners]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in listeners:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        task.result()  # a server's own failure is the caller's to see
