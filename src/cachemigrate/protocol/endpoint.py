"""Where a Redis server is and how to log in: parsed once from a URL, passed around frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from cachemigrate.errors import ConfigError

_SCHEMES = {"redis": False, "rediss": True}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A Redis server address with credentials. The password never appears in repr() or str()."""

    host: str = "127.0.0.1"
    port: int = 6379
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int | None = None
    tls: bool = False
    tls_insecure: bool = False
    connect_timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """Parse ``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS)."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise ConfigError(f"not a Redis URL: {exc}") from None
        if parts.scheme not in _SCHEMES:
            raise ConfigError(f"a Redis URL must start with redis:// or rediss://, got {_safe(url)!r}")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ConfigError(f"bad port in {_safe(url)!r}") from None
        if not parts.hostname:
            raise ConfigError(f"no host in {_safe(url)!r}")
        db: int | None = None
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise ConfigError(f"the path of a Redis URL is a db number, got {path!r}")
            db = int(path)
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if password is None and username is not None:
            # redis://:secret@host and redis://secret@host are both seen in the wild.
            password, username = username, None
        insecure = "insecure" in parts.query or "ssl_cert_reqs=none" in parts.query
        return cls(
            host=parts.hostname,
            port=port,
            username=username or None,
            password=password,
            db=db,
            tls=_SCHEMES[parts.scheme],
            tls_insecure=insecure,
        )

    def with_db(self, db: int | None) -> Endpoint:
        return dataclasses.replace(self, db=db)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.display_url()

    def display_url(self) -> str:
        """The URL with the password masked: safe for logs and progress lines."""
        scheme = "rediss" if self.tls else "redis"
        cred = ""
        if self.username or self.password:
            cred = f"{self.username or ''}{':***' if self.password else ''}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        db = f"/{self.db}" if self.db is not None else ""
        return f"{scheme}://{cred}{host}:{self.port}{db}"


def _safe(url: str) -> str:
    """Mask a password in a URL we failed to parse, so it never reaches an error message."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    cred, _, hostpart = rest.rpartition("@")
    user = cred.split(":", 1)[0] if ":" in cred else ""
    return f"{scheme}://{user}:***@{hostpart}"
